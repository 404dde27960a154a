/// A demonstration editor: adds a seeded rank-one matrix s·u·vᵀ (u, v unit Gaussian directions,
/// s = "scale", the Frobenius norm of the change) to every selected matrix, in one step. It edits
/// nothing on purpose; it shows what an editor is and that adding one touches nothing else (this
/// file and one line in EditorRegistry.methods): it runs through EditExperiment, the C API and
/// Python like the real methods.
public struct FixedRankOneSpec: EditorSpec {
    public static let method = "fixed_rank_one"
    public var scale = 0.01
    public var seed: UInt64 = 0

    public init() {}
    public static let fields: [SpecField<FixedRankOneSpec>] = [.double("scale", \.scale, min: 0, max: 1e3), .seed("seed", \.seed)]
    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] { selection.matrixNames(layers: layers) }
    public func steps(for set: EditSet) -> Int { 1 }

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        FixedRankOneEditor(model: c.model, names: changedTensors(c.selection, layers: c.model.config.layers),
                           scale: Float(scale), seed: seed &+ UInt64(c.run))
    }
}

final class FixedRankOneEditor: Editor {
    let model: LanguageModel
    let names: [String]
    let scale: Float
    var rng: RNG
    var changes: [(TensorEntry, [Float])] = []   // s·u·vᵀ per matrix [out, in]
    var stepped = false

    init(model: LanguageModel, names: [String], scale: Float, seed: UInt64) {
        self.model = model; self.names = names; self.scale = scale
        rng = RNG(seed: seed, stream: "fixed rank one")
    }

    func unitVector(_ n: Int) -> [Float] {
        var v = (0..<n).map { _ in Float(rng.normal()) }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in 0..<n { v[i] /= max(norm, 1e-12) }
        return v
    }

    /// The one step: draws u and v for every matrix.
    func step() throws(EngineError) -> StepReport? {
        if stepped { return nil }
        stepped = true
        for n in names {
            guard let e = model.tensorTable[n], e.shape.count == 2 else {
                throw .invalid("fixed_rank_one: \(n) is not a matrix of the model")
            }
            let u = unitVector(e.shape[0]), v = unitVector(e.shape[1])
            var d = [Float](repeating: 0, count: e.count)
            for i in 0..<e.shape[0] { for j in 0..<e.shape[1] { d[i * e.shape[1] + j] = scale * u[i] * v[j] } }
            changes.append((e, d))
        }
        var report = StepReport()
        report.step = 1
        report.totalSteps = 1
        return report
    }

    func commit() throws(EngineError) -> EditArtifacts {
        let w = model.parameterBlock.baseAddress!
        for (e, d) in changes { for i in 0..<e.count { w[e.offset + i] += d[i] } }
        return EditArtifacts()
    }
}
