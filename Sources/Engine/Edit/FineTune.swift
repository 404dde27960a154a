/// Which parts of the model an editor may change: blocks × {attention, MLP}, or named matrices,
/// optionally the embeddings and the unembedding.
public struct LayerSelection {
    public static let attentionMatrices = ["attention.query_key_value", "attention.dense"]
    public static let mlpMatrices = ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
    public static let allMatrices = attentionMatrices + mlpMatrices

    public var blocks: [Int] = []          // empty = every block
    public var sublayers = "both"          // "attention", "mlp", "both", or "none"
    public var matrices: [String] = []     // overrides sublayers: e.g. ["dense_4h_to_h"]
    public var embeddings = false
    public var unembedding = false
    public var biases = true               // full fine-tuning also trains the selected matrices' biases

    public init() {}

    public init(_ r: inout JSONReader, layers: Int) throws(EngineError) {
        blocks = try r.intArray("blocks", default: [])
        for (i, b) in blocks.enumerated() where b < 0 || b >= layers {
            throw .invalid("\(r.path): blocks[\(i)] = \(b) but the model has \(layers) blocks (0...\(layers - 1))")
        }
        sublayers = try r.string("sublayers", default: sublayers, oneOf: ["attention", "mlp", "both", "none"])
        matrices = try r.stringArray("matrices", default: [])
        let short = LayerSelection.allMatrices.map { String($0.split(separator: ".").last!) }
        for (i, m) in matrices.enumerated() where !short.contains(m) && !LayerSelection.allMatrices.contains(m) {
            throw .invalid("\(r.path): matrices[\(i)] = \"\(m)\" is not one of \(short.joined(separator: ", "))")
        }
        embeddings = try r.bool("embeddings", default: false)
        unembedding = try r.bool("unembedding", default: false)
        biases = try r.bool("biases", default: true)
        if blocks.isEmpty { blocks = Array(0..<layers) }
    }

    public func toJSON() -> JSON {
        .object([("blocks", .ints(blocks)), ("sublayers", .string(sublayers)), ("matrices", .strings(matrices)),
                 ("embeddings", .bool(embeddings)), ("unembedding", .bool(unembedding)), ("biases", .bool(biases))])
    }

    /// The selected weight matrices' names (Hugging Face), in table order.
    public func matrixNames(layers: Int) -> [String] {
        var kinds: [String]
        if !matrices.isEmpty {
            kinds = LayerSelection.allMatrices.filter { full in matrices.contains { full == $0 || full.hasSuffix("." + $0) } }
        } else {
            switch sublayers {
            case "attention": kinds = LayerSelection.attentionMatrices
            case "mlp": kinds = LayerSelection.mlpMatrices
            case "both": kinds = LayerSelection.allMatrices
            default: kinds = []
            }
        }
        var names: [String] = []
        for b in blocks.sorted() { for k in kinds { names.append("gpt_neox.layers.\(b).\(k).weight") } }
        return names
    }

    /// Every tensor full fine-tuning trains: matrices (and their biases), embeddings, unembedding.
    public func tensorNames(layers: Int) -> [String] {
        var names: [String] = []
        if embeddings { names.append("gpt_neox.embed_in.weight") }
        for m in matrixNames(layers: layers) {
            names.append(m)
            if biases { names.append(String(m.dropLast("weight".count)) + "bias") }
        }
        if unembedding { names.append("embed_out.weight") }
        return names
    }
}

/// How to edit: method, selection, optimizer, mode (docs/formats.md, "Edit method").
public struct EditMethodSpec {
    public enum Method: String { case full, lora }
    public enum Mode: String { case batch, sequential, oneAtATime = "one_at_a_time" }
    public var method = Method.lora
    public var mode = Mode.batch
    public var selection = LayerSelection()
    public var rank = 32
    public var alpha = 16.0
    public var dropout = 0.0
    public var mergeLoRA = true
    public var training = TrainSpec()

