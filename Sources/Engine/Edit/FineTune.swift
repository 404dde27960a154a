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
        dropout = try r.double("dropout", default: 0, min: 0, max: 0)
        mergeLoRA = try r.bool("merge", default: true)
        // Optimizer defaults for editing (LitGPT's LoRA recipe, scaled to small edit sets).
        var opt = try r.object("optimizer")
        var t = TrainSpec()
        t.epochs = try opt.int("epochs", default: 5, min: 1, max: 100_000)
        t.batchSize = try opt.int("batch_size", default: 32, min: 1, max: 65536)
        t.learningRate = try opt.double("learning_rate", default: method == .lora ? 1e-3 : 3e-4, min: 0, max: 10, exclusiveMin: true)
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

/// Presents LoRA adapters (A and B of each selected matrix) as the trainable block: the network
/// runs on W₀ + s·B·A and the merged weights' gradients map back to A and B exactly.
final class LoRANetwork: TrainableNetwork {
    let base: TrainableNetwork
    var adapters: [LoRAAdapter]
    let original: [Float]               // W₀ of the whole base block
    let tensorTable: [TensorEntry]      // a.<name>, b.<name> in the adapter block
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var vocabSize: Int { base.vocabSize }
    var maxPositions: Int { base.maxPositions }
    var trainingFlopsPerToken: Double { base.trainingFlopsPerToken }

    init(base: TrainableNetwork, names: [String], rank: Int, alpha: Double, seed: UInt64) throws(EngineError) {
        self.base = base
        original = Array(base.parameterBlock)
        var rng = RNG(seed: seed, stream: "lora init")
        var adapters: [LoRAAdapter] = [], table: [TensorEntry] = [], offset = 0
        for n in names {
            guard let e = base.tensorTable.first(where: { $0.name == n }) else { throw .internalError("no tensor named \(n)") }
            let a = try LoRAAdapter(target: e, rank: rank, alpha: alpha, rng: &rng)
            table.append(TensorEntry(name: "lora_A." + n, offset: offset, shape: [rank, e.shape[1]])); offset += a.a.count
            table.append(TensorEntry(name: "lora_B." + n, offset: offset, shape: [e.shape[0], rank])); offset += a.b.count
            adapters.append(a)
        }
        self.adapters = adapters
        tensorTable = table
        parameterBlock = .allocate(capacity: offset)
        gradientBlock = .allocate(capacity: offset)
        gradientBlock.initialize(repeating: 0)
        for (i, a) in adapters.enumerated() {
            (parameterBlock.baseAddress! + table[2 * i].offset).initialize(from: a.a, count: a.a.count)
            (parameterBlock.baseAddress! + table[2 * i + 1].offset).initialize(from: a.b, count: a.b.count)
        }
        base.setTrainable(Set(names))
    }

    deinit {
        parameterBlock.deallocate()
        gradientBlock.deallocate()
        base.setTrainable(nil)
    }

    /// Copies A and B out of the block into the adapters and merges W₀ + s·B·A into the network.
    func merge() {
        original.withUnsafeBufferPointer { w0 in
            for i in 0..<adapters.count {
                let ta = tensorTable[2 * i], tb = tensorTable[2 * i + 1]
                adapters[i].a.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: parameterBlock.baseAddress! + ta.offset, count: ta.count) }
                adapters[i].b.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: parameterBlock.baseAddress! + tb.offset, count: tb.count) }
                adapters[i].merge(base: w0.baseAddress!, into: base.parameterBlock.baseAddress!)
            }
        }
    }

    func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float {
        merge()
        let loss = try base.lossAndGradients(inputs: inputs, targets: targets, rows: rows, width: width)
        for (i, a) in adapters.enumerated() {
            a.gradients(weightGradient: base.gradientBlock.baseAddress! + a.target.offset,
                        gA: gradientBlock.baseAddress! + tensorTable[2 * i].offset,
                        gB: gradientBlock.baseAddress! + tensorTable[2 * i + 1].offset)
        }
        return loss
    }

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        merge()
        try base.logitsAtLast(tokens: tokens, rows: rows, width: width, lengths: lengths, out: out)
    }
}

#if canImport(Glibc)
import Glibc
#endif
