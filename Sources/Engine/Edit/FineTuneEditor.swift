/// The fine-tuning editors' shared parts: the optimizer spec, and an editor that trains a wrapper
/// network (a subset of the model's tensors, or LoRA adapters) with the Trainer on the run's
/// training sentences. Full fine-tuning is FullFineTuneSpec (below); LoRA is LoRAEditor.swift.

/// The "optimizer" object of a fine-tuning method: AdamW with warm-up and cosine decay (TrainSpec).
/// Defaults for editing: LitGPT's LoRA learning rate; epochs and the full fine-tuning rate chosen
/// on the demo model (single edits succeed, remaining accuracy kept); beta2 = 0.999 (PyTorch's).
public struct EditOptimizerSpec {
    public var training = TrainSpec()

    /// The optimizer's fields: the training spec's own (TrainSpec.fields), those that apply to an edit.
    public static let fields: [SpecField<TrainSpec>] = TrainSpec.fields.filter {
        ["epochs", "batch_size", "learning_rate", "min_learning_rate", "warmup_steps", "warmup_fraction",
         "weight_decay", "beta1", "beta2", "eps", "grad_clip", "seed"].contains($0.key)
    }

    /// The editing defaults, with the method's epochs and learning rate.
    public init(epochs: Int, learningRate: Double) {
        var t = TrainSpec()
        t.epochs = epochs
        t.batchSize = 32
        t.learningRate = learningRate
        t.minLearningRate = 0
        t.warmupSteps = -1
        t.warmupFraction = 0.05
        t.weightDecay = 0
        t.gradClip = 1
        t.beta1 = 0.9
        t.beta2 = 0.999
        t.eps = 1e-8
        t.seed = 0
        t.evalEveryEpochs = 0
        t.evalGroups = []
        training = t
    }

    /// The "optimizer" field of a method spec (a nested object over these defaults).
    public static func field<S>(_ p: WritableKeyPath<S, EditOptimizerSpec>) -> SpecField<S> {
        SpecField("optimizer", read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            var opt = try r.object("optimizer")
            try SpecFields.decode(fields, into: &s[keyPath: p].training, from: &opt)
            try opt.finish()
            try s[keyPath: p].validate()
        }, write: { .object(SpecFields.echo(fields, $0[keyPath: p].training)) })
    }

    func validate() throws(EngineError) {
        guard training.beta1 < 1, training.beta2 < 1 else { throw .invalid("edit method: optimizer.beta1 and optimizer.beta2 must be below 1") }
        guard training.minLearningRate <= training.learningRate else { throw .invalid("edit method: optimizer.min_learning_rate is above learning_rate") }
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
    /// `LanguageModel.gradients` through the wrapper: afterwards `gradientBlock` holds d loss / d the
    /// wrapper's parameters (the unlearning objectives' step).
    func gradients(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, rows: Int, width: Int,
                   loss: (GPTNeoX) throws(EngineError) -> [HookPoint: [Float]]) throws(EngineError)
}

/// Trains a wrapper with the Trainer on the run's training sentences, one optimizer step per step().
final class FineTuneEditor: Editor {
    let wrapper: EditWrapper
    let trainer: Trainer

    init(_ wrapper: EditWrapper, training: TrainSpec, set: EditSet) throws(EngineError) {
        guard !set.sequenceGroup.isEmpty else { throw .invalid("edit set: no training sentences") }
        let opt = AdamW(table: wrapper.tensorTable, blockSize: wrapper.parameterBlock.count, spec: training)
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
    public var optimizer = EditOptimizerSpec(epochs: 5, learningRate: 1e-4)

    public init() {}
    public static let fields: [SpecField<FullFineTuneSpec>] = [EditOptimizerSpec.field(\.optimizer)]
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
    let base: LanguageModel
    let entries: [TensorEntry]          // offsets into the base block
    let tensorTable: TensorTable        // offsets into the subset block
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var vocabSize: Int { base.vocabSize }
    var maxPositions: Int { base.maxPositions }
    var trainingFlopsPerToken: Double { base.trainingFlopsPerToken }

    init(base: LanguageModel, names: [String]) throws(EngineError) {
        self.base = base
        var entries: [TensorEntry] = [], table: [TensorEntry] = [], offset = 0
        for n in names {
            guard let e = base.tensorTable[n] else { throw .internalError("no tensor named \(n)") }
            entries.append(e)
            table.append(TensorEntry(name: n, offset: offset, shape: e.shape))
            offset += e.count
        }
        self.entries = entries
        tensorTable = TensorTable(table)
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

    func gradients(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, rows: Int, width: Int,
                   loss: (GPTNeoX) throws(EngineError) -> [HookPoint: [Float]]) throws(EngineError) {
        scatter()
        try base.gradients(tokens: tokens, targets: targets, rows: rows, width: width, loss: loss)
        for (e, t) in zip(entries, tensorTable) {
            (gradientBlock.baseAddress! + t.offset).update(from: base.gradientBlock.baseAddress! + e.offset, count: e.count)
        }
    }

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        scatter()
        try base.logitsAtLast(tokens: tokens, rows: rows, width: width, lengths: lengths, out: out)
    }
}