    public init(json text: String, layers: Int) throws(EngineError) {
        var r = try JSONReader(text: text, path: "edit method")
        method = Method(rawValue: try r.string("method", default: "lora", oneOf: ["full", "lora"]))!
        mode = Mode(rawValue: try r.string("mode", default: "batch", oneOf: ["batch", "sequential", "one_at_a_time"]))!
        var sel = try r.object("layers")
        selection = try LayerSelection(&sel, layers: layers)
        try sel.finish()
        rank = try r.int("rank", default: rank, min: 1, max: 1 << 20)
        alpha = try r.double("alpha", default: alpha, min: 0, max: 1e6, exclusiveMin: true)
        dropout = try r.double("dropout", default: 0, min: 0, max: 0.9)
        mergeLoRA = try r.bool("merge", default: true)
        // Optimizer defaults for editing: LitGPT's LoRA learning rate; epochs and the full
        // fine-tuning rate chosen on the demo model (single edits succeed, remaining accuracy kept).
        var opt = try r.object("optimizer")
        var t = TrainSpec()
        t.epochs = try opt.int("epochs", default: method == .lora ? 10 : 5, min: 1, max: 100_000)
        t.batchSize = try opt.int("batch_size", default: 32, min: 1, max: 65536)
        t.learningRate = try opt.double("learning_rate", default: method == .lora ? 3e-4 : 1e-4, min: 0, max: 10, exclusiveMin: true)
        t.minLearningRate = try opt.double("min_learning_rate", default: 0, min: 0, max: 10)
        t.warmupSteps = try opt.int("warmup_steps", default: -1, min: -1, max: 10_000_000)
        t.warmupFraction = try opt.double("warmup_fraction", default: 0.05, min: 0, max: 1)
        t.weightDecay = try opt.double("weight_decay", default: 0, min: 0, max: 10)
        t.gradClip = try opt.double("grad_clip", default: 1.0, min: 0, max: 1e6)
        t.seed = UInt64(try opt.int("seed", default: 0, min: 0))
        t.beta2 = 0.999
        try opt.finish()
        t.evalEveryEpochs = 0
        t.evalGroups = []
        guard t.minLearningRate <= t.learningRate else { throw .invalid("edit method: optimizer.min_learning_rate is above learning_rate") }
        training = t
        try r.finish()
        if method == .full && r.has("rank") { throw .invalid("edit method: rank applies to method \"lora\" only") }
        if selection.tensorNames(layers: layers).isEmpty {
            throw .invalid("edit method: the layer selection selects nothing (sublayers = \"\(selection.sublayers)\", no embeddings or unembedding)")
        }
        if method == .lora && selection.matrixNames(layers: layers).isEmpty {
            throw .invalid("edit method: LoRA needs at least one selected matrix (attention or MLP)")
        }
    }

    public func toJSON(layers: Int) -> JSON {
        var fields: [(String, JSON)] = [("method", .string(method.rawValue)), ("mode", .string(mode.rawValue)),
                                        ("layers", selection.toJSON())]
        if method == .lora {
            fields += [("rank", .int(rank)), ("alpha", .number(alpha)), ("dropout", .number(dropout)), ("merge", .bool(mergeLoRA))]
        }
        let t = training
        fields.append(("optimizer", .object([
            ("epochs", .int(t.epochs)), ("batch_size", .int(t.batchSize)), ("learning_rate", .number(t.learningRate)),
            ("min_learning_rate", .number(t.minLearningRate)), ("warmup_steps", .int(t.warmupSteps)),
            ("warmup_fraction", .number(t.warmupFraction)), ("weight_decay", .number(t.weightDecay)),
            ("grad_clip", .number(t.gradClip)), ("seed", .int(Int(t.seed))),
        ])))
        fields.append(("trained_tensors", .strings(method == .full ? selection.tensorNames(layers: layers) : selection.matrixNames(layers: layers))))
        return .object(fields)
    }
}

/// Presents a subset of a network's tensors as the trainable block: each step scatters the subset
/// into the network, runs it with only those tensors trainable, and gathers their gradients. Every
/// other parameter is left exactly as it was.
final class SubsetNetwork: TrainableNetwork {
    let base: TrainableNetwork
    let entries: [TensorEntry]          // offsets into the base block
    let tensorTable: [TensorEntry]      // offsets into the subset block
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var vocabSize: Int { base.vocabSize }
    var maxPositions: Int { base.maxPositions }
    var trainingFlopsPerToken: Double { base.trainingFlopsPerToken }

    init(base: TrainableNetwork, names: [String]) throws(EngineError) {
        self.base = base
        var entries: [TensorEntry] = [], table: [TensorEntry] = [], offset = 0
        for n in names {
            guard let e = base.tensorTable.first(where: { $0.name == n }) else { throw .internalError("no tensor named \(n)") }
            entries.append(e)
            table.append(TensorEntry(name: n, offset: offset, shape: e.shape))
            offset += e.count
        }
        self.entries = entries
        tensorTable = table
        parameterBlock = .allocate(capacity: offset)
        gradientBlock = .allocate(capacity: offset)
        gradientBlock.initialize(repeating: 0)
        for (e, t) in zip(entries, table) {
            (parameterBlock.baseAddress! + t.offset).initialize(from: base.parameterBlock.baseAddress! + e.offset, count: e.count)
        }
        base.setTrainable(Set(names))
    }

    deinit {
        parameterBlock.deallocate()
        gradientBlock.deallocate()
        base.setTrainable(nil)
    }

