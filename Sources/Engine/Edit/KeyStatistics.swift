#if canImport(Glibc)
import Glibc
#endif

/// Which training sentences the key statistics average over: all of them (`tokens` = 0), or whole
/// sentences in a seeded random order until at least `tokens` positions.
public struct KeySample: Hashable, Sendable {
    public var tokens = 0
    public var seed: UInt64 = 0
    public init(tokens: Int = 0, seed: UInt64 = 0) { self.tokens = tokens; self.seed = seed }

    public func toJSON() -> JSON { .object([("tokens", .int(tokens)), ("seed", .int(Int(seed)))]) }
}

/// Key statistics of one block: C = E[k kᵀ] (uncentered) of the MLP key k (the `mlp_hidden` site,
/// the input of `dense_4h_to_h`) over every position of the model's own training sentences (or a
/// seeded sample), as ROME's "mom2": each batch's Kᵀ·K in float32, batches summed in float64. With
/// it its eigendecomposition (float64, ascending), which gives the numerical rank, the regularised
/// inverses ROME and MEMIT use and AlphaEdit's null-space projector.
///
/// Saved as `format = behemoth.key_statistics` keyed by the model's content digest, the dataset's,
/// the block and the sample; `KeyStatisticsCache` reuses them in the process and from a folder.
public final class KeyStatistics {
    public static let format = "behemoth.key_statistics"
    public static let formatVersion: Int64 = 2
    /// Eigenvalues at or below this fraction of the largest count as zero (the numerical rank):
    /// float32 products of a few thousand vectors carry relative errors near 1e-6.
    public static let rankTolerance = 1e-5

    public let block: Int
    public let width: Int
    /// E[k kᵀ], [width, width] row-major.
    public let moment: [Double]
    /// Positions averaged (whole sentences: at least the requested count when sampling).
    public let positions: Int
    public let sample: KeySample
    public let modelDigest: String
    public let datasetDigest: String
    /// Eigenvalues (ascending) and eigenvectors (row j of [width, width] row-major is vector j).
    public let eigenvalues: [Double]
    public let eigenvectors: [Double]
    public let seconds: Double

    init(block: Int, width: Int, moment: [Double], positions: Int, sample: KeySample, modelDigest: String, datasetDigest: String,
         eigenvalues: [Double], eigenvectors: [Double], seconds: Double) {
        self.block = block; self.width = width; self.moment = moment; self.positions = positions; self.sample = sample
        self.modelDigest = modelDigest; self.datasetDigest = datasetDigest
        self.eigenvalues = eigenvalues; self.eigenvectors = eigenvectors; self.seconds = seconds
    }

    /// Eigenvalues above `rankTolerance` × the largest.
    public var rank: Int {
        let top = eigenvalues.last ?? 0
        return eigenvalues.filter { $0 > KeyStatistics.rankTolerance * top }.count
    }

    public func summary() -> JSON {
        .object([("block", .int(block)), ("width", .int(width)), ("positions", .int(positions)), ("sample", sample.toJSON()),
                 ("rank", .int(rank)), ("largest_eigenvalue", .number(eigenvalues.last ?? 0)),
                 ("smallest_eigenvalue", .number(eigenvalues.first ?? 0)),
                 ("model_digest", .string(modelDigest)), ("dataset_digest", .string(datasetDigest))])
    }

    // MARK: computing

    /// The sentences the sample takes: (first token, length) of each, in order for all of them,
    /// in a seeded order for a sample.
    static func sentences(offsets: [Int64], _ sample: KeySample) -> [(Int, Int)] {
        let n = offsets.count - 1
        var all = (0..<max(0, n)).map { (Int(offsets[$0]), Int(offsets[$0 + 1] - offsets[$0])) }
        let total = Int(offsets.last ?? 0)
        if sample.tokens <= 0 || sample.tokens >= total { return all }
        var rng = RNG(seed: sample.seed, stream: "key statistics sample")
        rng.shuffle(&all)
        var out: [(Int, Int)] = [], count = 0
        for s in all where count < sample.tokens { out.append(s); count += s.1 }
        return out
    }

    /// C at each of `blocks` over the dataset's training sentences, in one pass over the sample.
    public static func compute(model: LanguageModel, dataset: Dataset, blocks: [Int], sample: KeySample = KeySample()) throws(EngineError) -> [KeyStatistics] {
        try dataset.checkFits(vocabSize: model.vocabSize, what: "key statistics")
        return try compute(model: model, tokens: dataset.tokens, offsets: dataset.offsets, blocks: blocks, sample: sample,
                           datasetDigest: dataset.contentDigest())
    }

