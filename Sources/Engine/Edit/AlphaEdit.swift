/// AlphaEdit (Fang et al., ICLR 2025; docs/training-and-editing.md, "MEMIT and AlphaEdit"):
/// MEMIT's z and keys, with each block's update projected on the null space of the preserved
/// knowledge: P = U₀U₀ᵀ over C's eigenvectors whose eigenvalues are below `nullspace_threshold`, and
/// Δᵀ = solve(P (KᵀK + K_pᵀK_p) + λ I, P Kᵀ R) in float64, where K_pᵀK_p sums the keys of the
/// experiment's earlier runs (a sequential run protects its earlier edits, as the reference's cache_c).
public struct AlphaEditSpec: LocateThenEditSpec {
    public static let method = "alphaedit"

    /// Whose null space the update keeps to.
    public enum Preserved: String, CaseIterable, Sendable {
        /// C's, the key statistics of the training sentences (the reference).
        case covariance
        /// The keys at the fact token of exactly the dataset's facts, less the experiment's edited
        /// ones: the preserved knowledge known exactly, which only synthetic data allows.
        case trainingFacts = "training_facts"
    }

    public var v = VStarSpec()
    /// The reference's nullspace_threshold (2e-2 in its released hparams).
    public var nullspaceThreshold = 2e-2
    /// λ, the reference's L2 (1 to 10 in its released hparams).
    public var l2 = 10.0
    public var preserved = Preserved.covariance
    public var stats = KeyStatisticsSpec()

    /// MEMIT's: the last three blocks, block 0 left out.
    public static func defaultBlocks(layers: Int) -> [Int]? { MEMITSpec.defaultBlocks(layers: layers) }

    public init() {}

