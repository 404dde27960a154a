/// MEMIT (docs/training-and-editing.md, "MEMIT and AlphaEdit"): all edits of a run at once over the
/// selected blocks, as memit_main.py does it. Each edit's z is optimised at the last selected block's
/// output (compute_z: ROME's v* with δ on the residual stream); then for each block i in order, on
/// the model the earlier blocks' updates left: K = the edits' mean keys at block i [n, I],
/// R = (z − the block-output now) / (blocks left), and ΔW_i = Rᵀ · solve(λ·C_i + KᵀK, Kᵀ)ᵀ in float64.
public struct MEMITSpec: LocateThenEditSpec {
    public static let method = "memit"

    public var v = VStarSpec()
    /// λ, the reference's mom2_update_weight (15000 for GPT-J's 16,384-wide keys). nil: the same
    /// weight per key dimension, 15000 × intermediate / 16384 (the update's pull on a typical key,
    /// kᵀ(λC)⁻¹k ≈ intermediate / λ, is then GPT-J's; a fixed 15000 leaves the small models unedited).
    public var covarianceWeight: Double? = nil
    public var stats = KeyStatisticsSpec()

    /// The last three blocks (never block 0, whose C is singular under the parallel residual).
    public static func defaultBlocks(layers: Int) -> [Int]? { layers < 2 ? [0] : Array(max(1, layers - 3)..<layers) }

    public init() {}

    public static let fields: [SpecField<MEMITSpec>] = VStarSpec.fields(at: \.v) + [
        .optionalDouble("covariance_weight", \.covarianceWeight, min: 0, max: 1e12, exclusiveMin: true),
    ] + KeyStatisticsSpec.fields(at: \.stats)

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        let ds = try requireDataset(c, MEMITSpec.method)
        let (stats, source) = try stats.statistics(c, ds, blocks: c.selection.blocks.sorted())
        let lambda = covarianceWeight ?? MEMITSpec.scaledCovarianceWeight(intermediate: c.model.config.intermediate)
        return try BatchLocateEditor(method: MEMITSpec.method, v: v, context: c, dataset: ds, statistics: stats, statisticsSource: source,
                                     settings: [("covariance_weight", .number(lambda)),
                                                ("covariance_weight_from", .string(covarianceWeight == nil ? "15000 × intermediate / 16384" : "spec"))]) { (block, K, R, n) throws(EngineError) in
            try MEMITSpec.delta(moment: stats[block]!.moment, lambda: lambda, keys: K, residuals: R, n: n, block: block)
        }
    }

    static func scaledCovarianceWeight(intermediate: Int) -> Double { 15000 * Double(intermediate) / 16384 }

    /// ΔW [D, I] = Rᵀ · (A⁻¹Kᵀ)ᵀ with A = λ·C + KᵀK [I, I] (positive definite unless C is singular
    /// and the keys do not fill its null space), K [n, I], R [n, D], in float64.
    static func delta(moment C: [Double], lambda: Double, keys K: [Double], residuals R: [Double], n: Int, block: Int) throws(EngineError) -> [Double] {
        let I = K.count / n, D = R.count / n
        var a = try LinearAlgebra.product(K, K, m: I, n: I, k: n, transA: true)
        for i in 0..<(I * I) { a[i] += lambda * C[i] }
        let adj: [Double]
        do { adj = try LinearAlgebra.solvePositiveDefinite(a, n: I, LinearAlgebra.transpose(K, n, I), columns: n) } catch {
            throw .numeric("memit: λ·C + KᵀK of block \(block) is not positive definite (C is rank-deficient there, as at block 0 under the parallel residual): edit other blocks, or use alphaedit: \(error.message)")
        }
        return try LinearAlgebra.product(R, adj, m: D, n: I, k: n, transA: true, transB: true)
    }
}

/// The run of a batch locate-then-edit method (MEMIT, AlphaEdit): one step per edit computes its z
/// at the last block; the last step then updates every block in order with `solve(block, K, R, n)`,
/// which returns ΔW [D, I] from the keys K [n, I] and residuals R [n, D] (float64).
final class BatchLocateEditor: Editor {
    typealias Solve = (Int, [Double], [Double], Int) throws(EngineError) -> [Double]
    let method: String
    let model: LanguageModel
    let v: VStarSpec
    let blocks: [Int]
    let requests: [ROMERequest]
    let prefixes: [[Int32]]
    let statistics: [Int: KeyStatistics]
    let statisticsSource: StatisticsSource
    let settings: [(String, JSON)]
    let solve: Solve
    /// Called after each block's update with (block, K) (AlphaEdit keeps KᵀK of earlier edits).
    var afterBlock: ((Int, [Double], Int) throws(EngineError) -> Void)?
    var zs: [[Float]] = []
    var traces: [JSON] = []
    var updates: [JSON] = []
    var vectors: [(name: String, values: [Float], shape: [Int])] = []

