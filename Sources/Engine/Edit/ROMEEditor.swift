/// ROME as an editor (docs/training-and-editing.md, "ROME"): for each edit and each selected block,
/// in order, a rank-one update of that block's dense_4h_to_h computed on the model the previous
/// updates left (as the reference's apply_rome_to_model does for a list of requests and layers).
/// The prompts are the edit set's `edited` prompts (SRO: SS subject W0 W1 RR relation W2 OO); the
/// key statistics come from the dataset's training sentences.
public struct ROMESpec: EditorSpec {
    public static let method = "rome"

    /// Which token of the prompt holds the fact (the reference's `fact_token`).
    public enum FactToken: String, CaseIterable, Sendable {
        case subjectLast = "subject_last", subjectFirst = "subject_first", last, relation
    }

    public var factToken = FactToken.subjectLast
    public var vLearningRate = 0.5
    public var vSteps = 20
    public var vWeightDecay = 0.5
    public var klFactor = 0.0625
    public var clampNormFactor = 4.0
    public var stopLoss = 0.05
    /// [[length, count], ...]: count prefixes of `length` tokens of training sentences each (the
    /// reference's context_template_length_params [[5, 10], [10, 10]]); [] = the bare prompt only.
    public var contextTemplates: [[Int]] = []
    public var covarianceAdjustment = true
    public var inverse = KeyStatistics.Inverse.pseudo
    public var ridge = 0.01
    public var statsTokens = 0
    public var statsSeed: UInt64 = 0
    public var statsDir = ""
    public var seed: UInt64 = 0

    public init() {}

    public static let fields: [SpecField<ROMESpec>] = [
        .choice("fact_token", \.factToken),
        .double("v_lr", \.vLearningRate, min: 0, max: 100, exclusiveMin: true),
        .int("v_steps", \.vSteps, min: 1, max: 100_000),
        .double("v_weight_decay", \.vWeightDecay, min: 0, max: 1e6),
        .double("kl_factor", \.klFactor, min: 0, max: 1e6),
        .double("clamp_norm_factor", \.clampNormFactor, min: 0, max: 1e6, exclusiveMin: true),
        .double("stop_loss", \.stopLoss, min: 0, max: 1e6),
        SpecField("context_templates", read: { (r: inout JSONReader, s: inout ROMESpec) throws(EngineError) in
            guard let v = r.value("context_templates") else { return }
            s.contextTemplates = try ROMESpec.templates(v, path: "\(r.path).context_templates")
        }, write: { .array($0.contextTemplates.map { .ints($0) }) }),
        .bool("covariance_adjustment", \.covarianceAdjustment),
        .choice("inverse", \.inverse),
        .double("ridge", \.ridge, min: 0, max: 1e6, exclusiveMin: true),
        .int("stats_tokens", \.statsTokens, min: 0, max: 1 << 40),
        .seed("stats_seed", \.statsSeed),
        .string("stats_dir", \.statsDir),
        .seed("seed", \.seed),
    ]

    static func templates(_ v: JSON, path: String) throws(EngineError) -> [[Int]] {
        guard case let .array(items) = v else { throw .invalid("\(path) must be a list of [length, count] pairs") }
        var out: [[Int]] = []
        for (i, item) in items.enumerated() {
            guard case let .array(pair) = item, pair.count == 2, case let .number(l) = pair[0], case let .number(n) = pair[1],
                  l == l.rounded(), n == n.rounded(), l >= 1, l <= 1000, n >= 0, n <= 1000 else {
                throw .invalid("\(path)[\(i)] must be [length, count] with length 1...1000 and count 0...1000")
            }
            out.append([Int(l), Int(n)])
        }
        return out
    }