    /// C at each of `blocks` over sentences given as flat tokens + offsets (a recorder per block).
    public static func compute(model: LanguageModel, tokens all: [Int32], offsets: [Int64], blocks: [Int], sample: KeySample = KeySample(),
                               datasetDigest: String) throws(EngineError) -> [KeyStatistics] {
        let L = model.config.layers, I = model.config.intermediate
        for b in blocks where b < 0 || b >= L {
            throw .invalid("key statistics: block \(b) does not exist (the model has \(L) blocks, 0...\(L - 1))")
        }
        guard offsets.first == 0, Int(offsets.last ?? -1) == all.count, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw .invalid("key statistics: the sentence offsets do not cover the \(all.count) tokens in order")
        }
        let start = monotonicSeconds()
        let spans = sentences(offsets: offsets, sample).filter { $0.1 > 0 }
        guard !spans.isEmpty else { throw .invalid("key statistics: there are no sentences to average over") }
        let width = spans.map(\.1).max()!
        // Priced before allocating: the padded tokens, and per block the float64 sums plus float32 scratch.
        try MemoryBudget.check(MemoryBudget.total([[spans.count, width, 4], [blocks.count, I, I, 8 + 4 + 4]]),
                               "key statistics: \(spans.count) sentences, \(blocks.count) blocks of \(I)×\(I)")
        var tokens = [Int32](repeating: Vocabulary.padding, count: spans.count * width)
        for (r, (first, len)) in spans.enumerated() {
            for t in 0..<len { tokens[r * width + t] = all[first + t] }
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= model.vocabSize }) {
            throw .invalid("key statistics: token \(bad) is outside the model's vocabulary of \(model.vocabSize)")
        }
        let recorder = SecondMomentRecorder(lengths: spans.map(\.1))
        let hooks = ForwardHooks()
        for b in blocks { hooks.record(.mlpHidden, layer: b, into: recorder) }
        // Chunks of at least 64 rows (one float32 product per chunk and block), the evaluation's own
        // capacity: growing the model's training buffers further costs more in page faults (about
        // 2 s for 256 rows of the demo model) than the larger products save.
        try model.ensureCapacity(batch: min(spans.count, max(model.net.maxBatch, 64)), seq: width)
        try tokens.withUnsafeBufferPointer { (t) throws(EngineError) in try model.run(tokens: t.baseAddress!, rows: spans.count, width: width, hooks: hooks) }
        let modelDigest = model.contentDigest
        var out: [KeyStatistics] = []
        for b in blocks {
            let p = HookPoint(.mlpHidden, layer: b)
            guard let m = recorder.moment(p) else { throw .internalError("key statistics: nothing recorded at block \(b)") }
            out.append(try KeyStatistics(block: b, moment: m, positions: recorder.counts[p]!, sample: sample,
                                         modelDigest: modelDigest, datasetDigest: datasetDigest, started: start))
        }
        return out
    }

    /// From a second moment: checks it and takes its eigendecomposition.
    public convenience init(block: Int, moment m: [Double], positions: Int, sample: KeySample, modelDigest: String, datasetDigest: String,
                            started: Double? = nil) throws(EngineError) {
        let n = Int(Double(m.count).squareRoot())
        guard n * n == m.count, n > 0 else { throw .invalid("key statistics: \(m.count) values is not a square matrix") }
        if let i = m.firstIndex(where: { !$0.isFinite }) {
            throw .numeric("key statistics: the key covariance of block \(block) holds \(m[i]) at (\(i / n), \(i % n)): the model's activations are not finite")
        }
        let start = started ?? monotonicSeconds()
        let (values, vectors) = try LinearAlgebra.symmetricEigen(m, n: n)
        self.init(block: block, width: n, moment: m, positions: positions, sample: sample, modelDigest: modelDigest,
                  datasetDigest: datasetDigest, eigenvalues: values, eigenvectors: vectors, seconds: monotonicSeconds() - start)
    }

    // MARK: using

    /// How C⁻¹ is applied when C may be singular.
    public enum Inverse: String, CaseIterable, Sendable {
        /// Eigenvalues at or below rankTolerance × the largest are dropped (the pseudo-inverse).
        case pseudo = "pseudo_inverse"
        /// (C + r·mean eigenvalue·I)⁻¹, r = the strength.
        case ridge
        /// C⁻¹ itself; refused when C is rank-deficient (a numeric error naming the rank).
        case exact
    }

    /// C⁻¹·k (or its regularised form), in float64.
    public func applyInverse(_ k: [Double], _ how: Inverse, strength: Double = 0) throws(EngineError) -> [Double] {
        guard k.count == width else { throw .internalError("key statistics: a key of \(k.count) values for width \(width)") }
        let top = eigenvalues.last ?? 0
        guard top > 0 else { throw .numeric("key statistics of block \(block): C is zero (no positions recorded?)") }
        let mean = eigenvalues.reduce(0, +) / Double(width)
        if how == .exact && rank < width {
            throw .numeric("key statistics of block \(block): C has rank \(rank) of \(width), so it has no inverse; use inverse \"pseudo_inverse\" or \"ridge\"")
        }
        // c = Vᵀk (c[j] = e_j·k), scaled per eigenvalue, then V·c = Σ_j c[j] e_j
        let n = width
        var c = [Double](repeating: 0, count: n)
        for j in 0..<n { var s = 0.0; for i in 0..<n { s += eigenvectors[j * n + i] * k[i] }; c[j] = s }
        for j in 0..<n {
            let l = eigenvalues[j]
            switch how {
            case .pseudo: c[j] = l > KeyStatistics.rankTolerance * top ? c[j] / l : 0
            case .ridge: c[j] /= l + strength * mean
            case .exact: c[j] /= l
            }
        }
        var out = [Double](repeating: 0, count: n)
        for j in 0..<n where c[j] != 0 { for i in 0..<n { out[i] += c[j] * eigenvectors[j * n + i] } }
        return out
    }

    /// AlphaEdit's null-space projector P = U₀U₀ᵀ over the eigenvectors whose eigenvalues are below
    /// `threshold` (absolute, as the reference's 2e-2), [width, width] float64, and their number.
    /// P = U₀U₀ᵀ over the eigenvectors whose eigenvalues are below `threshold`, kept with the
    /// statistics (the cache's statistics carry their projectors from one experiment to the next).
    public func nullSpaceProjector(threshold: Double) throws(EngineError) -> (p: [Double], dimension: Int) {
        if let p = projectorLock.locked({ projectors[threshold] }) { return p }
        let p = try makeProjector(threshold: threshold)
        projectorLock.locked { projectors[threshold] = p }
        return p
    }

    private let projectorLock = Lock()
    private var projectors: [Double: (p: [Double], dimension: Int)] = [:]

    private func makeProjector(threshold: Double) throws(EngineError) -> (p: [Double], dimension: Int) {
        let kept = eigenvalues.indices.filter { eigenvalues[$0] < threshold }
        guard !kept.isEmpty else {
            throw .invalid("key statistics of block \(block): no eigenvalue of C is below the null-space threshold \(JSON.format(threshold)) (the smallest is \(JSON.format(eigenvalues.first ?? 0))): the null space is empty; raise the threshold")
        }
        let n = width, d = kept.count
        var u = [Double](repeating: 0, count: n * d)   // [n, d]
        for (c, j) in kept.enumerated() { for i in 0..<n { u[i * d + c] = eigenvectors[j * n + i] } }
        let p = try LinearAlgebra.product(u, u, m: n, n: n, k: d, transB: true)   // U₀U₀ᵀ [n, n]
        return (p, d)
    }

    // MARK: the file

    var spec: JSON {
        .object([("block", .int(block)), ("width", .int(width)), ("positions", .int(positions)), ("sample", sample.toJSON()),
                 ("rank", .int(rank)), ("rank_tolerance", .number(KeyStatistics.rankTolerance)),
                 ("model_digest", .string(modelDigest)), ("dataset_digest", .string(datasetDigest)),
                 ("accumulation", .string("float32 products per batch, float64 sums"))])
    }

    public func save(_ path: String) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(KeyStatistics.format, version: KeyStatistics.formatVersion, spec: spec.serialized())
            try f.write("/moment", moment, shape: [width, width])
            try f.write("/eigenvalues", eigenvalues, shape: [width])
            try f.write("/eigenvectors", eigenvectors, shape: [width, width])
        }
    }

    /// Loads a statistics file, checked (digests, shapes, finite values, what it was made from
    /// against `expect`: another model, dataset, block or sample is refused).
    public static func load(_ path: String, expect: (modelDigest: String, datasetDigest: String, block: Int, sample: KeySample)? = nil) throws(EngineError) -> KeyStatistics {
        _ = try BehemothFile.verify(path)
        let f = try H5File.open(path)
        defer { f.close() }
        var r = try JSONReader(text: try f.stringAttribute("spec"), path: "\(path): spec")
        let block = try r.int("block", default: -1, min: 0, max: 1 << 20)
        let width = try r.int("width", default: 0, min: 1, max: 1 << 16)
        let positions = try r.int("positions", default: 0, min: 1)
        var s = try r.object("sample")
        let sample = KeySample(tokens: try s.int("tokens", default: 0, min: 0), seed: UInt64(try s.int("seed", default: 0, min: 0)))
        try s.finish()
        _ = try r.int("rank", default: 0, min: 0)
        _ = try r.double("rank_tolerance", default: rankTolerance)
        let modelDigest = try r.string("model_digest", default: "")
        let datasetDigest = try r.string("dataset_digest", default: "")
        _ = try r.string("accumulation", default: "")
        do { try r.finish() } catch { throw .format(error.message) }
        if let e = expect {
            if e.modelDigest != modelDigest {
                throw .invalid("key statistics: \(path) was computed for another model (digest \(modelDigest), this model is \(e.modelDigest)); delete it or point the cache elsewhere")
            }
            if e.datasetDigest != datasetDigest { throw .invalid("key statistics: \(path) was computed on another dataset (digest \(datasetDigest), expected \(e.datasetDigest))") }
            if e.block != block { throw .invalid("key statistics: \(path) holds block \(block), not block \(e.block)") }
            if e.sample != sample { throw .invalid("key statistics: \(path) was computed on another sample (\(sample.toJSON().serialized()), expected \(e.sample.toJSON().serialized()))") }
        }
        func array(_ name: String, _ shape: [Int]) throws(EngineError) -> [Double] {
            let (data, got) = try f.read(name, as: Double.self)
            guard got == shape else { throw .format("\(path): \(name) has shape \(got), expected \(shape)") }
            if data.contains(where: { !$0.isFinite }) { throw .format("\(path): \(name) holds a non-finite value") }
            return data
        }
        let values = try array("/eigenvalues", [width])
        for i in 1..<max(1, values.count) where values[i] < values[i - 1] { throw .format("\(path): /eigenvalues are not ascending") }
        return KeyStatistics(block: block, width: width, moment: try array("/moment", [width, width]), positions: positions, sample: sample,
                             modelDigest: modelDigest, datasetDigest: datasetDigest, eigenvalues: values,
                             eigenvectors: try array("/eigenvectors", [width, width]), seconds: 0)
    }
}

