/// How to train: a JSON spec with documented defaults (docs/formats.md, "Training spec").
public struct TrainSpec: DeclaredSpec {
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

    public static let specPath = "training spec"
    public static let fields: [SpecField<TrainSpec>] = [
        .int("epochs", \.epochs, min: 1, max: 1_000_000),
        .double("stop_at_accuracy", \.stopAtAccuracy, min: 0, max: 1),
        .int("batch_size", \.batchSize, min: 1, max: 65536),
        .double("learning_rate", \.learningRate, min: 0, max: 10, exclusiveMin: true),
        .double("min_learning_rate", \.minLearningRate, min: 0, max: 10),
        .int("warmup_steps", \.warmupSteps, min: -1, max: 100_000_000),
        .double("warmup_fraction", \.warmupFraction, min: 0, max: 1),
        .double("weight_decay", \.weightDecay, min: 0, max: 10),
        .double("beta1", \.beta1, min: 0, max: 1),
        .double("beta2", \.beta2, min: 0, max: 1),
        .double("eps", \.eps, min: 0, max: 1, exclusiveMin: true),
        .double("grad_clip", \.gradClip, min: 0, max: 1e6),
        .seed("seed", \.seed),
        .int("eval_every_epochs", \.evalEveryEpochs, min: 0, max: 1_000_000),
        .strings("eval_groups", \.evalGroups),
        .string("checkpoint_path", \.checkpointPath),
        .int("checkpoint_every_epochs", \.checkpointEveryEpochs, min: 0, max: 1_000_000),
        .string("resume_from", \.resumeFrom),
    ]

    public func validate() throws(EngineError) {
        guard beta1 < 1, beta2 < 1 else { throw .invalid("training spec: beta1 and beta2 must be below 1") }
        guard minLearningRate <= learningRate else {
            throw .invalid("training spec: min_learning_rate = \(minLearningRate) is above learning_rate = \(learningRate)")
        }
    }

    /// Warm-up steps for a run of `totalSteps`.
    public func warmup(totalSteps: Int) -> Int {
        warmupSteps >= 0 ? warmupSteps : Int((warmupFraction * Double(totalSteps)).rounded())
    }
}
