/// What ROME, MEMIT and AlphaEdit share: the v* (MEMIT: z) optimisation's settings, the prompts made
/// from an edit set, the context templates, and the key statistics of the unedited model.

/// ROME, MEMIT and AlphaEdit: editors of the selected blocks' dense_4h_to_h (llama: down_proj), one step per edit.
public protocol LocateThenEditSpec: EditorSpec {}

extension LocateThenEditSpec {
    public func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) {
        try checkEditsDense4hTo4h(selection, layers: layers, Self.method)
    }

    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] {
        selection.blocks.sorted().map { LayerSelection.keyMatrixName(selection.architecture, block: $0) }
    }

    public func steps(for set: EditSet) -> Int { set.edits.count }
}

/// The v* / z optimisation's keys, declared once for every locate-then-edit spec (`fields(at:)`).
public struct VStarSpec: Sendable {
    /// Which token of the prompt holds the fact (the reference's `fact_token`).
    public enum FactToken: String, CaseIterable, Sendable {
        case subjectLast = "subject_last", subjectFirst = "subject_first", last, relation
    }

    /// `last` (not the reference's subject_last): on the demo model ROME at subject_last writes 0–15%
    /// of single edits at any block (0% after 460 epochs), at the last token 35–100% (docs, "ROME").
    public var factToken = FactToken.last
    public var learningRate = 0.5
    public var steps = 20
    public var weightDecay = 0.5
    public var klFactor = 0.0625
    public var clampNormFactor = 4.0
    public var stopLoss = 0.05
    /// [[length, count], ...]: count prefixes of `length` tokens of training sentences each (the
    /// reference's context_template_length_params [[5, 10], [10, 10]]); [] = the bare prompt only.
    public var contextTemplates: [[Int]] = []
    public var seed: UInt64 = 0

    public init(clampNormFactor: Double = 4) { self.clampNormFactor = clampNormFactor }

