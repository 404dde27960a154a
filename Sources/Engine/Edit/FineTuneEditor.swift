/// The fine-tuning editors' shared parts: the optimizer spec, and an editor that trains a wrapper
/// network (a subset of the model's tensors, or LoRA adapters) with the Trainer on the run's
/// training sentences. Full fine-tuning is FullFineTuneSpec (below); LoRA is LoRAEditor.swift.

/// The "optimizer" object of a fine-tuning method: AdamW with warm-up and cosine decay (TrainSpec).
/// Defaults for editing: LitGPT's LoRA learning rate; epochs and the full fine-tuning rate chosen
/// on the demo model (single edits succeed, remaining accuracy kept); beta2 = 0.999 (PyTorch's).
public struct EditOptimizerSpec {
    public var training = TrainSpec()

    init(_ r: inout JSONReader, epochs: Int, learningRate: Double) throws(EngineError) {
        var opt = try r.object("optimizer")
        var t = TrainSpec()
        t.epochs = try opt.int("epochs", default: epochs, min: 1, max: 100_000)
        t.batchSize = try opt.int("batch_size", default: 32, min: 1, max: 65536)
        t.learningRate = try opt.double("learning_rate", default: learningRate, min: 0, max: 10, exclusiveMin: true)
        t.minLearningRate = try opt.double("min_learning_rate", default: 0, min: 0, max: 10)
        t.warmupSteps = try opt.int("warmup_steps", default: -1, min: -1, max: 10_000_000)
        t.warmupFraction = try opt.double("warmup_fraction", default: 0.05, min: 0, max: 1)
        t.weightDecay = try opt.double("weight_decay", default: 0, min: 0, max: 10)
        t.gradClip = try opt.double("grad_clip", default: 1.0, min: 0, max: 1e6)
        t.beta1 = try opt.double("beta1", default: 0.9, min: 0, max: 1)
        t.beta2 = try opt.double("beta2", default: 0.999, min: 0, max: 1)
        t.eps = try opt.double("eps", default: 1e-8, min: 0, max: 1, exclusiveMin: true)
        t.seed = UInt64(try opt.int("seed", default: 0, min: 0))
        try opt.finish()
        guard t.beta1 < 1, t.beta2 < 1 else { throw .invalid("edit method: optimizer.beta1 and optimizer.beta2 must be below 1") }
        t.evalEveryEpochs = 0
        t.evalGroups = []
        guard t.minLearningRate <= t.learningRate else { throw .invalid("edit method: optimizer.min_learning_rate is above learning_rate") }
        training = t
    }

    func echo() -> (String, JSON) {
        let t = training
        return ("optimizer", .object([
            ("epochs", .int(t.epochs)), ("batch_size", .int(t.batchSize)), ("learning_rate", .number(t.learningRate)),
            ("min_learning_rate", .number(t.minLearningRate)), ("warmup_steps", .int(t.warmupSteps)),
            ("warmup_fraction", .number(t.warmupFraction)), ("weight_decay", .number(t.weightDecay)),
            ("grad_clip", .number(t.gradClip)), ("beta1", .number(t.beta1)), ("beta2", .number(t.beta2)),
            ("eps", .number(t.eps)), ("seed", .int(Int(t.seed))),
        ]))
    }

    /// Optimizer steps of one run on `set`.
    func steps(for set: EditSet) -> Int {
        (set.sequenceGroup.count + training.batchSize - 1) / training.batchSize * training.epochs
    }

    /// The run's training spec: the seed differs per run.
    func training(run: Int) -> TrainSpec {
        var t = training
        t.seed = training.seed &+ UInt64(run)
        return t
    }
}

/// A network a fine-tuning editor trains in place of the model; `commit()` writes it into the model.
protocol EditWrapper: TrainableNetwork {
    func commit() -> EditArtifacts
}

/// Trains a wrapper with the Trainer on the run's training sentences, one optimizer step per step().
final class FineTuneEditor: Editor {
    let wrapper: EditWrapper
    let trainer: Trainer

    init(_ wrapper: EditWrapper, training: TrainSpec, set: EditSet) throws(EngineError) {
        guard !set.sequenceGroup.isEmpty else { throw .invalid("edit set: no training sentences") }
        let opt = BlockAdamW(table: wrapper.tensorTable, blockSize: wrapper.parameterBlock.count, spec: training)
        trainer = try Trainer(network: wrapper, optimizer: opt, spec: training, tokens: set.tokens, offsets: set.offsets, evalSets: [])
        self.wrapper = wrapper
    }

    func step() throws(EngineError) -> StepReport? { try trainer.step() }
    func commit() throws(EngineError) -> EditArtifacts { wrapper.commit() }
}

/// Full fine-tuning of the selected tensors (matrices and their biases, optionally the embeddings
/// and the unembedding); every other parameter stays bit for bit as it was.
public struct FullFineTuneSpec: EditorSpec {
    public static let method = "full"
    public let optimizer: EditOptimizerSpec

    public init(_ r: inout JSONReader, selection: LayerSelection, layers: Int) throws(EngineError) {
        if r.has("rank") { throw .invalid("edit method: rank applies to method \"lora\" only") }
        optimizer = try EditOptimizerSpec(&r, epochs: 5, learningRate: 1e-4)
    }

    public func echo() -> [(String, JSON)] { [optimizer.echo()] }
    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] { selection.tensorNames(layers: layers) }
    public func steps(for set: EditSet) -> Int { optimizer.steps(for: set) }

    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor {
        let names = changedTensors(c.selection, layers: c.model.config.layers)
        return try FineTuneEditor(try SubsetNetwork(base: c.model, names: names), training: optimizer.training(run: c.run), set: c.editSet)
    }
}

/// Presents a subset of a network's tensors as the trainable block: each step scatters the subset
/// into the network, runs it with only those tensors trainable, and gathers their gradients. Every
/// other parameter is left exactly as it was.
final class SubsetNetwork: EditWrapper {
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

    func commit() -> EditArtifacts {
        scatter()
        return EditArtifacts()
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
