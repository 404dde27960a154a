#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Causal tracing (activation patching) as ROME's `experiments/causal_trace.py` does it
/// (docs/analysis.md, "Causal tracing"): corrupt the subject tokens' embeddings with Gaussian noise,
/// restore one clean state at a time, and score the probability of the clean answer.
public struct TraceSpec: DeclaredSpec, Sendable {
    public enum NoiseScale: String, CaseIterable, Sendable { case subjectStd = "subject_std", absolute }

    /// The evaluation group whose prompts are traced (a dataset's; each prompt's fact names its subject).
    public var group = "sro"
    /// Indices into the group; [] = a seeded sample of `count` (0 = every prompt).
    public var prompts: [Int] = []
    public var count = 100
    /// σ = noise × the std of the subject tokens' embeddings (`subject_std`, the reference's "s3"
    /// at 3), or σ = noise itself (`absolute`).
    public var noise = 3.0
    public var noiseScale = NoiseScale.subjectStd
    /// Replace the subject embeddings by the noise instead of adding it.
    public var replace = false
    /// Corrupted copies per prompt (the reference's 10).
    public var samples = 10
    /// Blocks restored together around each block l: max(0, l − w/2) ..< min(L, l + ⌈w/2⌉) (the reference's 10).
    public var window = 1
    /// States restored: block outputs, MLP outputs, attention outputs.
    public var kinds = ["block", "mlp", "attn"]
    /// The severed-path variant: restore a block output while the MLP (or attention) outputs at that
    /// token stay at their corrupted values in every block.
    public var severed: [String] = []
    /// Reuse the corrupted run (states below the restored block and before the restored token) and
    /// batch every restoration of a prompt; false: one full forward pass per restoration, as the reference.
    public var reuse = true
    public var seed: UInt64 = 1

    public init() {}
    public static let specPath = "trace spec"
    public static let fields: [SpecField<TraceSpec>] = [
        .string("group", \.group),
        .ints("prompts", \.prompts, min: 0),
        .int("count", \.count, min: 0),
        .double("noise", \.noise, min: 0, max: 1e6, exclusiveMin: true),
        .choice("noise_scale", \.noiseScale),
        .bool("replace", \.replace),
        .int("samples", \.samples, min: 1, max: 10_000),
        .int("window", \.window, min: 1, max: 10_000),
        .strings("kinds", \.kinds),
        .strings("severed", \.severed),
        .bool("reuse", \.reuse),
        .seed("seed", \.seed),
    ]

    public func validate() throws(EngineError) {
        for k in kinds where !["block", "mlp", "attn"].contains(k) {
            throw .invalid("trace spec.kinds: \"\(k)\" is not a kind (block, mlp, attn)")
        }
        for k in severed where !["mlp", "attn"].contains(k) {
            throw .invalid("trace spec.severed: \"\(k)\" is not a sublayer to freeze (mlp, attn)")
        }
        guard Set(kinds).count == kinds.count, Set(severed).count == severed.count else { throw .invalid("trace spec: a kind is listed twice") }
        guard !kinds.isEmpty || !severed.isEmpty else { throw .invalid("trace spec: nothing to trace (kinds and severed are both empty)") }
    }

    /// What is traced, in output order: the kinds, then "block_severed_<sublayer>".
    var traceKinds: [TraceKind] {
        kinds.map { TraceKind(rawValue: $0)! } + severed.map { $0 == "mlp" ? .severedMLP : .severedAttn }
    }
}

/// One traced state: a site restored (block, mlp, attn), or a block output restored with a sublayer frozen.
public enum TraceKind: String, CaseIterable, Sendable {
    case block, mlp, attn, severedMLP = "block_severed_mlp", severedAttn = "block_severed_attn"

