/// A training run of a model on a dataset, as bh_trainer and Model.train run it: the Trainer with
/// AdamW, evaluation on the spec's groups, resuming from a checkpoint (`resume_from`), periodic
/// checkpoints (`checkpoint_path`), and the report. `step()` until nil, then `end()`.
public final class TrainingSession {
    public let model: LanguageModel
    public let dataset: Dataset
    public let trainer: Trainer
    public let optimizer: AdamW
    let started = monotonicSeconds()
    /// Set by end(): a later step is misuse, not more training.
    public private(set) var ended = false

    public init(model: LanguageModel, dataset: Dataset, spec: TrainSpec) throws(EngineError) {
        try dataset.checkFits(vocabSize: model.vocabSize, what: "training")
        if model.tokenizerJSON.isEmpty { model.tokenizerJSON = dataset.tokenizerJSON().serialized() }
        self.model = model
        self.dataset = dataset
        var evalSets: [PromptSet] = []
        // A dataset with excluded facts (an unlearning oracle's) is evaluated on the facts it trains
        // on: its accuracy (and stop_at_accuracy) then means what it means for the full dataset.
        let excluded = Set(dataset.spec.excludeFacts.map(Int32.init))
        for g in spec.evalGroups { evalSets.append(try dataset.promptSet(g).leavingOut(facts: excluded)) }
        optimizer = AdamW(table: model.tensorTable, blockSize: model.parameterBlock.count, spec: spec)
        trainer = try Trainer(network: model, optimizer: optimizer, spec: spec, tokens: dataset.tokens, offsets: dataset.offsets, evalSets: evalSets)
        try model.ensureCapacity(batch: spec.batchSize, seq: trainer.batcher.width)
        if !spec.resumeFrom.isEmpty { try resume(from: spec.resumeFrom) }
        for d in model.history.datasets { trainer.recordDataset(d) }   // a model trained further keeps what it learned from
        trainer.recordDataset(dataset.contentDigest())
        if !spec.checkpointPath.isEmpty {
            let path = spec.checkpointPath
            trainer.saveCheckpoint = { [unowned self] (_: Trainer) throws(EngineError) in try self.save(path) }
        }
    }

    /// Weights, optimizer moments, position and history from a checkpoint of the same config.
    func resume(from path: String) throws(EngineError) {
        let (loaded, ck) = try LanguageModel.load(path)
        guard loaded.config.toJSON() == model.config.toJSON() else {
            throw .invalid("training spec: resume_from \(path) holds a model with another config")
        }
        guard let mo = ck.optimizerM, let vo = ck.optimizerV, !ck.trainerState.isEmpty else {
            throw .format("\(path) has no optimizer state or trainer position: it is not a resumable checkpoint (write one with bh_trainer_save or checkpoint_path)")
        }
        model.parameterBlock.baseAddress!.update(from: loaded.parameterBlock.baseAddress!, count: model.parameterBlock.count)
        optimizer.firstMoment.replaceSubrange(0..<mo.count, with: mo)
        optimizer.secondMoment.replaceSubrange(0..<vo.count, with: vo)
        optimizer.stepCount = ck.optimizerStep
        try trainer.restore(state: ck.trainerState, history: ck.history)
    }

    /// One optimizer step (and an evaluation when one is due); nil when training is done.
    public func step() throws(EngineError) -> StepReport? {
        guard !ended else { throw .misuse("the training session was ended; begin a new one to train further") }
        let r = try trainer.step()
        if r == nil || trainer.finished { model.history = trainer.history }
        return r
    }

    /// Runs every remaining step.
    public func run() throws(EngineError) {
        while try step() != nil {}
    }

    /// A resumable checkpoint: weights, optimizer moments, trainer position and history.
    public func save(_ path: String) throws(EngineError) {
        model.history = trainer.history
        var ck = model.checkpoint()
        ck.optimizerM = optimizer.firstMoment
        ck.optimizerV = optimizer.secondMoment
        ck.optimizerStep = optimizer.stepCount
        ck.trainerState = trainer.stateJSON().serialized()
        try ck.save(path)
    }

    /// Ends the session (the model keeps its history) and returns the report.
    public func end() -> JSON {
        ended = true
        model.history = trainer.history
        return report()
    }

    public func report() -> JSON {
        let h = trainer.history
        var groups: [(String, JSON)] = []
        if !h.evalStep.isEmpty {
            for (i, g) in h.evalGroups.enumerated() {
                groups.append((g, .number(Double(h.evalAccuracy[(h.evalStep.count - 1) * h.evalGroups.count + i]))))
            }
        }
        return .object([
            ("spec", trainer.spec.toJSON()),
            ("model", model.config.toJSON()),
            ("dataset_spec", dataset.spec.toJSON()),
            ("model_digest", .string(model.contentDigest)),
            ("dataset_digest", .string(dataset.contentDigest())),
            ("steps", .int(trainer.stepsTaken)),
            ("total_steps", .int(trainer.totalSteps)),
            ("finished", .bool(trainer.finished)),
            ("final_loss", h.loss.last.map { .number(Double($0)) } ?? .null),
            ("final_accuracy", .object(groups)),
            ("seconds", .number(monotonicSeconds() - started)),
            ("training_tokens_per_second", .number(trainer.tokensProcessed / max(1e-9, trainer.trainingSeconds))),
            ("library_version", .string(Version.string)),
            ("runtime", Runtime.info()),
        ])
    }
}
