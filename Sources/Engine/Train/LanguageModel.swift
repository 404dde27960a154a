/// A GPT-NeoX model with what the rest of the library needs around it: buffers that grow with the
/// batch, the trainer's `TrainableNetwork` view, the vocabulary it was trained on, its training
/// history, and checkpoints.
public final class LanguageModel: TrainableNetwork {
    public private(set) var net: GPTNeoX
    /// Vocabulary roles JSON of the dataset the model was made for ("" if none).
    public var tokenizerJSON = ""
    public var history = TrainingHistory()
    public let tensorTable: TensorTable

    public var config: ModelConfig { net.config }
    public var vocabSize: Int { net.config.vocabSize }
    public var maxPositions: Int { net.config.maxPositions }
    public var parameterCount: Int { net.parameterCount }
    public var parameterBlock: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: net.params.base, count: net.table.totalCount)
    }
    public var gradientBlock: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: net.grads.base, count: net.table.totalCount)
    }
    public var trainableMask: [Bool]? { net.trainable }
    public var trainingFlopsPerToken: Double { net.trainingFlopsPerToken(seq: net.seq > 0 ? net.seq : 16) }

    /// A freshly initialised model (weights from `config.seed`).
    /// `initializeWeights: false`: zero weights, for a caller that writes its own (a load, a clone).
    public init(config: ModelConfig, batch: Int = 8, seq: Int = 32, initializeWeights: Bool = true) throws(EngineError) {
        net = try GPTNeoX(config: config, maxBatch: batch, maxSeq: min(seq, config.maxPositions), initializeWeights: initializeWeights)
        tensorTable = net.table.tensors
    }

    /// Grows the activation buffers to hold `batch` sequences of `seq` tokens (weights are kept).
    public func ensureCapacity(batch: Int, seq: Int) throws(EngineError) {
        if batch <= net.maxBatch && seq <= net.maxSeq { return }
        guard seq <= config.maxPositions else {
            throw .invalid("model: sequences of \(seq) tokens exceed max_positions = \(config.maxPositions)")
        }
        let bigger = try GPTNeoX(config: config, maxBatch: max(batch, net.maxBatch), maxSeq: max(seq, net.maxSeq), initializeWeights: false)
        bigger.params.base.update(from: net.params.base, count: net.table.totalCount)
        bigger.trainable = net.trainable
        bigger.profiler = net.profiler
        bigger.adapter = net.adapter
        try bigger.captureGradients(at: net.capturedPoints)
        net = bigger
    }

    public func setTrainable(_ names: Set<String>?) {
        net.setTrainable(true) { _ in true }
        if let names { net.setTrainable(false) { !names.contains($0.name) } }
    }

    public func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float {
        try ensureCapacity(batch: rows, seq: width)
        net.zeroGrad()
        let loss = try net.forward(tokens: inputs, targets: targets, batch: rows, seq: width, fuseLossGradient: true)
        try net.backward()
        return loss
    }

    /// Zeroes the gradients, runs forward with `objective` (Objective.swift) and backward, and returns
    /// the objective's value. `injecting`, if given, is called between the two with the network (its
    /// activations readable through `net.activation(at:)`) and returns d loss / d activation at hook
    /// points for a representation loss, added in the backward pass. `.crossEntropy` without hooks
    /// or injections is exactly `lossAndGradients(inputs:targets:rows:width:)`.
    public func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int,
                                 objective: Objective, hooks: ForwardHooks? = nil,
                                 injecting: ((GPTNeoX) throws(EngineError) -> [HookPoint: [Float]])? = nil) throws(EngineError) -> ObjectiveValue {
        try ensureCapacity(batch: rows, seq: width)
        net.zeroGrad()
        let value = try net.forward(tokens: inputs, targets: targets, batch: rows, seq: width, hooks: hooks, objective: objective)
        try net.backward(injecting: try injecting?(net) ?? [:])
        return value
    }

    /// Zeroes the gradients, runs forward (targets, if given, only mark the rows an objective scores;
    /// no loss is fused), calls `loss` with the network, which applies an objective to the logits
    /// (`applyObjective`) and/or returns d loss / d activation at hook points, and runs backward.
    /// What the unlearning objectives train with (Unlearning.swift).
    public func gradients(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, rows: Int, width: Int,
                          loss: (GPTNeoX) throws(EngineError) -> [HookPoint: [Float]]) throws(EngineError) {
        try ensureCapacity(batch: rows, seq: width)
        net.zeroGrad()
        try net.forward(tokens: tokens, targets: targets, batch: rows, seq: width)
        let injections = try loss(net)
        try net.backward(injecting: injections)
    }

    /// Logits [rows, width, vocab] for right-padded rows; processed in chunks of the buffer size.
    /// Hooks see global rows (ActivationView.firstRow) and are checked against the whole run first.
    public func logits(tokens: UnsafePointer<Int32>, rows: Int, width: Int, out: UnsafeMutablePointer<Float>,
                       hooks: ForwardHooks? = nil) throws(EngineError) {
        try forEachChunk(tokens: tokens, rows: rows, width: width, hooks: hooks) { (start: Int, n: Int) in
            (out + start * width * vocabSize).update(from: net.logits.baseAddress!, count: n * width * vocabSize)
        }
    }

    /// Forward passes over `rows` right-padded rows for their hooks only (recording, patching): in
    /// chunks of the buffer size, nothing kept, so memory does not grow with the number of rows.
    public func run(tokens: UnsafePointer<Int32>, rows: Int, width: Int, hooks: ForwardHooks) throws(EngineError) {
        try forEachChunk(tokens: tokens, rows: rows, width: width, hooks: hooks) { _, _ in }
    }

    /// Forward passes in chunks of the buffer size; `done(firstRow, rows)` after each.
    func forEachChunk(tokens: UnsafePointer<Int32>, rows: Int, width: Int, hooks: ForwardHooks?,
                      _ done: (Int, Int) -> Void) throws(EngineError) {
        try ensureCapacity(batch: min(rows, max(net.maxBatch, 1)), seq: width)
        var start = 0
        while start < rows {
            let n = min(net.maxBatch, rows - start)
            try net.forward(tokens: tokens + start * width, targets: nil, batch: n, seq: width, hooks: hooks,
                            firstRow: start, totalRows: rows, keepForBackward: false)
            done(start, n)
            start += n
        }
    }

    public func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        try ensureCapacity(batch: min(rows, 64), seq: width)
        var start = 0
        let V = vocabSize
        while start < rows {
            let n = min(net.maxBatch, rows - start)
            try net.forward(tokens: tokens + start * width, targets: nil, batch: n, seq: width, keepForBackward: false)
            let lg = net.logits.baseAddress!
            for r in 0..<n {
                let len = lengths[start + r]
                guard len >= 1, len <= width else { throw .invalid("evaluation: prompt length \(len) outside 1...\(width)") }
                (out + (start + r) * V).update(from: lg + (r * width + len - 1) * V, count: V)
            }
            start += n
        }
    }

    /// Greedy next token after each prompt (flat prompts + offsets).
    public func predict(prompts: [Int32], offsets: [Int64]) throws(EngineError) -> [Int32] {
        let set = PromptSet(name: "predict", prompts: prompts, offsets: offsets, targets: [Int32](repeating: -1, count: offsets.count - 1))
        return try evaluatePrompts(set, vocab: vocabSize, batchSize: 64) { (tk, rows, width, lengths, o) throws(EngineError) in
            try logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }.predicted
    }

    /// An independent copy (weights, vocabulary, history).
    public func clone() throws(EngineError) -> LanguageModel {
        let c = try LanguageModel(config: config, batch: net.maxBatch, seq: net.maxSeq, initializeWeights: false)
        c.net.params.base.update(from: net.params.base, count: net.table.totalCount)
        c.tokenizerJSON = tokenizerJSON
        c.history = history
        return c
    }

    // MARK: checkpoints

    public func checkpoint() -> Checkpoint {
        var c = Checkpoint(configJSON: config.toJSON().serialized(), table: tensorTable, weights: Array(parameterBlock))
        c.tokenizerJSON = tokenizerJSON
        c.history = history
        return c
    }

    public func save(_ path: String) throws(EngineError) { try checkpoint().save(path) }

    /// The model's content digest (config and weights), equal to the `digest` of the file it saves to.
    public var contentDigest: String {
        Checkpoint.digest(configJSON: config.toJSON().serialized(), table: tensorTable, weights: UnsafeBufferPointer(parameterBlock))
    }

    /// Loads a model file; returns the model and the full checkpoint (optimizer state, trainer position).
    public static func load(_ path: String) throws(EngineError) -> (LanguageModel, Checkpoint) {
        var config: ModelConfig?
        let c = try Checkpoint.load(path) { (json: String) throws(EngineError) -> TensorTable in
            let cfg: ModelConfig
            do throws(EngineError) { cfg = try ModelConfig(text: json, path: "\(path): model config") } catch {
                throw .format(error.message)
            }
            config = cfg
            // The table alone: nothing is allocated before the file's weights are read and checked.
            return ParameterTable(config: cfg).tensors
        }
        let m: LanguageModel
        do { m = try LanguageModel(config: config!, initializeWeights: false) } catch {
            // The file passed its checks but describes a model this library cannot build.
            throw EngineError(error.status == .noMemory ? .noMemory : .format, "\(path): \(error.message)")
        }
        m.parameterBlock.baseAddress!.update(from: c.weights, count: min(c.weights.count, m.parameterBlock.count))
        m.tokenizerJSON = c.tokenizerJSON
        m.history = c.history
        return (m, c)
    }
}

extension LanguageModel {
    /// What bh_model_info returns: config, parameter count, digest, tensors, tokenizer, history summary.
    public func info() -> JSON {
        let h = history
        return .object([
            ("config", config.toJSON()),
            ("parameters", .int(parameterCount)),
            ("digest", .string(contentDigest)),
            ("side_path_adapter_digest", AdapterSet.sidePathDigest(of: self).map { .string($0) } ?? .null),
            ("tensors", .array(tensorTable.map { .object([("name", .string($0.name)), ("shape", .ints($0.shape))]) })),
            ("tokenizer", tokenizerJSON.isEmpty ? .null : (try? JSON.parse(tokenizerJSON, what: "tokenizer")) ?? .null),
            ("history", .object([
                ("steps", .int(h.step.count)),
                ("final_loss", h.loss.last.map { .number(Double($0)) } ?? .null),
                ("evaluations", .int(h.evalStep.count)),
                ("eval_groups", .strings(h.evalGroups)),
                ("datasets", .strings(h.datasets)),
                ("final_accuracy", h.evalStep.isEmpty ? .null : .array(h.evalAccuracy.suffix(h.evalGroups.count).map { .number(Double($0)) })),
            ])),
            ("library_version", .string(Version.string)),
        ])
    }
}