    /// The site whose clean value is restored.
    var site: HookSite {
        switch self {
        case .block, .severedMLP, .severedAttn: return .blockOutput
        case .mlp: return .mlpOutput
        case .attn: return .attnOutput
        }
    }
    /// The site frozen at its corrupted value in every block (severed variants).
    var frozen: HookSite? { self == .severedMLP ? .mlpOutput : self == .severedAttn ? .attnOutput : nil }
}

/// A prompt to trace: its tokens, the subject's span [b, e), the expected answer, and where the
/// relation word is (for the token groups).
public struct TracePrompt: Sendable {
    public var tokens: [Int32]
    public var subject: Range<Int>
    public var target: Int32
    public var fact: Int32
    public var relationPositions: [Int]

    public init(tokens: [Int32], subject: Range<Int>, target: Int32, fact: Int32 = -1, relationPositions: [Int] = []) {
        self.tokens = tokens; self.subject = subject; self.target = target; self.fact = fact; self.relationPositions = relationPositions
    }

    /// The reference's token groups (first / middle / last subject token, first token after it,
    /// further tokens, last token), plus the tokens before the subject and the relation word.
    public static let groupNames = ["before_subject", "subject_first", "subject_middle", "subject_last",
                                    "first_after_subject", "relation", "further", "last"]

    /// The positions of each group (a one-token subject is both its first and its last token).
    public func groupPositions() -> [[Int]] {
        let T = tokens.count, b = subject.lowerBound, e = subject.upperBound
        let rel = Set(relationPositions.filter { $0 >= e && $0 < T - 1 })
        var g = [[Int]](repeating: [], count: Self.groupNames.count)
        g[0] = Array(0..<b)
        g[1] = [b]
        g[2] = e - 1 > b + 1 ? Array((b + 1)..<(e - 1)) : []
        g[3] = [e - 1]
        if e < T - 1 && !rel.contains(e) { g[4] = [e] }
        g[5] = rel.sorted()
        g[6] = e + 1 < T - 1 ? Array((e + 1)..<(T - 1)).filter { !rel.contains($0) } : []
        g[7] = [T - 1]
        return g
    }

    /// One group id per position (for labels): last, then subject last/first/middle, relation, the
    /// token after the subject, further tokens, tokens before the subject.
    public func groupOfPosition() -> [Int32] {
        var out = [Int32](repeating: 0, count: tokens.count)
        for (gi, ps) in groupPositions().enumerated() where gi != 1 && gi != 3 { for p in ps { out[p] = Int32(gi) } }
        out[subject.lowerBound] = 1
        out[subject.upperBound - 1] = 3
        out[tokens.count - 1] = 7
        return out
    }

    /// The prompts of a dataset's evaluation group (subject and relation found in each prompt).
    public static func fromDataset(_ ds: Dataset, spec: TraceSpec) throws(EngineError) -> [TracePrompt] {
        guard let g = ds.evalGroup(named: spec.group) else {
            throw .invalid("trace: the dataset has no evaluation group \"\(spec.group)\" (it has \(ds.evalGroups.map(\.name).joined(separator: ", ")))")
        }
        guard g.count > 0 else { throw .invalid("trace: evaluation group \"\(spec.group)\" is empty") }
        var indices = spec.prompts
        if indices.isEmpty {
            if spec.count == 0 || spec.count >= g.count { indices = Array(0..<g.count) } else {
                var rng = RNG(seed: spec.seed, stream: "trace prompts")
                indices = rng.sample(spec.count, from: g.count).sorted()
            }
        }
        return try indices.map { (i) throws(EngineError) -> TracePrompt in
            guard i >= 0, i < g.count else { throw .invalid("trace spec.prompts: \(i) is outside the group \"\(g.name)\" (0..<\(g.count))") }
            let f = Int(g.facts[i])
            guard f >= 0, f < ds.numFacts else { throw .invalid("trace: prompt \(i) of \"\(g.name)\" names no fact, so its subject is unknown") }
            let p = Array(g.prompt(i))
            guard let at = ds.factPositions(in: p, fact: f) else {
                throw .invalid("trace: prompt \(i) of \"\(g.name)\" does not contain its subject's tokens")
            }
            return TracePrompt(tokens: p, subject: at.subject, target: g.targets[i], fact: Int32(f), relationPositions: at.relations)
        }
    }

