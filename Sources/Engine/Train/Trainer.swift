/// What the trainer needs from a network: a flat parameter block with a gradient block of the same
/// layout, a fused forward+backward over a batch, and logits at the last prompt positions.
public protocol TrainableNetwork: AnyObject {
    var tensorTable: TensorTable { get }
    var vocabSize: Int { get }
    var maxPositions: Int { get }
    var parameterBlock: UnsafeMutableBufferPointer<Float> { get }
    var gradientBlock: UnsafeMutableBufferPointer<Float> { get }
    /// Zeroes the gradients, runs forward and backward on [rows, width] inputs with next-token
    /// targets (-1 = ignored), and returns the mean loss over the counted positions.
    func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float
    /// Forward only: logits at each row's last position, [rows, vocab].
    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError)
    /// Training FLOPs per token (forward + backward), for throughput reports.
    var trainingFlopsPerToken: Double { get }
    /// Restricts gradients to these tensors (nil = all); frozen tensors get no gradient, and the
    /// network may skip their weight-gradient products.
    func setTrainable(_ names: Set<String>?)
    /// Per tensor of `tensorTable`: false for frozen tensors (nil = all trainable).
    var trainableMask: [Bool]? { get }
}

extension TrainableNetwork {
    public func setTrainable(_ names: Set<String>?) {}
    public var trainableMask: [Bool]? { nil }
}

/// An optimizer over the flat blocks (AdamW in practice). `state` is what a checkpoint keeps.
public protocol BlockOptimizer: AnyObject {
    var stepCount: Int { get set }
    var firstMoment: [Float] { get set }
    var secondMoment: [Float] { get set }
    /// One update with the gradients multiplied by `gradientScale` (global-norm clipping);
    /// `trainable` (per tensor of the network's table) skips frozen tensors.
    func update(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Float,
                gradientScale: Float, trainable: [Bool]?)
}

/// One training step's report.
public struct StepReport {
    public var step = 0            // 1-based count of optimizer steps taken
    public var totalSteps = 0
    public var epoch = 0           // 0-based epoch this step belonged to
    public var loss: Float = 0
    public var learningRate: Float = 0
    public var gradNorm: Float = 0
    public var tokensPerSecond: Double = 0
    public var evaluated = false
    public var accuracy: [(String, Double)] = []

    public func toJSON() -> JSON {
        .object([
            ("step", .int(step)), ("total_steps", .int(totalSteps)), ("epoch", .int(epoch)),
            ("loss", .number(Double(loss))), ("learning_rate", .number(Double(learningRate))),
            ("grad_norm", .number(Double(gradNorm))), ("tokens_per_second", .number(tokensPerSecond)),
            ("evaluated", .bool(evaluated)),
            ("accuracy", .object(accuracy.map { ($0.0, .number($0.1)) })),
        ])
    }
}

/// The training state machine: `step()` takes one optimizer step (evaluating and checkpointing on
/// schedule) until it returns nil. Its position (step, epoch, batch) plus the weights and optimizer
/// moments are all a resumed run needs to continue exactly as an uninterrupted one.
public final class Trainer {
    public let network: TrainableNetwork
    public let optimizer: BlockOptimizer
    public let spec: TrainSpec
    public private(set) var batcher: SequenceBatcher
    public let evalSets: [PromptSet]
    public private(set) var history = TrainingHistory()
    public private(set) var finished = false
    /// Called to write a checkpoint (the caller knows the model's config and tokenizer).
    public var saveCheckpoint: ((Trainer) throws(EngineError) -> Void)?

    public private(set) var stepsTaken = 0
    /// Target tokens trained on and seconds spent in training steps (evaluation excluded).
    public private(set) var tokensProcessed = 0.0
    public private(set) var trainingSeconds = 0.0
    public let totalSteps: Int
    private var inputs: [Int32]
    private var targets: [Int32]

    public init(network: TrainableNetwork, optimizer: BlockOptimizer, spec: TrainSpec,
                tokens: [Int32], offsets: [Int64], evalSets: [PromptSet]) throws(EngineError) {
        self.network = network
        self.optimizer = optimizer
        self.spec = spec
        self.batcher = try SequenceBatcher(tokens: tokens, offsets: offsets, batchSize: spec.batchSize, seed: spec.seed,
                                           maxWidth: network.maxPositions)
        for (i, t) in tokens.enumerated() where t < 0 || Int(t) >= network.vocabSize {
            throw .invalid("training data: token \(t) at index \(i) is outside the model's vocabulary of \(network.vocabSize)")
        }
        self.evalSets = evalSets
        let (total, overflow) = spec.epochs.multipliedReportingOverflow(by: batcher.batchesPerEpoch)
        guard !overflow, total < Int(Int32.max) else { throw .invalid("training spec: epochs × batches per epoch is too large") }
        self.totalSteps = total
        inputs = [Int32](repeating: 0, count: spec.batchSize * batcher.width)
        targets = inputs
    }

    /// The learning-rate schedule of this run (linear warm-up, then cosine decay to the floor).
    public var schedule: LRSchedule {
        LRSchedule(lr: spec.learningRate, minLR: spec.minLearningRate, warmupSteps: spec.warmup(totalSteps: totalSteps), totalSteps: totalSteps)
    }

    /// Learning rate at 0-based step `s`.
    public func learningRate(at s: Int) -> Double { schedule.rate(at: s) }

