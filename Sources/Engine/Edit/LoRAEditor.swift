#if canImport(Glibc)
import Glibc
#endif

/// LoRA (Hu et al. 2021): low-rank adapters A, B on the selected attention and MLP matrices, trained
/// as a side path of the frozen model and merged into it at the end (or kept beside it, merge: false).

/// The LoRA method's own keys: rank, alpha, dropout, merge, optimizer.
public struct LoRASpec: EditorSpec {
    public static let method = "lora"
    public var rank = 32
    public var alpha = 16.0
    public var dropout = 0.0
    public var merge = true
    public var optimizer = EditOptimizerSpec(epochs: 10, learningRate: 3e-4)

    public init() {}
    public static let fields: [SpecField<LoRASpec>] = [
        .int("rank", \.rank, min: 1, max: 1 << 20),
        .double("alpha", \.alpha, min: 0, max: 1e6, exclusiveMin: true),
        .double("dropout", \.dropout, min: 0, max: 0.9),
        .bool("merge", \.merge),
        EditOptimizerSpec.field(\.optimizer),
    ]

    public func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) {
        if selection.matrixNames(layers: layers).isEmpty {
            throw .invalid("edit method: LoRA needs at least one selected matrix (attention or MLP)")
        }
    }

    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] { selection.matrixNames(layers: layers) }
    public func steps(for set: EditSet) -> Int { optimizer.steps(for: set) }
    public var keepsModelUnchanged: Bool { !merge }

    public func check(_ model: LanguageModel, selection: LayerSelection) throws(EngineError) {
        try Self.checkRank(rank, of: changedTensors(selection, layers: model.config.layers), in: model)
    }

    /// A LoRA rank the target matrices allow (LoRA edits and the unlearning methods' LoRA adapter).
    static func checkRank(_ rank: Int, of names: [String], in model: LanguageModel) throws(EngineError) {
        for n in names {
            guard let e = model.tensorTable[n] else { continue }
            guard rank <= min(e.shape[0], e.shape[1]) else {
                throw .invalid("edit method: rank = \(rank) is larger than \(n) allows (shape \(e.shape[0])x\(e.shape[1]), at most \(min(e.shape[0], e.shape[1])))")
            }
        }
    }

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        let training = optimizer.training(run: c.run)
        let names = changedTensors(c.selection, layers: c.model.config.layers)
        let w = try LoRANetwork(base: c.model, names: names, rank: rank, alpha: alpha, dropout: dropout, seed: training.seed)
        return try FineTuneEditor(w, training: training, set: c.editSet)
    }
}

/// Presents LoRA adapters (A and B of each selected matrix) as the trainable block and runs them as
/// a side path of the model (`LinearAdapter`): y = x·W₀ᵀ + s·(drop(x)·Aᵀ)·Bᵀ, with every base
/// tensor frozen. Gradients of A and B, and the side path's share of dx, are exact, dropout
/// included; evaluation runs without dropout. `merge()` writes W₀ + s·B·A into the model.
final class LoRANetwork: EditWrapper, LinearAdapter {
    final class Adapted {
        let layer: Int
        let slot: ParameterTable.Slot
        let aOffset: Int, bOffset: Int
        let rows: Int, cols: Int       // W [out, in]
        var capacity = 0               // rows of the scratch buffers below
        var u = FloatBuffer(count: 0)  // x·Aᵀ of the last forward pass [n, rank]
        var du = FloatBuffer(count: 0) // [n, rank]
        var xd = FloatBuffer(count: 0) // dropped-out input [n, in] (dropout only); scratch in backward
        var mask = FloatBuffer(count: 0) // 0 or 1/(1-p) [n, in] (dropout only)

        init(layer: Int, slot: ParameterTable.Slot, aOffset: Int, bOffset: Int, rows: Int, cols: Int) {
            self.layer = layer; self.slot = slot; self.aOffset = aOffset; self.bOffset = bOffset; self.rows = rows; self.cols = cols
        }