    /// The reference's noise scale: the std over all scalars of the embeddings of every subject's
    /// tokens (each subject once, its tokens with their multiplicity), N − 1 in the denominator.
    public static func subjectEmbeddingStd(_ ds: Dataset, model: LanguageModel) -> Double {
        let D = model.config.hidden, wte = model.net.params.ptr(model.net.table.embedIn)
        var n = 0.0, sum = 0.0, sq = 0.0
        for s in 0..<ds.numSubjects {
            for t in ds.subjectTokens(s) {
                let row = wte + Int(t) * D
                for j in 0..<D { let v = Double(row[j]); sum += v; sq += v * v }
                n += Double(D)
            }
        }
        guard n > 1 else { return 0 }
        return ((sq - sum * sum / n) / (n - 1)).squareRoot()
    }
}

/// What tracing found for one prompt.
public struct TracedPrompt: Sendable {
    public let prompt: TracePrompt
    public let answer: Int32
    public let high: Float
    public let low: Float
    /// Per kind (the spec's order), [T, L]: the answer's probability with the state at (token, block) restored.
    public let scores: [[Float]]
    public var correct: Bool { answer == prompt.target }
}

/// Traces prompts one at a time (`step`), keeping the results for a report and a trace file.
public final class CausalTracer {
    public let model: LanguageModel
    public let spec: TraceSpec
    public let prompts: [TracePrompt]
    /// σ of the noise (absolute).
    public let sigma: Double
    public private(set) var results: [TracedPrompt] = []
    public var datasetDigest = ""
    /// The standard-normal draws per prompt ([samples, subject length, D] each), to reproduce another
    /// implementation's noise; nil: drawn from the seed.
    public var noiseDraws: [[Float]]?
    let kinds: [TraceKind]
    let ws = SuffixWorkspace()
    public private(set) var seconds = 0.0

    /// `subjectStd`: the std that `noise_scale = subject_std` multiplies (TracePrompt.subjectEmbeddingStd).
    public init(model: LanguageModel, prompts: [TracePrompt], spec: TraceSpec, subjectStd: Double?) throws(EngineError) {
        guard !prompts.isEmpty else { throw .invalid("trace: no prompts to trace") }
        for (i, p) in prompts.enumerated() {
            guard p.tokens.count >= 1, p.tokens.count <= model.maxPositions else {
                throw .invalid("trace: prompt \(i) has \(p.tokens.count) tokens (1...\(model.maxPositions), the model's max_positions)")
            }
            for t in p.tokens where t < 0 || Int(t) >= model.vocabSize {
                throw .invalid("trace: prompt \(i) has token \(t), outside the model's vocabulary 0..<\(model.vocabSize)")
            }
            guard p.subject.lowerBound >= 0, p.subject.upperBound <= p.tokens.count, !p.subject.isEmpty else {
                throw .invalid("trace: prompt \(i)'s subject span \(p.subject.lowerBound)..<\(p.subject.upperBound) is not inside its \(p.tokens.count) tokens")
            }
            guard p.target >= 0, Int(p.target) < model.vocabSize else { throw .invalid("trace: prompt \(i)'s target \(p.target) is outside the vocabulary") }
            for r in p.relationPositions where r < 0 || r >= p.tokens.count {
                throw .invalid("trace: prompt \(i)'s relation position \(r) is beyond its \(p.tokens.count) tokens")
            }
        }
        switch spec.noiseScale {
        case .absolute: sigma = spec.noise
        case .subjectStd:
            guard let s = subjectStd else { throw .invalid("trace: noise_scale = subject_std needs the dataset's subjects; give noise_scale = absolute for bare prompts") }
            guard s > 0, s.isFinite else { throw .numeric("trace: the subject embeddings' std is \(s); cannot scale noise by it") }
            sigma = spec.noise * s
        }
        let T = prompts.map(\.tokens.count).max()!
        try model.ensureCapacity(batch: spec.samples, seq: T)
        self.model = model; self.spec = spec; self.prompts = prompts; kinds = spec.traceKinds
    }