    public static func fields<S>(at p: WritableKeyPath<S, VStarSpec>) -> [SpecField<S>] {
        [
            .choice("fact_token", p.appending(path: \.factToken)),
            .double("v_lr", p.appending(path: \.learningRate), min: 0, max: 100, exclusiveMin: true),
            .int("v_steps", p.appending(path: \.steps), min: 1, max: 100_000),
            .double("v_weight_decay", p.appending(path: \.weightDecay), min: 0, max: 1e6),
            .double("kl_factor", p.appending(path: \.klFactor), min: 0, max: 1e6),
            .double("clamp_norm_factor", p.appending(path: \.clampNormFactor), min: 0, max: 1e6, exclusiveMin: true),
            .double("stop_loss", p.appending(path: \.stopLoss), min: 0, max: 1e6),
            SpecField("context_templates", read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
                guard let v = r.value("context_templates") else { return }
                s[keyPath: p].contextTemplates = try VStarSpec.templates(v, path: "\(r.path).context_templates")
            }, write: { .array($0[keyPath: p].contextTemplates.map { .ints($0) }) }),
            .seed("seed", p.appending(path: \.seed)),
        ]
    }

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

    public var settings: VStarSettings {
        var v = VStarSettings()
        v.learningRate = Float(learningRate); v.steps = steps; v.weightDecay = Float(weightDecay)
        v.klFactor = Float(klFactor); v.clampNormFactor = Float(clampNormFactor); v.stopLoss = Float(stopLoss)
        return v
    }

    /// One request per edit, from the edit set's `edited` prompts.
    func requests(_ set: EditSet, method: String) throws(EngineError) -> [ROMERequest] {
        guard let edited = set.group("edited"), edited.count == set.edits.count else {
            throw .invalid("\(method): the edit set has no \"edited\" group with one prompt per edit")
        }
        return try (0..<edited.count).map { (i) throws(EngineError) in
            try VStarSpec.request(Array(edited.prompt(i)), target: edited.targets[i], factToken: factToken)
        }
    }

    /// The request of an SRO prompt [SS, subject (1 or 2 tokens), W0, W1, RR, relation, W2, OO].
    /// The essence (KL) prompt is "SS subject W0 W1 RR"; its fact token is the same subject token,
    /// or its last token for the `last` and `relation` fact tokens.
    static func request(_ prompt: [Int32], target: Int32, factToken: FactToken) throws(EngineError) -> ROMERequest {
        let sw = prompt.count - 7
        guard sw >= 1, prompt.first == Vocabulary.ss, prompt.last == Vocabulary.oo, prompt[sw + 3] == Vocabulary.rr else {
            throw .invalid("an edited prompt is not a subject–relation–object prompt (SS subject W0 W1 RR relation W2 OO)")
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

    /// The template prefixes: the bare prompt ([]) first, then for each [length, count], count
    /// training sentences drawn with the seed, each cut to its first `length` tokens (at most all
    /// but the final "." and EOS), then ".".
    func prefixes(_ ds: Dataset, run: Int) -> [[Int32]] {
        var rng = RNG(seed: seed &+ UInt64(run), stream: "rome context templates")
        let n = ds.offsets.count - 1
        var out: [[Int32]] = [[]]
        guard n > 0 else { return out }
        for t in contextTemplates {
            for _ in 0..<t[1] {
                let s = rng.below(n)
                let first = Int(ds.offsets[s]), len = Int(ds.offsets[s + 1]) - first
                let keep = max(1, min(t[0], len - 2))
                out.append(Array(ds.tokens[first..<(first + keep)]) + [Vocabulary.dot])
            }
        }
        return out
    }
}

/// Where the key statistics come from, declared once for every locate-then-edit spec.
public struct KeyStatisticsSpec: Sendable {
    public var tokens = 0
    public var seed: UInt64 = 0
    public var folder = ""
    public init() {}

    public static func fields<S>(at p: WritableKeyPath<S, KeyStatisticsSpec>) -> [SpecField<S>] {
        [.int("stats_tokens", p.appending(path: \.tokens), min: 0, max: 1 << 40),
         .seed("stats_seed", p.appending(path: \.seed)),
         .string("stats_dir", p.appending(path: \.folder))]
    }

    /// C of the unedited model at each block: computed (or read) once per experiment and kept for
    /// its later runs (a sequential run's model has changed, its statistics have not). Returns them
    /// with where each came from and how long obtaining them took.
    func statistics(_ c: EditContext, _ ds: Dataset, blocks: [Int]) throws(EngineError) -> (stats: [Int: KeyStatistics], source: StatisticsSource) {
        let key = "locate-then-edit.statistics"
        let start = monotonicSeconds()
        if let kept = c.shared.values[key] as? [Int: KeyStatistics], blocks.allSatisfy({ kept[$0] != nil }) {
            let took = monotonicSeconds() - start
            return (kept, Dictionary(uniqueKeysWithValues: blocks.map { ($0, ("kept from the experiment's first run", took)) }))
        }
        let got = try KeyStatisticsCache.shared.get(model: c.model, dataset: ds, blocks: blocks, sample: KeySample(tokens: tokens, seed: seed), folder: folder)
        let took = monotonicSeconds() - start
        let stats = Dictionary(uniqueKeysWithValues: got.map { ($0.0.block, $0.0) })
        c.shared.values[key] = stats
        return (stats, Dictionary(uniqueKeysWithValues: got.map { ($0.0.block, ($0.1.rawValue, took)) }))
    }

    /// Per block: the statistics' summary, where they came from ("computed", "memory", "file", or
    /// kept), the seconds their computation took, and the seconds this run took to obtain every block's.
    static func report(_ stats: [Int: KeyStatistics], _ source: StatisticsSource) -> JSON {
        .object(stats.keys.sorted().map { b in
            var j = stats[b]!.summary()
            if case var .object(f) = j {
                f += [("source", .string(source[b]?.from ?? "")), ("compute_seconds", .number(stats[b]!.seconds)),
                      ("obtained_in_seconds", .number(source[b]?.seconds ?? 0))]
                j = .object(f)
            }
            return ("\(b)", j)
        })
    }
}

/// Where each block's key statistics came from and the seconds obtaining them took (all blocks together).
typealias StatisticsSource = [Int: (from: String, seconds: Double)]

/// The dataset a locate-then-edit method needs (training sentences: statistics and templates).
func requireDataset(_ c: EditContext, _ method: String) throws(EngineError) -> Dataset {
    guard let ds = c.dataset else {
        throw .invalid("edit method: \(method) needs the dataset the edit set was made from (its training sentences give the key statistics and context templates)")
    }
    // a nested_object edit's head is an object of the relation, every other edit's a subject
    let heads = c.editSet.spec.kind == .nestedObject ? ds.numObjects : ds.numSubjects
    for (i, e) in c.editSet.edits.enumerated() {
        guard e.subject >= 0, e.subject < heads, e.relation >= 0, e.relation < ds.numBaseRelations else {
            throw .invalid("edit method: \(method): edit \(i) is about subject \(e.subject), relation \(e.relation), which the dataset does not have (\(ds.numSubjects) subjects, \(ds.numObjects) objects, \(ds.numBaseRelations) relations): was the edit set made from another dataset?")
        }
    }
    try ds.checkFits(vocabSize: c.model.vocabSize, what: "edit method: \(method)")
    return ds
}

/// Checks that a layer selection reaches the key matrix (dense_4h_to_h; llama: down_proj), the
/// matrix locate-then-edit methods change.
func checkEditsDense4hTo4h(_ selection: LayerSelection, layers: Int, _ method: String) throws(EngineError) {
    let key = LayerSelection.keyMatrix(selection.architecture)
    if !selection.matrixNames(layers: layers).contains(where: { $0.hasSuffix(key + ".weight") }) {
        throw .invalid("edit method: \(method) edits \(key), which the layer selection leaves out (sublayers = \"\(selection.sublayers)\", matrices = \(JSON.strings(selection.matrices).serialized()))")
    }
    if selection.embeddings || selection.unembedding {
        throw .invalid("edit method: \(method) edits \(key) only; set layers.embeddings and layers.unembedding to false")
    }
}