    func scatter() {
        for (e, t) in zip(entries, tensorTable) {
            (base.parameterBlock.baseAddress! + e.offset).update(from: parameterBlock.baseAddress! + t.offset, count: e.count)
        }
    }

    func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float {
        scatter()
        let loss = try base.lossAndGradients(inputs: inputs, targets: targets, rows: rows, width: width)
        for (e, t) in zip(entries, tensorTable) {
            (gradientBlock.baseAddress! + t.offset).update(from: base.gradientBlock.baseAddress! + e.offset, count: e.count)
        }
        return loss
    }

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        scatter()
        try base.logitsAtLast(tokens: tokens, rows: rows, width: width, lengths: lengths, out: out)
    }
}

/// Presents LoRA adapters (A and B of each selected matrix) as the trainable block and runs them as
/// a side path of the model (`LinearAdapter`): y = x·W₀ᵀ + s·(drop(x)·Aᵀ)·Bᵀ, with every base
/// tensor frozen. Gradients of A and B, and the side path's share of dx, are exact, dropout
/// included; evaluation runs without dropout. `merge()` writes W₀ + s·B·A into the model.
final class LoRANetwork: TrainableNetwork, LinearAdapter {
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
    let index: [Int: Int]          // layer * 16 + slot → adapted index
    let rank: Int
    let scale: Float
    let dropout: Float
    var training = false
    var rng: RNG
    let tensorTable: [TensorEntry]  // lora_A.<name>, lora_B.<name> in the adapter block
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var vocabSize: Int { base.vocabSize }
    var maxPositions: Int { base.maxPositions }
    var trainingFlopsPerToken: Double { base.trainingFlopsPerToken }

    init(base network: TrainableNetwork, names: [String], rank: Int, alpha: Double, dropout: Double, seed: UInt64) throws(EngineError) {
        guard let lm = network as? LanguageModel else { throw .internalError("LoRA needs a LanguageModel") }
        base = lm
        var rng = RNG(seed: seed, stream: "lora init")
        var adapters: [LoRAAdapter] = [], adapted: [Adapted] = [], table: [TensorEntry] = [], offset = 0
        var index: [Int: Int] = [:]
        let slots: [ParameterTable.Slot] = [.qkvW, .denseW, .fc1W, .fc2W]
        for n in names {
            guard let e = lm.tensorTable.first(where: { $0.name == n }) else { throw .internalError("no tensor named \(n)") }
            guard let (layer, slot) = (0..<lm.config.layers).lazy.flatMap({ l in slots.map { (l, $0) } })
                .first(where: { lm.net.table.tensors[lm.net.table.index(layer: $0.0, $0.1)].name == n }) else {
                throw .invalid("LoRA: \(n) is not a block's attention or MLP matrix")
            }
            let a = try LoRAAdapter(target: e, rank: rank, alpha: alpha, rng: &rng)
            table.append(TensorEntry(name: "lora_A." + n, offset: offset, shape: [rank, e.shape[1]]))
            table.append(TensorEntry(name: "lora_B." + n, offset: offset + a.a.count, shape: [e.shape[0], rank]))
            index[layer * 16 + slot.rawValue] = adapted.count
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
        tensorTable = table
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

    func adapts(layer: Int, slot: ParameterTable.Slot) -> Bool { index[layer * 16 + slot.rawValue] != nil }

    func forward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows n: Int) {
        guard let k = index[layer * 16 + slot.rawValue] else { return }
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
                  b: p + a.bOffset, ldb: r, beta: 1, c: y, ldc: out)
    }

    func backward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, rows n: Int) {
        guard let k = index[layer * 16 + slot.rawValue] else { return }
        let a = adapted[k], (out, inp, r) = (a.rows, a.cols, rank)
        let p = parameterBlock.baseAddress!, g = gradientBlock.baseAddress!
        let drop = training && dropout > 0
        let xin: UnsafePointer<Float> = drop ? UnsafePointer(a.xd.ptr) : x
        // dB[out, r] += s · dyᵀ · u
        BLAS.gemm(transA: true, transB: false, m: out, n: r, k: n, alpha: scale, a: dy, lda: out, b: a.u.ptr, ldb: r,
                  beta: 1, c: g + a.bOffset, ldc: r)
        // du[n, r] = s · dy · B
        BLAS.gemm(transA: false, transB: false, m: n, n: r, k: out, alpha: scale, a: dy, lda: out, b: p + a.bOffset, ldb: r,
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

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        training = false
        try base.logitsAtLast(tokens: tokens, rows: rows, width: width, lengths: lengths, out: out)
    }
}

#if canImport(Glibc)
import Glibc
#endif
