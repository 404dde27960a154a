#if canImport(Glibc)
import Glibc
#endif

/// What to record from a set of prompts: which sites of which blocks, at which positions, into
/// which file (docs/analysis.md, "Recording activations").
public struct RecordSpec: DeclaredSpec, Sendable {
    public enum Position: String, CaseIterable, Sendable {
        case subjectFirst = "subject_first", subjectLast = "subject_last", relation, last, all
    }
    /// The activations file to write (format behemoth.activations).
    public var path = ""
    /// The prompt group (a dataset's evaluation group or an edit set's group); ignored for explicit prompts.
    public var group = "sro"
    /// Hook sites (block_output, mlp_hidden, ...; embeddings and final_norm have no block).
    public var sites = ["block_output"]
    /// Blocks of the per-block sites; [] = every block.
    public var blocks: [Int] = []
    /// Positions recorded per prompt, one slot each; ["all"]: every position (padded to the longest prompt).
    public var positions = ["subject_last", "last"]
    /// Prompts per forward pass (and per step).
    public var batchSize = 64
    /// Record only the first `count` prompts (0 = all).
    public var count = 0

    public init() {}
    public static let specPath = "record spec"
    public static let fields: [SpecField<RecordSpec>] = [
        .string("path", \.path), .string("group", \.group), .strings("sites", \.sites), .ints("blocks", \.blocks),
        .strings("positions", \.positions), .int("batch_size", \.batchSize, min: 1, max: 65_536), .int("count", \.count, min: 0),
    ]