    public var done: Bool { results.count == prompts.count }

    /// Traces the next prompt; false when every prompt is done.
    @discardableResult
    public func step() throws(EngineError) -> Bool {
        guard !done else { return false }
        let t0 = DispatchTime.now().uptimeNanoseconds
        results.append(try trace(prompts[results.count], index: results.count))
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return true
    }

    /// The standard-normal draws of prompt `index`: [samples, subject length, D], seeded per prompt
    /// (so a prompt's trace does not depend on which others are traced).
    func noise(index: Int, span: Int) throws(EngineError) -> [Float] {
        let n = spec.samples * span * model.config.hidden
        if let given = noiseDraws {
            guard index < given.count, given[index].count == n else {
                throw .invalid("trace: the given noise for prompt \(index) must hold \(n) values ([samples, subject length, hidden])")
            }
            return given[index]
        }
        var rng = RNG(seed: spec.seed, stream: "trace noise \(index)")
        return (0..<n).map { _ in Float(rng.normal()) }
    }

    // MARK: one prompt

    /// The clean and corrupted runs' states, [layer][rows, T, width] row-major.
    struct Runs {
        var cleanBlock: [[Float]] = [], cleanMLP: [[Float]] = [], cleanAttn: [[Float]] = []   // [L][T, D]
        var residual: [FloatBuffer] = []   // [L+1][S, T, D]: residual[l] enters block l (corrupted)
        var qkv: [FloatBuffer] = []        // [L][S, T, 3D] (corrupted, rotated)
        var mlp: [[Float]] = [], attn: [[Float]] = []   // [L][S, T, D] (corrupted)
    }

    func trace(_ p: TracePrompt, index: Int) throws(EngineError) -> TracedPrompt {
        let net = model.net, L = net.L, D = net.D, V = net.V, T = p.tokens.count, S = spec.samples
        var runs = Runs()
        // clean run
        try net.forward(tokens: p.tokens, batch: 1, seq: T, keepForBackward: false)
        let answer = Int32(argmax(net.logitsBuf.ptr + (T - 1) * V, V))
        let high = GPTNeoX.probability(net.logitsBuf.ptr + (T - 1) * V, V, answer)
        for l in 0..<L {
            runs.cleanBlock.append(Array(net.activation(at: HookPoint(.blockOutput, layer: l)).all))
            runs.cleanMLP.append(Array(net.activation(at: HookPoint(.mlpOutput, layer: l)).all))
            runs.cleanAttn.append(Array(net.activation(at: HookPoint(.attnOutput, layer: l)).all))
        }
        // corrupted run
        let z = try noise(index: index, span: p.subject.count)
        let tokens = Array([[Int32]](repeating: p.tokens, count: S).joined())
        try net.forward(tokens: tokens, batch: S, seq: T, hooks: corruption(p, z), keepForBackward: false)
        var low: Float = 0
        for s in 0..<S { low += GPTNeoX.probability(net.logitsBuf.ptr + (s * T + T - 1) * V, V, answer) }
        low /= Float(S)
        func copy(_ src: UnsafePointer<Float>, _ n: Int) -> FloatBuffer { let b = FloatBuffer(count: n); b.ptr.update(from: src, count: n); return b }
        for l in 0...L { runs.residual.append(copy(net.res.ptr + l * net.maxN * D, S * T * D)) }
        for l in 0..<L {
            runs.qkv.append(copy(net.qkv.ptr + l * net.maxN * net.layout.width, S * T * net.layout.width))
            runs.mlp.append(Array(net.activation(at: HookPoint(.mlpOutput, layer: l)).all))
            runs.attn.append(Array(net.activation(at: HookPoint(.attnOutput, layer: l)).all))
        }
        var scores = [[Float]](repeating: [Float](repeating: 0, count: T * L), count: kinds.count)
        for t0 in 0..<T {
            if spec.reuse {
                try restoreBatched(p, t0: t0, runs: runs, answer: answer, into: &scores)
            } else {
                for (ki, kind) in kinds.enumerated() {
                    for l in 0..<L { scores[ki][t0 * L + l] = try restoreOne(p, z: z, t0: t0, kind: kind, layer: l, runs: runs, answer: answer) }
                }
            }
        }
        return TracedPrompt(prompt: p, answer: answer, high: high, low: low, scores: scores)
    }