        /// Grows the scratch buffers (only when a larger batch arrives, never inside a steady run).
        func reserve(_ n: Int, rank: Int, dropout: Bool) {
            if n <= capacity && (!dropout || xd.count >= n * cols) { return }
            capacity = max(n, capacity)
            u = FloatBuffer(count: capacity * rank); du = FloatBuffer(count: capacity * rank)
            if dropout { xd = FloatBuffer(count: capacity * cols); mask = FloatBuffer(count: capacity * cols) }
        }
    }

    let base: LanguageModel
    var adapters: [LoRAAdapter]
    var adapted: [Adapted]
    let index: [AdapterKey: Int]   // (block, matrix) → adapted index
    let rank: Int
    let scale: Float
    let dropout: Float
    var training = false
    var rng: RNG
    let tensorTable: TensorTable    // lora_A.<name>, lora_B.<name> in the adapter block
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var vocabSize: Int { base.vocabSize }
    var maxPositions: Int { base.maxPositions }
    var trainingFlopsPerToken: Double { base.trainingFlopsPerToken }

    init(base lm: LanguageModel, names: [String], rank: Int, alpha: Double, dropout: Double, seed: UInt64) throws(EngineError) {
        guard lm.net.adapter == nil else {
            throw .misuse("LoRA: the model runs a side-path adapter; remove it (or merge it) before a LoRA edit")
        }
        base = lm
        var rng = RNG(seed: seed, stream: "lora init")
        var adapters: [LoRAAdapter] = [], adapted: [Adapted] = [], table: [TensorEntry] = [], offset = 0
        var index: [AdapterKey: Int] = [:]
        for n in names {
            guard let e = lm.tensorTable[n] else { throw .internalError("no tensor named \(n)") }
            guard let key = AdapterKey(tensorName: n), key.block < lm.config.layers else {
                throw .invalid("LoRA: \(n) is not a block's attention or MLP matrix")
            }
            let (layer, slot) = (key.block, key.slot)
            let a = try LoRAAdapter(target: e, rank: rank, alpha: alpha, rng: &rng)
            table.append(TensorEntry(name: "lora_A." + n, offset: offset, shape: [rank, e.shape[1]]))
            table.append(TensorEntry(name: "lora_B." + n, offset: offset + a.a.count, shape: [e.shape[0], rank]))
            index[AdapterKey(block: layer, slot: slot)] = adapted.count
            adapted.append(Adapted(layer: layer, slot: slot, aOffset: offset, bOffset: offset + a.a.count, rows: e.shape[0], cols: e.shape[1]))
            offset += a.a.count + a.b.count
            adapters.append(a)
        }
        self.adapters = adapters
        self.adapted = adapted
        self.index = index
        self.rank = rank
        scale = Float(alpha / Double(rank))
        self.dropout = Float(dropout)
        self.rng = RNG(seed: seed, stream: "lora dropout")
        tensorTable = TensorTable(table)
        parameterBlock = .allocate(capacity: max(1, offset))
        gradientBlock = .allocate(capacity: max(1, offset))
        gradientBlock.initialize(repeating: 0)
        for (i, a) in adapters.enumerated() {
            (parameterBlock.baseAddress! + adapted[i].aOffset).initialize(from: a.a, count: a.a.count)
            (parameterBlock.baseAddress! + adapted[i].bOffset).initialize(from: a.b, count: a.b.count)
        }
        lm.setTrainable([])          // every base tensor frozen
        lm.net.adapter = self
    }

    deinit {
        if base.net.adapter === self { base.net.adapter = nil }
        base.setTrainable(nil)
        parameterBlock.deallocate()
        gradientBlock.deallocate()
    }

    func adapts(layer: Int, slot: ParameterTable.Slot) -> Bool { index[AdapterKey(block: layer, slot: slot)] != nil }

