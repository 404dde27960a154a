/// How to train: a JSON spec with documented defaults (docs/formats.md, "Training spec").
public struct TrainSpec {
    public var epochs = 100
    /// Stop early once fact accuracy on the evaluated groups reaches this (0 = never stop early).
    public var stopAtAccuracy = 0.0
    public var batchSize = 64
    public var learningRate = 1e-3
    public var minLearningRate = 1e-4
    /// Warm-up steps; negative means "this fraction of all steps" is given by warmupFraction.
    public var warmupSteps = -1
    public var warmupFraction = 0.01
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var eps = 1e-8
    public var gradClip = 1.0
    public var seed: UInt64 = 0
    /// Evaluate every this many epochs (0 = only at the end).
    public var evalEveryEpochs = 10
    /// Evaluation groups to score ("sro" by default: every fact).
    public var evalGroups = ["sro"]
    /// Write a checkpoint here every `checkpointEveryEpochs` epochs and at the end ("" = never).
    public var checkpointPath = ""
    public var checkpointEveryEpochs = 0
    /// Continue an interrupted run from this checkpoint ("" = start fresh).
    public var resumeFrom = ""

    public init() {}

    public init(json text: String) throws(EngineError) {
        var r = try JSONReader(text: text, path: "training spec")
        epochs = try r.int("epochs", default: epochs, min: 1, max: 1_000_000)
        stopAtAccuracy = try r.double("stop_at_accuracy", default: stopAtAccuracy, min: 0, max: 1)
        batchSize = try r.int("batch_size", default: batchSize, min: 1, max: 65536)
        learningRate = try r.double("learning_rate", default: learningRate, min: 0, max: 10, exclusiveMin: true)
        minLearningRate = try r.double("min_learning_rate", default: minLearningRate, min: 0, max: 10)
        warmupSteps = try r.int("warmup_steps", default: warmupSteps, min: -1, max: 100_000_000)
        warmupFraction = try r.double("warmup_fraction", default: warmupFraction, min: 0, max: 1)
        weightDecay = try r.double("weight_decay", default: weightDecay, min: 0, max: 10)
        beta1 = try r.double("beta1", default: beta1, min: 0, max: 1)
        beta2 = try r.double("beta2", default: beta2, min: 0, max: 1)
        eps = try r.double("eps", default: eps, min: 0, max: 1, exclusiveMin: true)
        gradClip = try r.double("grad_clip", default: gradClip, min: 0, max: 1e6)
        seed = UInt64(try r.int("seed", default: Int(seed), min: 0))
        evalEveryEpochs = try r.int("eval_every_epochs", default: evalEveryEpochs, min: 0, max: 1_000_000)
        evalGroups = try r.stringArray("eval_groups", default: evalGroups)
        checkpointPath = try r.string("checkpoint_path", default: checkpointPath)
        checkpointEveryEpochs = try r.int("checkpoint_every_epochs", default: checkpointEveryEpochs, min: 0, max: 1_000_000)
        resumeFrom = try r.string("resume_from", default: resumeFrom)
        try r.finish()
        guard beta1 < 1, beta2 < 1 else { throw .invalid("training spec: beta1 and beta2 must be below 1") }
        guard minLearningRate <= learningRate else {
            throw .invalid("training spec: min_learning_rate = \(minLearningRate) is above learning_rate = \(learningRate)")
        }
    }

    public func toJSON() -> JSON {
        .object([
            ("epochs", .int(epochs)), ("stop_at_accuracy", .number(stopAtAccuracy)), ("batch_size", .int(batchSize)),
            ("learning_rate", .number(learningRate)), ("min_learning_rate", .number(minLearningRate)),
            ("warmup_steps", .int(warmupSteps)), ("warmup_fraction", .number(warmupFraction)),
            ("weight_decay", .number(weightDecay)), ("beta1", .number(beta1)), ("beta2", .number(beta2)),
            ("eps", .number(eps)), ("grad_clip", .number(gradClip)), ("seed", .int(Int(seed))),
            ("eval_every_epochs", .int(evalEveryEpochs)), ("eval_groups", .strings(evalGroups)),
            ("checkpoint_path", .string(checkpointPath)), ("checkpoint_every_epochs", .int(checkpointEveryEpochs)),
            ("resume_from", .string(resumeFrom)),
        ])
    }

    /// Warm-up steps for a run of `totalSteps`.
    public func warmup(totalSteps: Int) -> Int {
        warmupSteps >= 0 ? warmupSteps : Int((warmupFraction * Double(totalSteps)).rounded())
    }
}