    func argmax(_ z: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        for j in 1..<n where z[j] > z[best] { best = j }
        return best
    }

    /// The hook that adds σ·z to (or puts it in place of) the subject tokens' embeddings of every copy.
    func corruption(_ p: TracePrompt, _ z: [Float]) -> ForwardHooks {
        let hooks = ForwardHooks(), D = model.config.hidden, span = p.subject, sigma = Float(self.sigma), replace = spec.replace
        hooks.add(.embeddings) { (v: ActivationView) throws(EngineError) in
            for r in 0..<v.batch {
                let s = v.firstRow + r
                for (k, t) in span.enumerated() {
                    let row = try v.row(s, t), src = (s * span.count + k) * D
                    for j in 0..<D { row[j] = replace ? sigma * z[src + j] : row[j] + sigma * z[src + j] }
                }
            }
        }
        return hooks
    }

    /// Blocks restored around block l: the reference's max(0, l − w/2) ..< min(L, l − (−w/2)).
    func window(_ l: Int, _ kind: TraceKind) -> Range<Int> {
        let L = model.config.layers, w = kind.frozen == nil ? spec.window : 1
        return max(0, l - w / 2)..<min(L, l + (w + 1) / 2)
    }

    /// The clean value restored at (site, block, token t0).
    func clean(_ runs: Runs, _ site: HookSite, _ j: Int, _ t0: Int) -> ArraySlice<Float> {
        let D = model.config.hidden
        let src = site == .blockOutput ? runs.cleanBlock[j] : site == .mlpOutput ? runs.cleanMLP[j] : runs.cleanAttn[j]
        return src[(t0 * D)..<((t0 + 1) * D)]
    }

    /// The corrupted run's value of a frozen site at (block j, copy s, token t0).
    func corrupted(_ runs: Runs, _ site: HookSite, _ j: Int, _ s: Int, _ t0: Int, _ T: Int) -> ArraySlice<Float> {
        let D = model.config.hidden, at = (s * T + t0) * D
        return (site == .mlpOutput ? runs.mlp[j] : runs.attn[j])[at..<(at + D)]
    }