    public func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) {
        if !selection.matrixNames(layers: layers).contains(where: { $0.hasSuffix("mlp.dense_4h_to_h.weight") }) {
            throw .invalid("edit method: rome edits mlp.dense_4h_to_h, which the layer selection leaves out (sublayers = \"\(selection.sublayers)\", matrices = \(JSON.strings(selection.matrices).serialized()))")
        }
        if selection.embeddings || selection.unembedding {
            throw .invalid("edit method: rome edits mlp.dense_4h_to_h only; set layers.embeddings and layers.unembedding to false")
        }
    }

    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] {
        selection.blocks.sorted().map { "gpt_neox.layers.\($0).mlp.dense_4h_to_h.weight" }
    }

    public func steps(for set: EditSet) -> Int { set.edits.count }

    public var settings: VStarSettings {
        var v = VStarSettings()
        v.learningRate = Float(vLearningRate); v.steps = vSteps; v.weightDecay = Float(vWeightDecay)
        v.klFactor = Float(klFactor); v.clampNormFactor = Float(clampNormFactor); v.stopLoss = Float(stopLoss)
        return v
    }

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        guard let ds = c.dataset else {
            throw .invalid("edit method: rome needs the dataset the edit set was made from (its training sentences give the key statistics and context templates)")
        }
        return try ROMEEditor(spec: self, context: c, dataset: ds)
    }
}

final class ROMEEditor: Editor {
    let spec: ROMESpec
    let model: LanguageModel
    let blocks: [Int]
    let requests: [ROMERequest]
    let prefixes: [[Int32]]
    let statistics: [Int: KeyStatistics]
    let statisticsSource: [Int: String]
    var next = 0
    var runs: [JSON] = []
    var vectors: [(name: String, values: [Float], shape: [Int])] = []

    init(spec: ROMESpec, context c: EditContext, dataset ds: Dataset) throws(EngineError) {
        self.spec = spec
        model = c.model
        blocks = c.selection.blocks.sorted()
        guard let edited = c.editSet.group("edited"), edited.count == c.editSet.edits.count else {
            throw .invalid("rome: the edit set has no \"edited\" group with one prompt per edit")
        }
        requests = try (0..<edited.count).map { (i) throws(EngineError) in
            try ROMEEditor.request(Array(edited.prompt(i)), target: edited.targets[i], factToken: spec.factToken)
        }
        prefixes = [[]] + ROMEEditor.contextPrefixes(ds, spec.contextTemplates, seed: spec.seed &+ UInt64(c.run))
        // C of the unedited model: computed (or read) once per experiment, kept for its later runs.
        if spec.covarianceAdjustment {
            let key = "rome.statistics"
            if let kept = c.shared.values[key] as? [Int: KeyStatistics], blocks.allSatisfy({ kept[$0] != nil }) {
                statistics = kept
                statisticsSource = Dictionary(uniqueKeysWithValues: blocks.map { ($0, "kept from run 0") })
            } else {
                let got = try KeyStatisticsCache.shared.get(model: model, dataset: ds, blocks: blocks,
                                                            sample: KeySample(tokens: spec.statsTokens, seed: spec.statsSeed), folder: spec.statsDir)
                statistics = Dictionary(uniqueKeysWithValues: got.map { ($0.0.block, $0.0) })
                statisticsSource = Dictionary(uniqueKeysWithValues: got.map { ($0.0.block, $0.1.rawValue) })
                c.shared.values[key] = statistics
            }
        } else {
            statistics = [:]
            statisticsSource = [:]
        }
    }

    /// The ROME request of an SRO prompt [SS, subject (1 or 2 tokens), W0, W1, RR, relation, W2, OO].
    /// The essence (KL) prompt is "SS subject W0 W1 RR"; its fact token is the same subject token,
    /// or its last token for the `last` and `relation` fact tokens.
    static func request(_ prompt: [Int32], target: Int32, factToken: ROMESpec.FactToken) throws(EngineError) -> ROMERequest {
        let sw = prompt.count - 7
        guard sw >= 1, prompt.first == Vocabulary.ss, prompt.last == Vocabulary.oo, prompt[sw + 3] == Vocabulary.rr else {
            throw .invalid("rome: an edited prompt is not a subject–relation–object prompt (SS subject W0 W1 RR relation W2 OO)")
        }
        let lookup: Int
        switch factToken {
        case .subjectLast: lookup = sw
        case .subjectFirst: lookup = 1
        case .last: lookup = prompt.count - 1
        case .relation: lookup = sw + 4
        }
        let essence = Array(prompt[0..<(sw + 4)])
        return ROMERequest(prompt: prompt, lookup: lookup, target: target, essence: essence, essenceLookup: min(lookup, essence.count - 1))
    }