    public func validate() throws(EngineError) {
        guard !sites.isEmpty else { throw .invalid("record spec.sites: nothing to record") }
        for s in sites where HookSite(rawValue: s) == nil {
            throw .invalid("record spec.sites: \"\(s)\" is not a site (\(HookSite.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard !positions.isEmpty else { throw .invalid("record spec.positions: give at least one position (subject_first, subject_last, relation, last, all)") }
        for p in positions where Position(rawValue: p) == nil {
            throw .invalid("record spec.positions: \"\(p)\" is not a position (\(Position.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if positions.contains("all") && positions.count > 1 { throw .invalid("record spec.positions: \"all\" already records every position; give it alone") }
        guard Set(positions).count == positions.count, Set(sites).count == sites.count else { throw .invalid("record spec: a site or position is listed twice") }
    }
}

/// Prompts to record or trace: tokens, and per prompt the fact, the subject's span and the relation
/// word's position when known.
public struct PromptBatch: Sendable {
    public var tokens: [Int32]
    public var offsets: [Int64]
    public var facts: [Int32]
    public var subjects: [Range<Int>?]
    public var relations: [Int?]
    public var count: Int { offsets.count - 1 }
    public func prompt(_ i: Int) -> ArraySlice<Int32> { tokens[Int(offsets[i])..<Int(offsets[i + 1])] }

    /// Explicit prompts (no subjects known): the offsets are checked.
    public init(tokens: [Int32], offsets: [Int64]) throws(EngineError) {
        guard offsets.count >= 2 else { throw .invalid("prompts: no prompts given (the offsets need at least 2 entries)") }
        guard offsets.first == 0, offsets.last == Int64(tokens.count) else {
            throw .invalid("prompts: offsets must start at 0 and end at the token count \(tokens.count) (got \(offsets.first!) and \(offsets.last!))")
        }
        for i in 1..<offsets.count where offsets[i] <= offsets[i - 1] {
            throw .invalid("prompts: prompt \(i - 1) is empty or the offsets decrease (\(offsets[i - 1]) → \(offsets[i]))")
        }
        self.tokens = tokens; self.offsets = offsets
        facts = [Int32](repeating: -1, count: offsets.count - 1)
        subjects = [Range<Int>?](repeating: nil, count: offsets.count - 1)
        relations = [Int?](repeating: nil, count: offsets.count - 1)
    }

    /// A prompt group whose facts are the dataset's: each prompt's subject span and relation word found in it.
    public init(group g: PromptSet, dataset ds: Dataset) throws(EngineError) {
        guard g.count > 0 else { throw .invalid("prompts: group \"\(g.name)\" is empty") }
        try self.init(tokens: g.prompts, offsets: g.offsets)
        facts = g.facts
        for i in 0..<g.count {
            guard let at = ds.factPositions(in: Array(g.prompt(i)), fact: Int(g.facts[i])) else { continue }
            subjects[i] = at.subject
            relations[i] = at.relations.first
        }
    }
}

/// Records activations of a prompt set into an activations file, `batchSize` prompts per step
/// (streamed: memory does not grow with the number of prompts). The file also holds the prompts,
/// their facts, the recorded positions and the model's content digest.
public final class ActivationRecording {
    public let spec: RecordSpec
    public let model: LanguageModel
    public let prompts: PromptBatch
    let points: [HookPoint]
    let slots: Int
    /// positions[i·slots + k]: the token recorded in slot k of prompt i (−1: none, zeros recorded).
    public let positions: [Int32]
    let recorder: HDF5ActivationRecorder
    public private(set) var done = 0
    var gathered: [Float] = []

    public init(model: LanguageModel, prompts all: PromptBatch, spec: RecordSpec, extraSpec: [(String, JSON)] = []) throws(EngineError) {
        guard !spec.path.isEmpty else { throw .invalid("record spec.path: give the activations file to write") }
        let L = model.config.layers
        for b in spec.blocks where b < 0 || b >= L { throw .invalid("record spec.blocks: block \(b) does not exist (the model has \(L) blocks, 0...\(L - 1))") }
        var prompts = all
        if spec.count > 0 && spec.count < all.count {
            let n = spec.count
            prompts.tokens = Array(all.tokens[0..<Int(all.offsets[n])]); prompts.offsets = Array(all.offsets[0...n])
            prompts.facts = Array(all.facts[0..<n]); prompts.subjects = Array(all.subjects[0..<n]); prompts.relations = Array(all.relations[0..<n])
        }
        let maxLen = (0..<prompts.count).map { Int(prompts.offsets[$0 + 1] - prompts.offsets[$0]) }.max()!
        guard maxLen <= model.maxPositions else { throw .invalid("record: a prompt has \(maxLen) tokens, more than the model's max_positions \(model.maxPositions)") }
        for t in prompts.tokens where t < 0 || Int(t) >= model.vocabSize {
            throw .invalid("record: token \(t) is outside the model's vocabulary 0..<\(model.vocabSize)")
        }
        let kinds = spec.positions.map { RecordSpec.Position(rawValue: $0)! }
        let all = kinds == [.all]
        slots = all ? maxLen : kinds.count
        var pos = [Int32](repeating: -1, count: prompts.count * slots)
        for i in 0..<prompts.count {
            let n = Int(prompts.offsets[i + 1] - prompts.offsets[i])
            if all { for t in 0..<n { pos[i * slots + t] = Int32(t) }; continue }
            for (k, kind) in kinds.enumerated() {
                let t: Int?
                switch kind {
                case .last: t = n - 1
                case .subjectFirst: t = prompts.subjects[i]?.lowerBound
                case .subjectLast: t = prompts.subjects[i].map { $0.upperBound - 1 }
                case .relation: t = prompts.relations[i]
                case .all: t = nil
                }
                guard let t else {
                    throw .invalid("record: prompt \(i) has no \(kind.rawValue) position (\(prompts.facts[i] < 0 ? "explicit prompts know only \"last\" and \"all\"" : "its fact's subject or relation word is not in the prompt"))")
                }
                pos[i * slots + k] = Int32(t)
            }
        }
        positions = pos
        let blocks = spec.blocks.isEmpty ? Array(0..<L) : spec.blocks
        points = spec.sites.flatMap { s -> [HookPoint] in
            let site = HookSite(rawValue: s)!
            return site.isGlobal ? [HookPoint(site)] : blocks.map { HookPoint(site, layer: $0) }
        }
        self.spec = spec; self.model = model; self.prompts = prompts
        try model.ensureCapacity(batch: min(spec.batchSize, prompts.count), seq: maxLen)
        recorder = try HDF5ActivationRecorder(path: spec.path, spec: [
            ("record", spec.toJSON()), ("prompts", .int(prompts.count)), ("slots", .int(slots)),
            ("model_digest", .string(model.contentDigest)), ("library_version", .string(Version.string)),
        ] + extraSpec)
    }

    public var total: Int { prompts.count }
    public var finished: Bool { done == prompts.count }

    /// Records the next batch; false when every prompt is recorded.
    @discardableResult
    public func step() throws(EngineError) -> Bool {
        guard !finished else { return false }
        let net = model.net
        let n = min(spec.batchSize, prompts.count - done, net.maxBatch), first = done
        let width = (first..<(first + n)).map { Int(prompts.offsets[$0 + 1] - prompts.offsets[$0]) }.max()!
        // right-padded with each prompt's last token: causal attention keeps the padding out of every recorded position
        var tokens = [Int32](repeating: 0, count: n * width)
        for r in 0..<n {
            let p = prompts.prompt(first + r)
            for t in 0..<width { tokens[r * width + t] = p[p.startIndex + min(t, p.count - 1)] }
        }
        let hooks = ForwardHooks(), K = slots
        for point in points {
            hooks.add(point.site, layer: point.layer) { [self] (v: ActivationView) throws(EngineError) in
                let w = v.width
                if gathered.count < v.batch * K * w { gathered = [Float](repeating: 0, count: v.batch * K * w) }
                try gathered.withUnsafeMutableBufferPointer { (g) throws(EngineError) in
                    for r in 0..<v.batch {
                        let i = v.firstRow + r
                        for k in 0..<K {
                            let dst = g.baseAddress! + (r * K + k) * w, t = Int(positions[i * K + k])
                            if t < 0 { dst.update(repeating: 0, count: w) } else { dst.update(from: try v.row(i, t).baseAddress!, count: w) }
                        }
                    }
                    try recorder.receive(point, ActivationView(base: g.baseAddress!, batch: v.batch, seq: K, width: w, firstRow: v.firstRow))
                }
            }
        }
        try tokens.withUnsafeBufferPointer { (tp) throws(EngineError) in
            _ = try net.forward(tokens: tp.baseAddress!, targets: nil, batch: n, seq: width, hooks: hooks, firstRow: first, totalRows: prompts.count,
                                    keepForBackward: false)
        }
        done += n
        return true
    }

    /// Writes the prompts, facts and positions and moves the file into place; the summary.
    public func finish() throws(EngineError) -> JSON {
        guard finished else { throw .misuse("record: \(prompts.count - done) prompts are not recorded yet (step until done)") }
        try recorder.writeArray("/prompts", prompts.tokens, shape: nil)
        try recorder.writeArray("/offsets", prompts.offsets, shape: nil)
        try recorder.writeArray("/facts", prompts.facts, shape: nil)
        try recorder.writeArray("/positions", positions, shape: [prompts.count, slots])
        try recorder.finish()
        return .object([("path", .string(spec.path)), ("prompts_requested", spec.count > 0 ? .int(spec.count) : .string("all")),
                        ("prompts", .int(prompts.count)), ("slots", .int(slots)),
                        ("points", .strings(points.map(\.name))), ("positions", .strings(spec.positions)),
                        ("model_digest", .string(model.contentDigest))])
    }
}