    /// Every restoration at token t0, as one batch over the suffix t0..<T that starts each
    /// restoration at the lowest block it changes and reads positions before t0 from the corrupted run.
    func restoreBatched(_ p: TracePrompt, t0: Int, runs: Runs, answer: Int32, into scores: inout [[Float]]) throws(EngineError) {
        let net = model.net, L = net.L, D = net.D, T = p.tokens.count, S = spec.samples, P = T - t0
        // (kind index, block, window, first block run). A restoration changes only token t0 of its
        // lowest block lo, whose output there is known in closed form (the corrupted input plus the
        // clean or corrupted sublayer outputs), so it starts at lo + 1 — except an attention
        // restoration with the sequential residual, whose MLP at t0 must see the clean attention.
        let parallel = model.config.parallelResidual
        var items: [(ki: Int, l: Int, win: Range<Int>, start: Int)] = []
        for (ki, kind) in kinds.enumerated() {
            for l in 0..<L {
                let w = window(l, kind)
                items.append((ki, l, w, kind == .attn && !parallel ? w.lowerBound : w.lowerBound + 1))
            }
        }
        items.sort { ($0.start, $0.ki, $0.l) < ($1.start, $1.ki, $1.l) }
        // rows in chunks of at most ~4096 positions (the workspace's size), S copies per item
        let perChunk = max(1, 4096 / max(1, P * S))
        var first = 0
        while first < items.count {
            let chunk = Array(items[first..<min(items.count, first + perChunk)])
            first += chunk.count
            let R = chunk.count * S
            let start = chunk.flatMap { [Int](repeating: $0.start, count: S) }
            let sample = (0..<R).map { $0 % S }
            let answers = [Int32](repeating: answer, count: R)
            let probs = net.suffixForward(ws, rows: R, t0: t0, total: T, start: start, sample: sample, prefixQKV: { l in
                    UnsafePointer(runs.qkv[l].ptr)
                }, enter: { range, x in
                    for r in range {
                        let it = chunk[r / S], s = r % S, dst = x + (r - range.lowerBound) * P * D
                        dst.update(from: runs.residual[it.start].ptr + (s * T + t0) * D, count: P * D)
                        let kind = kinds[it.ki], lo = it.win.lowerBound
                        if kind.site == .blockOutput {
                            clean(runs, .blockOutput, lo, t0).withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: D) }
                        } else if it.start == lo + 1 {
                            // block lo's output at t0 = x + attn + mlp, one of them restored (as the forward pass adds them)
                            let xin = runs.residual[lo].ptr + (s * T + t0) * D
                            let a = kind == .attn ? clean(runs, .attnOutput, lo, t0) : corrupted(runs, .attnOutput, lo, s, t0, T)
                            let m = kind == .mlp ? clean(runs, .mlpOutput, lo, t0) : corrupted(runs, .mlpOutput, lo, s, t0, T)
                            a.withUnsafeBufferPointer { ap in m.withUnsafeBufferPointer { mp in
                                for j in 0..<D { dst[j] = parallel ? xin[j] + ap[j] + mp[j] : (xin[j] + ap[j]) + mp[j] }
                            } }
                        }
                    }
                }, patch: { site, j, A, buf in
                    for a in 0..<A {
                        let it = chunk[a / S], kind = kinds[it.ki]
                        let dst = buf + a * P * D   // position t0 of row a
                        if site == kind.site && it.win.contains(j) && j >= it.start {
                            clean(runs, site, j, t0).withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: D) }
                        } else if site == kind.frozen {
                            corrupted(runs, site, j, a % S, t0, T).withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: D) }
                        }
                    }
                }, answers: answers)
            for (ci, it) in chunk.enumerated() {
                var m: Float = 0
                for s in 0..<S { m += probs[ci * S + s] }
                scores[it.ki][t0 * L + it.l] = m / Float(S)
            }
        }
    }

    /// One restoration as a full forward pass of the corrupted copies with hooks (the reference's way).
    func restoreOne(_ p: TracePrompt, z: [Float], t0: Int, kind: TraceKind, layer l: Int, runs: Runs, answer: Int32) throws(EngineError) -> Float {
        let net = model.net, L = net.L, V = net.V, T = p.tokens.count, S = spec.samples
        let hooks = corruption(p, z)
        let targets = (0..<S).map { (row: $0, t: t0) }
        for j in window(l, kind) {
            let c = Array(clean(runs, kind.site, j, t0))
            try hooks.overwrite(kind.site, layer: j, at: targets, with: [[Float]](repeating: c, count: S))
        }
        if let f = kind.frozen {
            for j in 0..<L {
                try hooks.overwrite(f, layer: j, at: targets, with: (0..<S).map { Array(corrupted(runs, f, j, $0, t0, T)) })
            }
        }
        let tokens = Array([[Int32]](repeating: p.tokens, count: S).joined())
        try net.forward(tokens: tokens, batch: S, seq: T, hooks: hooks, keepForBackward: false)
        var m: Float = 0
        for s in 0..<S { m += GPTNeoX.probability(net.logitsBuf.ptr + (s * T + T - 1) * V, V, answer) }
        return m / Float(S)
    }
}