    convenience init(method: String, v: VStarSpec, context c: EditContext, dataset ds: Dataset, statistics: [Int: KeyStatistics],
                     statisticsSource: StatisticsSource, settings: [(String, JSON)], solve: @escaping Solve) throws(EngineError) {
        self.init(method: method, model: c.model, blocks: c.selection.blocks.sorted(), requests: try v.requests(c.editSet, method: method),
                  prefixes: v.prefixes(ds, run: c.run), v: v, statistics: statistics, statisticsSource: statisticsSource,
                  settings: settings, solve: solve)
    }

    init(method: String, model: LanguageModel, blocks: [Int], requests: [ROMERequest], prefixes: [[Int32]], v: VStarSpec,
         statistics: [Int: KeyStatistics], statisticsSource: StatisticsSource, settings: [(String, JSON)], solve: @escaping Solve) {
        self.method = method
        self.v = v
        self.model = model
        self.blocks = blocks
        self.requests = requests
        self.prefixes = prefixes
        self.statistics = statistics
        self.statisticsSource = statisticsSource
        self.settings = settings
        self.solve = solve
    }

    var zBlock: Int { blocks.last! }

    func step() throws(EngineError) -> StepReport? {
        guard zs.count < requests.count else { return nil }
        let i = zs.count
        let start = monotonicSeconds()
        let z = try ROME.computeV(model, block: zBlock, request: requests[i], prefixes: prefixes, settings: v.settings, site: .blockOutput)
        zs.append(z.vStar)
        traces.append(.object([
            ("edit", .int(i)), ("v_iterations", .int(z.losses.count)), ("adam_steps", .int(z.adamSteps)),
            ("loss", .array(z.losses.map { .number(Double($0.total)) })),
            ("probability", .array(z.losses.map { .number(Double($0.probability)) })),
            ("delta_norm", .number(Double(z.delta.reduce(0) { $0 + $1 * $1 }.squareRoot()))),
            ("seconds", .number(monotonicSeconds() - start)),
        ]))
        vectors.append(("edit\(i)/z", z.vStar, [z.vStar.count]))
        var r = StepReport()
        r.loss = z.losses.last!.total
        if zs.count == requests.count { try updateBlocks() }
        return r
    }

    /// Every block in order, each on the model the earlier updates left.
    func updateBlocks() throws(EngineError) {
        let n = requests.count, D = model.config.hidden
        for (k, b) in blocks.enumerated() {
            let start = monotonicSeconds()
            var K: [Double] = []
            for r in requests { K += try ROME.meanKey(model, block: b, request: r, prefixes: prefixes).map(Double.init) }
            let I = K.count / n
            let now = try ROME.vectors(model, block: zBlock, site: .blockOutput, prompts: requests.map(\.prompt), lookups: requests.map(\.lookup))
            let left = Double(blocks.count - k)
            var R = [Double](repeating: 0, count: n * D)
            for e in 0..<n { for d in 0..<D { R[e * D + d] = (Double(zs[e][d]) - Double(now[e][d])) / left } }
            let delta = try solve(b, K, R, n)
            guard delta.count == D * I, delta.allSatisfy({ $0.isFinite }) else {
                throw .numeric("\(method): the update of block \(b) is not finite (the solve is ill-conditioned; raise the regularisation)")
            }
            let name = LayerSelection.keyMatrixName(model.config.architecture, block: b)
            guard let e = model.tensorTable[name] else { throw .invalid("\(method): the model has no \(name)") }
            let w = model.parameterBlock.baseAddress! + e.offset
            var norm = 0.0
            for i in 0..<e.count { w[i] += Float(delta[i]); norm += delta[i] * delta[i] }
            var rnorm = 0.0
            for x in R { rnorm += x * x }
            updates.append(.object([("block", .int(b)), ("update_norm", .number(norm.squareRoot())),
                                    ("residual_norm", .number(rnorm.squareRoot())), ("seconds", .number(monotonicSeconds() - start))]))
            try afterBlock?(b, K, n)
        }
    }

    func commit() throws(EngineError) -> EditArtifacts {
        // an early stop leaves the z computed so far unused: no block is updated without every z
        let report: JSON = .object([
            ("method", .string(method)),
            ("templates", .int(prefixes.count)),
            ("z_block", .int(zBlock)),
            ("key_statistics", KeyStatisticsSpec.report(statistics, statisticsSource)),
        ] + settings + [
            ("z", .array(traces)),
            ("updates", .array(updates)),
        ])
        return EditArtifacts(report: report, vectors: vectors)
    }
}