    /// Context-template prefixes: for each [length, count], count training sentences drawn with the
    /// seed, each cut to its first `length` tokens (at most all but the final "." and EOS), then ".".
    static func contextPrefixes(_ ds: Dataset, _ templates: [[Int]], seed: UInt64) -> [[Int32]] {
        var rng = RNG(seed: seed, stream: "rome context templates")
        let n = ds.offsets.count - 1
        guard n > 0 else { return [] }
        var out: [[Int32]] = []
        for t in templates {
            for _ in 0..<t[1] {
                let s = rng.below(n)
                let first = Int(ds.offsets[s]), len = Int(ds.offsets[s + 1]) - first
                let keep = max(1, min(t[0], len - 2))
                out.append(Array(ds.tokens[first..<(first + keep)]) + [Vocabulary.dot])
            }
        }
        return out
    }

    /// One step: one edit, at each selected block in order (each block sees the ones before).
    func step() throws(EngineError) -> StepReport? {
        guard next < requests.count else { return nil }
        let i = next
        next += 1
        var r = StepReport()
        for b in blocks { r.loss = try edit(i, block: b) }
        return r
    }

    /// Edit i at block b: k̄ and u, v*, the rank-one update written into the weights. Returns v*'s final loss.
    func edit(_ i: Int, block b: Int) throws(EngineError) -> Float {
        let request = requests[i]
        let start = monotonicSeconds()
        let kbar = try ROME.meanKey(model, block: b, request: request, prefixes: prefixes)
        let u = try ROME.direction(kbar, statistics: statistics[b], inverse: spec.inverse, strength: spec.ridge)
        let v = try ROME.computeV(model, block: b, request: request, prefixes: prefixes, settings: spec.settings)
        let up = try ROME.update(model, block: b, request: request, u: u, vStar: v.vStar)
        let name = "gpt_neox.layers.\(b).mlp.dense_4h_to_h.weight"
        guard let e = model.tensorTable[name] else { throw .invalid("rome: the model has no \(name)") }
        let w = model.parameterBlock.baseAddress! + e.offset
        for k in 0..<e.count { w[k] += up.delta[k] }
        var norm = 0.0
        for x in up.delta { norm += Double(x) * Double(x) }
        runs.append(.object([
            ("edit", .int(i)), ("block", .int(b)),
            ("v_iterations", .int(v.losses.count)), ("adam_steps", .int(v.adamSteps)),
            ("loss", .array(v.losses.map { .number(Double($0.total)) })),
            ("nll", .array(v.losses.map { .number(Double($0.nll)) })),
            ("kl", .array(v.losses.map { .number(Double($0.kl)) })),
            ("weight_decay", .array(v.losses.map { .number(Double($0.decay)) })),
            ("probability", .array(v.losses.map { .number(Double($0.probability)) })),
            ("delta_norm", .number(Double(v.delta.reduce(0) { $0 + $1 * $1 }.squareRoot()))),
            ("target_init_norm", .number(Double(v.targetInit.reduce(0) { $0 + $1 * $1 }.squareRoot()))),
            ("update_norm", .number(norm.squareRoot())),
            ("update_rank", .int(1)),
            ("seconds", .number(monotonicSeconds() - start)),
        ]))
        vectors.append(("edit\(i)/block\(b)/u", u, [u.count]))
        vectors.append(("edit\(i)/block\(b)/v_star", v.vStar, [v.vStar.count]))
        vectors.append(("edit\(i)/block\(b)/k_star", up.kStar, [up.kStar.count]))
        return v.losses.last!.total
    }

    func commit() throws(EngineError) -> EditArtifacts {
        // the updates are already in the weights (each edit sees the previous ones)
        var stats: [(String, JSON)] = []
        for b in blocks {
            guard let s = statistics[b] else { continue }
            var j = s.summary()
            if case var .object(f) = j { f.append(("source", .string(statisticsSource[b] ?? ""))); j = .object(f) }
            stats.append(("\(b)", j))
        }
        let report: JSON = .object([
            ("method", .string("rome")),
            ("templates", .int(prefixes.count)),
            ("key_statistics", spec.covarianceAdjustment ? .object(stats) : .null),
            ("inverse", spec.covarianceAdjustment ? .string(spec.inverse.rawValue) : .null),
            ("updates", .array(runs)),
        ])
        return EditArtifacts(report: report, vectors: vectors)
    }
}