    func forward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, rows n: Int) {
        guard let k = index[AdapterKey(block: layer, slot: slot)] else { return }
        let a = adapted[k], (out, inp, r) = (a.rows, a.cols, rank)
        let p = parameterBlock.baseAddress!
        let drop = training && dropout > 0
        a.reserve(n, rank: r, dropout: drop)
        var xin = x
        if drop {
            let keep = 1 / (1 - dropout)
            for i in 0..<(n * inp) {
                let m: Float = Float(rng.uniform()) < dropout ? 0 : keep
                a.mask.ptr[i] = m
                a.xd.ptr[i] = x[i] * m
            }
            xin = UnsafePointer(a.xd.ptr)
        }
        // u[n, r] = drop(x)[n, in] · Aᵀ ;  y[n, out] += s · u · Bᵀ
        BLAS.gemm(transA: false, transB: true, m: n, n: r, k: inp, a: xin, lda: inp, b: p + a.aOffset, ldb: inp,
                  beta: 0, c: a.u.ptr, ldc: r)
        BLAS.gemm(transA: false, transB: true, m: n, n: out, k: r, alpha: scale, a: a.u.ptr, lda: r,
                  b: p + a.bOffset, ldb: r, beta: 1, c: y, ldc: ldy)
    }

    func backward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, lddy: Int,
                  dx: UnsafeMutablePointer<Float>?, rows n: Int) {
        guard let k = index[AdapterKey(block: layer, slot: slot)] else { return }
        let a = adapted[k], (out, inp, r) = (a.rows, a.cols, rank)
        let p = parameterBlock.baseAddress!, g = gradientBlock.baseAddress!
        let drop = training && dropout > 0
        let xin: UnsafePointer<Float> = drop ? UnsafePointer(a.xd.ptr) : x
        // dB[out, r] += s · dyᵀ · u
        BLAS.gemm(transA: true, transB: false, m: out, n: r, k: n, alpha: scale, a: dy, lda: lddy, b: a.u.ptr, ldb: r,
                  beta: 1, c: g + a.bOffset, ldc: r)
        // du[n, r] = s · dy · B
        BLAS.gemm(transA: false, transB: false, m: n, n: r, k: out, alpha: scale, a: dy, lda: lddy, b: p + a.bOffset, ldb: r,
                  beta: 0, c: a.du.ptr, ldc: r)
        // dA[r, in] += duᵀ · drop(x)
        BLAS.gemm(transA: true, transB: false, m: r, n: inp, k: n, a: a.du.ptr, lda: r, b: xin, ldb: inp,
                  beta: 1, c: g + a.aOffset, ldc: inp)
        guard let dx else { return }
        if drop {
            // dx += (du · A) ⊙ mask   (xd is free now: scratch)
            BLAS.gemm(transA: false, transB: false, m: n, n: inp, k: r, a: a.du.ptr, lda: r, b: p + a.aOffset, ldb: inp,
                      beta: 0, c: a.xd.ptr, ldc: inp)
            for i in 0..<(n * inp) { dx[i] += a.xd.ptr[i] * a.mask.ptr[i] }
        } else {
            // dx += du · A
            BLAS.gemm(transA: false, transB: false, m: n, n: inp, k: r, a: a.du.ptr, lda: r, b: p + a.aOffset, ldb: inp,
                      beta: 1, c: dx, ldc: inp)
        }
    }

    func commit() -> EditArtifacts {
        merge()
        return EditArtifacts(adapters: adapters)
    }

    /// Copies A and B out of the block into `adapters` and writes W₀ + s·B·A into the model.
    func merge() {
        let w = base.parameterBlock.baseAddress!
        for i in 0..<adapters.count {
            adapters[i].a.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: parameterBlock.baseAddress! + adapted[i].aOffset, count: $0.count) }
            adapters[i].b.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: parameterBlock.baseAddress! + adapted[i].bOffset, count: $0.count) }
            adapters[i].addDelta(into: w)
        }
        base.net.adapter = nil
    }

    func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float {
        for i in 0..<gradientBlock.count { gradientBlock[i] = 0 }
        training = true
        defer { training = false }
        return try base.lossAndGradients(inputs: inputs, targets: targets, rows: rows, width: width)
    }

    func gradients(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, rows: Int, width: Int,
                   loss: (GPTNeoX) throws(EngineError) -> [HookPoint: [Float]]) throws(EngineError) {
        for i in 0..<gradientBlock.count { gradientBlock[i] = 0 }
        training = true
        defer { training = false }
        try base.gradients(tokens: tokens, targets: targets, rows: rows, width: width, loss: loss)
    }

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        training = false
        try base.logitsAtLast(tokens: tokens, rows: rows, width: width, lengths: lengths, out: out)
    }
}