    /// Trainer position for checkpoints: JSON {"steps_taken", "total_steps", "spec"}.
    public func stateJSON() -> JSON {
        .object([("steps_taken", .int(stepsTaken)), ("total_steps", .int(totalSteps)), ("finished", .bool(finished)),
                 ("spec", spec.toJSON())])
    }

    /// Restores the position and history of an interrupted run (weights and moments are restored
    /// by the caller into the network and optimizer).
    public func restore(state: String, history: TrainingHistory) throws(EngineError) {
        var r = try JSONReader(text: state, path: "checkpoint trainer state")
        let taken = try r.int("steps_taken", default: 0, min: 0)
        let total = try r.int("total_steps", default: totalSteps, min: 0)
        _ = try r.bool("finished", default: false)
        _ = r.value("spec")
        try r.finish()
        guard total == totalSteps else {
            throw .invalid("resume: the checkpoint's run has \(total) steps but this training spec and dataset give \(totalSteps); use the same spec and dataset")
        }
        guard taken <= totalSteps else { throw .format("resume: checkpoint is at step \(taken) of \(totalSteps)") }
        stepsTaken = taken
        self.history = history
        finished = taken == totalSteps
    }

    /// Notes a dataset this run trains on (its content digest) in the history the model keeps.
    public func recordDataset(_ digest: String) { history.recordDataset(digest) }

    public func evaluate() throws(EngineError) -> [(String, Double)] {
        var out: [(String, Double)] = []
        for set in evalSets {
            let r = try evaluatePrompts(set, vocab: network.vocabSize, batchSize: 256) { (tk, rows, width, lengths, o) throws(EngineError) in
                try network.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
            }
            out.append((set.name, r.accuracy))
        }
        return out
    }

    /// Takes one step; returns nil once training has finished.
    public func step() throws(EngineError) -> StepReport? {
        if finished || stepsTaken >= totalSteps { finished = true; return nil }
        let start = monotonicSeconds()
        let perEpoch = batcher.batchesPerEpoch
        let epoch = stepsTaken / perEpoch, index = stepsTaken % perEpoch
        let rows = inputs.withUnsafeMutableBufferPointer { i in
            targets.withUnsafeMutableBufferPointer { t in batcher.fill(epoch: epoch, index: index, inputs: i.baseAddress!, targets: t.baseAddress!) }
        }
        let width = batcher.width
        let loss = try inputs.withUnsafeBufferPointer { (i: UnsafeBufferPointer<Int32>) throws(EngineError) -> Float in
            try targets.withUnsafeBufferPointer { (t: UnsafeBufferPointer<Int32>) throws(EngineError) -> Float in
                try network.lossAndGradients(inputs: i.baseAddress!, targets: t.baseAddress!, rows: rows, width: width)
            }
        }
        guard loss.isFinite else {
            throw .numeric("training: the loss became \(loss) at step \(stepsTaken + 1) (epoch \(epoch)); lower learning_rate or raise grad_clip tightness. The last checkpoint on disk is untouched.")
        }
        // Global-norm clipping.
        let grads = network.gradientBlock
        let mask = network.trainableMask
        let norm = AdamW.globalNorm(UnsafeBufferPointer(grads), table: network.tensorTable, trainable: mask)
        guard norm.isFinite else { throw .numeric("training: the gradient norm became \(norm) at step \(stepsTaken + 1)") }
        // Clipping is applied inside the optimizer's pass (no extra pass over the gradients).
        let scale = AdamW.clipScale(norm: norm, maxNorm: spec.gradClip)
        let lr = Float(learningRate(at: stepsTaken))
        optimizer.update(parameters: network.parameterBlock, gradients: UnsafeBufferPointer(grads), learningRate: lr,
                         gradientScale: scale, trainable: mask)
        stepsTaken += 1

        var report = StepReport()
        report.step = stepsTaken
        report.totalSteps = totalSteps
        report.epoch = epoch
        report.loss = loss
        report.learningRate = lr
        report.gradNorm = norm
        var counted = 0
        for r in 0..<rows { for t in 0..<width where targets[r * width + t] >= 0 { counted += 1 } }
        let elapsed = monotonicSeconds() - start
        report.tokensPerSecond = Double(counted) / max(1e-9, elapsed)
        tokensProcessed += Double(counted)
        trainingSeconds += elapsed
        history.step.append(Int64(stepsTaken))
        history.loss.append(loss)
        history.learningRate.append(lr)
        history.gradNorm.append(norm)

        let epochDone = index == perEpoch - 1
        let last = stepsTaken == totalSteps
        if epochDone {
            let e = epoch + 1
            if last || (spec.evalEveryEpochs > 0 && e % spec.evalEveryEpochs == 0) {
                let acc = try evaluate()
                history.recordEvaluation(step: stepsTaken, epoch: e, accuracies: acc)
                report.evaluated = true
                report.accuracy = acc
                if spec.stopAtAccuracy > 0, !acc.isEmpty, acc.allSatisfy({ $0.1 >= spec.stopAtAccuracy }) { finished = true }
            }
            if last { finished = true }
            let due = spec.checkpointEveryEpochs > 0 && e % spec.checkpointEveryEpochs == 0
            if !spec.checkpointPath.isEmpty, due || finished, let save = saveCheckpoint { try save(self) }
        }
        return report
    }
}

#if canImport(Glibc)
import Glibc
#endif