// MARK: averages, report, file

extension CausalTracer {
    public static let format = "behemoth.trace"
    public static let formatVersion: Int64 = 1

    /// The average indirect effect (score − low) over the correctly answered prompts, per kind,
    /// [groups][L] (NaN where no such prompt has the group): each prompt counts once per group, with
    /// the mean over its positions in the group.
    public func averageEffects() -> [[[Double]]] {
        let L = model.config.layers, G = TracePrompt.groupNames.count
        return kinds.indices.map { k in
            var sums = [[Double]](repeating: [Double](repeating: 0, count: L), count: G), counts = [Int](repeating: 0, count: G)
            for r in results where r.correct {
                for (g, ps) in r.prompt.groupPositions().enumerated() where !ps.isEmpty {
                    counts[g] += 1
                    for l in 0..<L {
                        let m = ps.reduce(0.0) { $0 + Double(r.scores[k][$1 * L + l]) } / Double(ps.count)
                        sums[g][l] += m - Double(r.low)
                    }
                }
            }
            return (0..<G).map { g in counts[g] == 0 ? [Double](repeating: .nan, count: L) : sums[g].map { $0 / Double(counts[g]) } }
        }
    }

    public var correctResults: [TracedPrompt] { results.filter(\.correct) }

    /// Mean high − low over the correctly answered prompts (NaN with none).
    public var totalEffect: Double {
        let ok = correctResults
        return ok.isEmpty ? .nan : ok.reduce(0.0) { $0 + Double($1.high - $1.low) } / Double(ok.count)
    }

    /// The spec as run, with what it ran on.
    public func specJSON() -> JSON {
        guard case var .object(f) = spec.toJSON() else { return spec.toJSON() }
        f += [("sigma", .number(sigma)), ("kinds_traced", .strings(kinds.map(\.rawValue))),
              ("model_digest", .string(model.contentDigest)), ("dataset_digest", .string(datasetDigest)),
              ("library_version", .string(Version.string))]
        return .object(f)
    }

    /// The summary: counts (requested vs traced vs answered correctly), high > low, the total effect,
    /// and per kind where the average indirect effect peaks (group, block) and its curve for the
    /// subject's last token and the last token.
    public func report() -> JSON {
        let ok = correctResults, L = model.config.layers
        let avg = averageEffects(), names = TracePrompt.groupNames
        var perKind: [(String, JSON)] = []
        for (k, kind) in kinds.enumerated() {
            var best = (g: -1, l: -1, v: -Double.infinity)
            // a one-token subject is both its first and last token: a tie goes to subject_last (ROME's site)
            for g in 0..<names.count {
                for l in 0..<L where avg[k][g][l].isFinite && (avg[k][g][l] > best.v || (avg[k][g][l] == best.v && g == 3 && best.g == 1 && l == best.l)) {
                    best = (g, l, avg[k][g][l])
                }
            }
            perKind.append((kind.rawValue, .object([
                ("peak", best.g < 0 ? .null : .object([("group", .string(names[best.g])), ("block", .int(best.l)), ("indirect_effect", .number(best.v))])),
                ("average_indirect_effect", .object(names.indices.map { g in (names[g], .array(avg[k][g].map { $0.isFinite ? .number($0) : .null })) })),
            ])))
        }
        return .object([
            ("spec", specJSON()),
            ("prompts_requested", .int(prompts.count)), ("prompts_traced", .int(results.count)),
            ("answered_correctly", .int(ok.count)),
            ("high_above_low", .int(ok.filter { $0.high > $0.low }.count)),
            ("mean_high", .number(ok.isEmpty ? .nan : ok.reduce(0.0) { $0 + Double($1.high) } / Double(ok.count))),
            ("mean_low", .number(ok.isEmpty ? .nan : ok.reduce(0.0) { $0 + Double($1.low) } / Double(ok.count))),
            ("total_effect", .number(totalEffect)),
            ("kinds", .object(perKind)),
            ("seconds", .number(seconds)),
        ])
    }