    public static let fields: [SpecField<AlphaEditSpec>] = VStarSpec.fields(at: \.v) + [
        .double("nullspace_threshold", \.nullspaceThreshold, min: 0, max: 1e12, exclusiveMin: true),
        .double("l2", \.l2, min: 0, max: 1e12, exclusiveMin: true),
        .choice("preserved", \.preserved),
    ] + KeyStatisticsSpec.fields(at: \.stats)

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        let ds = try requireDataset(c, AlphaEditSpec.method)
        let blocks = c.selection.blocks.sorted()
        let (stats, source) = try stats.statistics(c, ds, blocks: blocks)
        // P per block, from the unedited model (run 0): kept for the experiment's later runs
        let pKey = "alphaedit.projectors.\(preserved.rawValue).\(nullspaceThreshold)"
        var projectors = c.shared.values[pKey] as? [Int: (p: [Double], dimension: Int)] ?? [:]
        for b in blocks where projectors[b] == nil {
            switch preserved {
            case .covariance: projectors[b] = try stats[b]!.nullSpaceProjector(threshold: nullspaceThreshold)
            case .trainingFacts: projectors[b] = try factKeyStatistics(c, ds, block: b).nullSpaceProjector(threshold: nullspaceThreshold)
            }
        }
        c.shared.values[pKey] = projectors
        // K_pᵀK_p of the earlier runs, per block
        let cacheKey = "alphaedit.preserved"
        let shared = c.shared
        let lambda = l2
        let editor = try BatchLocateEditor(
            method: AlphaEditSpec.method, v: v, context: c, dataset: ds, statistics: stats, statisticsSource: source,
            settings: [("nullspace_threshold", .number(nullspaceThreshold)), ("l2", .number(lambda)), ("preserved", .string(preserved.rawValue)),
                       ("null_space_dimension", .object(blocks.map { ("\($0)", .int(projectors[$0]!.dimension)) })),
                       ("earlier_runs", .int(c.run))]) { (block, K, R, n) throws(EngineError) in
            try AlphaEditSpec.delta(projector: projectors[block]!.p, preserved: (shared.values[cacheKey] as? [Int: [Double]])?[block],
                                    lambda: lambda, keys: K, residuals: R, n: n)
        }
        editor.afterBlock = { (block, K, n) throws(EngineError) in
            let I = K.count / n
            let kk = try LinearAlgebra.product(K, K, m: I, n: I, k: n, transA: true)
            var kept = shared.values[cacheKey] as? [Int: [Double]] ?? [:]
            if var old = kept[block] { for i in 0..<kk.count { old[i] += kk[i] }; kept[block] = old } else { kept[block] = kk }
            shared.values[cacheKey] = kept
        }
        return editor
    }

    /// The second moment K₀ᵀK₀ / m of the keys at the fact token of the dataset's base facts, less
    /// the experiment's edited (subject, relation) pairs, on the model as it is.
    func factKeyStatistics(_ c: EditContext, _ ds: Dataset, block: Int) throws(EngineError) -> KeyStatistics {
        let start = monotonicSeconds()
        // nested edits change nested facts, which are not among the base facts kept here
        let edited = c.editSet.spec.kind == .nestedSubject || c.editSet.spec.kind == .nestedObject
            ? Set<Int>() : Set(c.experimentEdits.map { $0.subject * ds.numBaseRelations + $0.relation })
        var prompts: [[Int32]] = [], lookups: [Int] = []
        for s in 0..<ds.numSubjects {
            for r in 0..<ds.numBaseRelations where !edited.contains(s * ds.numBaseRelations + r) {
                let q = try VStarSpec.request(ds.sroPrompt(ofFact: ds.factIndex(subject: s, relation: r)), target: 0, factToken: v.factToken)
                prompts.append(q.prompt); lookups.append(q.lookup)
            }
        }
        guard !prompts.isEmpty else { throw .invalid("alphaedit: preserved = training_facts, but every fact of the dataset is edited: nothing is left to preserve") }
        let I = c.model.config.intermediate, m = prompts.count
        var moment = [Double](repeating: 0, count: I * I)
        let chunk = 512
        for first in stride(from: 0, to: m, by: chunk) {
            let end = min(m, first + chunk)
            let keys = try ROME.vectors(c.model, block: block, site: .mlpHidden, prompts: Array(prompts[first..<end]), lookups: Array(lookups[first..<end]))
            let k = keys.flatMap { $0.map(Double.init) }
            let kk = try LinearAlgebra.product(k, k, m: I, n: I, k: end - first, transA: true)
            for i in 0..<(I * I) { moment[i] += kk[i] }
        }
        for i in 0..<(I * I) { moment[i] /= Double(m) }
        return try KeyStatistics(block: block, moment: moment, positions: m, sample: KeySample(), modelDigest: c.model.contentDigest,
                                 datasetDigest: ds.contentDigest(), started: start)
    }

    /// ΔW [D, I] = (solve(P (KᵀK + K_pᵀK_p) + λ I, P Kᵀ R))ᵀ with K [n, I], R [n, D], P and K_pᵀK_p
    /// [I, I] (nil: no earlier keys), in float64.
    static func delta(projector P: [Double], preserved: [Double]?, lambda: Double, keys K: [Double], residuals R: [Double], n: Int) throws(EngineError) -> [Double] {
        let I = K.count / n, D = R.count / n
        var m = try LinearAlgebra.product(K, K, m: I, n: I, k: n, transA: true)       // KᵀK
        if let kept = preserved { for i in 0..<(I * I) { m[i] += kept[i] } }
        var a = try LinearAlgebra.product(P, m, m: I, n: I, k: I)                     // P (KᵀK + K_pᵀK_p)
        for i in 0..<I { a[i * I + i] += lambda }
        let kr = try LinearAlgebra.product(K, R, m: I, n: D, k: n, transA: true)     // Kᵀ R [I, D]
        let rhs = try LinearAlgebra.product(P, kr, m: I, n: D, k: I)                  // P Kᵀ R
        let dt = try LinearAlgebra.solve(a, n: I, rhs, columns: D)                    // Δᵀ [I, D]
        return LinearAlgebra.transpose(dt, I, D)
    }
}
