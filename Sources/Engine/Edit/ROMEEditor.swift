/// ROME as an editor (docs/training-and-editing.md, "ROME"): for each edit and each selected block,
/// in order, a rank-one update of that block's dense_4h_to_h computed on the model the previous
/// updates left (as the reference's apply_rome_to_model does for a list of requests and layers).
/// The prompts are the edit set's `edited` prompts (SRO: SS subject W0 W1 RR relation W2 OO); the
/// key statistics come from the dataset's training sentences.
public struct ROMESpec: LocateThenEditSpec {
    public static let method = "rome"

    public var v = VStarSpec()
    public var covarianceAdjustment = true
    public var inverse = KeyStatistics.Inverse.pseudo
    public var ridge = 0.01
    public var stats = KeyStatisticsSpec()

    /// The last block: on the demo model the best single-block choice at the last token (80% of single
    /// edits, remaining accuracy kept); block 0 rewrites every prompt ending in the same token.
    public static func defaultBlocks(layers: Int) -> [Int]? { [layers - 1] }

    public init() {}

    public static let fields: [SpecField<ROMESpec>] = VStarSpec.fields(at: \.v) + [
        .bool("covariance_adjustment", \.covarianceAdjustment),
        .choice("inverse", \.inverse),
        .double("ridge", \.ridge, min: 0, max: 1e6, exclusiveMin: true),
    ] + KeyStatisticsSpec.fields(at: \.stats)

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        try ROMEEditor(spec: self, context: c, dataset: try requireDataset(c, ROMESpec.method))
    }
}

final class ROMEEditor: Editor {
    let spec: ROMESpec
    let model: LanguageModel
    let blocks: [Int]
    let requests: [ROMERequest]
    let prefixes: [[Int32]]
    let statistics: [Int: KeyStatistics]
    let statisticsSource: StatisticsSource
    var next = 0
    var runs: [JSON] = []
    var vectors: [(name: String, values: [Float], shape: [Int])] = []

    init(spec: ROMESpec, context c: EditContext, dataset ds: Dataset) throws(EngineError) {
        self.spec = spec
        model = c.model
        blocks = c.selection.blocks.sorted()
        requests = try spec.v.requests(c.editSet, method: ROMESpec.method)
        prefixes = spec.v.prefixes(ds, run: c.run)
        if spec.covarianceAdjustment {
            (statistics, statisticsSource) = try spec.stats.statistics(c, ds, blocks: blocks)
        } else {
            (statistics, statisticsSource) = ([:], [:])
        }
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
        let v = try ROME.computeV(model, block: b, request: request, prefixes: prefixes, settings: spec.v.settings)
        let up = try ROME.update(model, block: b, request: request, u: u, vStar: v.vStar)
        let name = LayerSelection.keyMatrixName(model.config.architecture, block: b)
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
        let report: JSON = .object([
            ("method", .string("rome")),
            ("templates", .int(prefixes.count)),
            ("key_statistics", spec.covarianceAdjustment ? KeyStatisticsSpec.report(statistics, statisticsSource) : .null),
            ("inverse", spec.covarianceAdjustment ? .string(spec.inverse.rawValue) : .null),
            ("updates", .array(runs)),
        ])
        return EditArtifacts(report: report, vectors: vectors)
    }
}