/// Key statistics reused across edits: in this process (keyed by model digest, dataset digest,
/// block and sample), and in a folder when one is given (files named by the same key).
public final class KeyStatisticsCache: @unchecked Sendable {
    public static let shared = KeyStatisticsCache()
    struct Key: Hashable { let model: String, dataset: String, block: Int, sample: KeySample }
    private var entries: [Key: KeyStatistics] = [:]
    private var order: [Key] = []
    private let lock = Lock()
    /// Entries kept in memory (each about 24 MB at width 1024).
    public var capacity = 16

    /// How the last `get` was served, for reports: "computed", "memory" or "file".
    public enum Source: String { case computed, memory, file }

    public static func fileName(model: String, dataset: String, block: Int, sample: KeySample) -> String {
        func short(_ d: String) -> String { String((d.hasPrefix("xxh64:") ? d.dropFirst(6) : Substring(d)).prefix(16)) }
        let what = sample.tokens == 0 ? "all" : "\(sample.tokens)-seed\(sample.seed)"
        return "keystats-\(short(model))-\(short(dataset))-block\(block)-\(what).h5"
    }

    /// C for each block: from memory, from `folder`, or computed (in one pass for every missing
    /// block, then saved to `folder`).
    public func get(model: LanguageModel, dataset: Dataset, blocks: [Int], sample: KeySample, folder: String = "") throws(EngineError) -> [(KeyStatistics, Source)] {
        let md = model.contentDigest, dd = dataset.contentDigest()
        var found: [Int: (KeyStatistics, Source)] = [:]
        var missing: [Int] = []
        for b in blocks {
            let key = Key(model: md, dataset: dd, block: b, sample: sample)
            if let s = lock.locked({ entries[key] }) { found[b] = (s, .memory); continue }
            let path = folder.isEmpty ? "" : "\(folder)/\(KeyStatisticsCache.fileName(model: md, dataset: dd, block: b, sample: sample))"
            if !path.isEmpty, FileSystem.exists(path) {
                let s = try KeyStatistics.load(path, expect: (md, dd, b, sample))
                put(key, s)
                found[b] = (s, .file)
                continue
            }
            missing.append(b)
        }
        if !missing.isEmpty {
            for s in try KeyStatistics.compute(model: model, dataset: dataset, blocks: missing, sample: sample) {
                put(Key(model: md, dataset: dd, block: s.block, sample: sample), s)
                if !folder.isEmpty {
                    try FileSystem.makeDirectories(folder)
                    try s.save("\(folder)/\(KeyStatisticsCache.fileName(model: md, dataset: dd, block: s.block, sample: sample))")
                }
                found[s.block] = (s, .computed)
            }
        }
        return blocks.map { found[$0]! }
    }

    private func put(_ key: Key, _ s: KeyStatistics) {
        lock.locked {
            if entries[key] == nil { order.append(key) }
            entries[key] = s
            while order.count > capacity { entries[order.removeFirst()] = nil }
        }
    }

    public func removeAll() { lock.locked { entries.removeAll(); order.removeAll() } }
}