    /// Writes the trace file (format behemoth.trace; docs/formats.md).
    public func save(_ path: String) throws(EngineError) {
        guard !results.isEmpty else { throw .misuse("trace: nothing traced yet to save") }
        let F = results.count, L = model.config.layers, T = results.map(\.prompt.tokens.count).max()!, G = TracePrompt.groupNames.count
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(Self.format, version: Self.formatVersion, spec: specJSON().serialized())
            try f.setAttribute("report", string: report().serialized())
            var offsets: [Int64] = [0]
            for r in results { offsets.append(offsets.last! + Int64(r.prompt.tokens.count)) }
            try f.write("/prompts", results.flatMap(\.prompt.tokens))
            try f.write("/offsets", offsets)
            try f.write("/facts", results.map(\.prompt.fact))
            try f.write("/target", results.map(\.prompt.target))
            try f.write("/answer", results.map(\.answer))
            try f.write("/correct", results.map { UInt8($0.correct ? 1 : 0) })
            try f.write("/subject_range", results.flatMap { [Int32($0.prompt.subject.lowerBound), Int32($0.prompt.subject.upperBound)] }, shape: [F, 2])
            try f.write("/low", results.map(\.low))
            try f.write("/high", results.map(\.high))
            var groups = [Int32](repeating: -1, count: F * T)
            for (i, r) in results.enumerated() { for (t, g) in r.prompt.groupOfPosition().enumerated() { groups[i * T + t] = g } }
            try f.write("/token_groups", groups, shape: [F, T])
            try f.setAttribute("names", string: JSON.strings(TracePrompt.groupNames).serialized(), at: "/token_groups")
            for kind in kinds {
                try f.write("/scores/\(kind.rawValue)", array("scores/\(kind.rawValue)")!, shape: [F, T, L])
                try f.setAttribute("site", string: kind.site.rawValue, at: "/scores/\(kind.rawValue)")
                try f.write("/average/\(kind.rawValue)", array("average/\(kind.rawValue)")!, shape: [G, L])
            }
            try f.write("/average/total_effect", [Float(totalEffect)])
            try f.setAttribute("count", int: Int64(correctResults.count), at: "/average")
        }
    }
}

extension CausalTracer {
    /// The traced kinds' names (block, mlp, attn, block_severed_mlp, block_severed_attn).
    public var kindNames: [String] { kinds.map(\.rawValue) }

    /// A float array of the results so far, as the trace file stores it: "low", "high" [F],
    /// "scores/<kind>" [F, T, L] (NaN past a prompt's end), "average/<kind>" [groups, L].
    public func array(_ name: String) -> [Float]? {
        if name == "low" { return results.map(\.low) }
        if name == "high" { return results.map(\.high) }
        let L = model.config.layers, T = results.map(\.prompt.tokens.count).max() ?? 0
        if name.hasPrefix("scores/"), let k = kinds.firstIndex(where: { "scores/" + $0.rawValue == name }) {
            var s = [Float](repeating: .nan, count: results.count * T * L)
            for (i, r) in results.enumerated() { for j in 0..<(r.prompt.tokens.count * L) { s[i * T * L + j] = r.scores[k][j] } }
            return s
        }
        if name.hasPrefix("average/"), let k = kinds.firstIndex(where: { "average/" + $0.rawValue == name }) {
            return averageEffects()[k].flatMap { $0.map(Float.init) }
        }
        return nil
    }
}
