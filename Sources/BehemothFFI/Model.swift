import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

// Models, training, evaluation and capacity search (behemoth.h, "Models" to "Evaluation").

func model(_ m: OpaquePointer?, _ fn: String) throws(EngineError) -> LanguageModel {
    try Handle.get(m, LanguageModel.self, fn, "model")
}

func optionalDataset(_ ds: OpaquePointer?, _ fn: String) throws(EngineError) -> Dataset? {
    ds == nil ? nil : try Handle.get(ds, Dataset.self, fn, "dataset")
}

/// A model config from JSON, with the vocabulary taken from the dataset when there is one.
func makeConfig(_ json: String, dataset: Dataset?, fn: String) throws(EngineError) -> ModelConfig {
    var cfg = try ModelConfig(text: json.isEmpty ? "{}" : json)
    if let ds = dataset {
        if cfg.vocabSize == 0 { cfg.vocabSize = ds.vocabSize }
        try ds.checkFits(vocabSize: cfg.vocabSize, what: "\(fn): model config")
    }
    guard cfg.vocabSize >= 2 else { throw .invalid("\(fn): model config has no vocab_size; pass a dataset or set vocab_size") }
    try cfg.validate()
    return cfg
}

@c @implementation public func bh_model_create(_ config_json: UnsafePointer<CChar>?, _ ds: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_create"
        let o = try clearOut(out, fn)
        let d = try optionalDataset(ds, fn)
        let cfg = try makeConfig(try cString(config_json, fn, "config_json"), dataset: d, fn: fn)
        let m = try LanguageModel(config: cfg)
        if let d { m.tokenizerJSON = d.tokenizerJSON().serialized() }
        o.pointee = Handle.make(m)
    }
}

@c @implementation public func bh_model_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_load"
        let o = try clearOut(out, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        o.pointee = Handle.make(try LanguageModel.load(p).0)
    }
}

@c @implementation public func bh_model_save(_ m: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_save"
        let mm = try model(m, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        try mm.save(p)
    }
}

@c @implementation public func bh_model_clone(_ m: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_clone"
        let o = try clearOut(out, fn)
        o.pointee = Handle.make(try model(m, fn).clone())
    }
}

@c @implementation public func bh_model_info(_ m: OpaquePointer?, _ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_info"
        let mm = try model(m, fn)
        let h = mm.history
        let info: JSON = .object([
            ("config", mm.config.toJSON()),
            ("parameters", .int(mm.parameterCount)),
            ("digest", .string(mm.contentDigest)),
            ("tensors", .array(mm.tensorTable.map { .object([("name", .string($0.name)), ("shape", .ints($0.shape))]) })),
            ("tokenizer", mm.tokenizerJSON.isEmpty ? .null : (try? JSON.parse(mm.tokenizerJSON, what: "tokenizer")) ?? .null),
            ("history", .object([
                ("steps", .int(h.step.count)),
                ("final_loss", h.loss.last.map { .number(Double($0)) } ?? .null),
                ("evaluations", .int(h.evalStep.count)),
                ("eval_groups", .strings(h.evalGroups)),
                ("final_accuracy", h.evalStep.isEmpty ? .null : .array(h.evalAccuracy.suffix(h.evalGroups.count).map { .number(Double($0)) })),
            ])),
            ("library_version", .string(Version.string)),
        ])
        try returnString(info.serialized(), json_out, fn)
    }
}

@c @implementation public func bh_model_logits(_ m: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ rows: Int64, _ width: Int64,
                                               _ buffer: UnsafeMutablePointer<Float>?, _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_logits"
        let mm = try model(m, fn)
        guard rows >= 1, width >= 1 else { throw .invalid("\(fn): rows = \(rows) and width = \(width) must be at least 1") }
        guard width <= Int64(mm.maxPositions) else { throw .invalid("\(fn): width = \(width) exceeds max_positions = \(mm.maxPositions)") }
        let n = try checkedProduct([Int(rows), Int(width)], what: "\(fn): rows × width", limit: 1 << 32)
        let total = try checkedProduct([n, mm.vocabSize], what: "\(fn): logits", limit: 1 << 34)
        let tk = try inputBuffer(tokens, Int64(n), fn, "tokens")
        for (i, t) in tk.enumerated() where t < 0 || Int(t) >= mm.vocabSize {
            throw .invalid("\(fn): tokens[\(i)] = \(t) is outside the vocabulary 0..<\(mm.vocabSize)")
        }
        guard let count else { throw .invalid("\(fn): count pointer is NULL") }
        count.pointee = Int64(total)
        guard capacity >= 0 else { throw .invalid("\(fn): capacity = \(capacity) is negative") }
        if buffer == nil && capacity == 0 { return }
        guard let buffer else { throw .invalid("\(fn): buffer is NULL but capacity is \(capacity)") }
        guard capacity >= Int64(total) else {
            throw EngineError(.bufferTooSmall, "\(fn): buffer holds \(capacity) floats but \(total) are needed")
        }
        try mm.logits(tokens: tk.baseAddress!, rows: Int(rows), width: Int(width), out: buffer)
    }
}

/// Checks flat prompts + offsets from a caller.
func promptsFromCaller(_ prompts: UnsafePointer<Int32>?, _ offsets: UnsafePointer<Int64>?, _ n: Int64, vocab: Int, maxLength: Int,
                       _ fn: String) throws(EngineError) -> ([Int32], [Int64]) {
    guard n >= 1 else { throw .invalid("\(fn): n_prompts = \(n) must be at least 1") }
    let off = try inputBuffer(offsets, n + 1, fn, "offsets")
    guard off[0] == 0 else { throw .invalid("\(fn): offsets[0] = \(off[0]) must be 0") }
    for i in 0..<Int(n) {
        let len = off[i + 1] - off[i]
        guard len >= 1, len <= Int64(maxLength) else {
            throw .invalid("\(fn): prompt \(i) has \(len) tokens; each needs 1...\(maxLength)")
        }
    }
    let tk = try inputBuffer(prompts, off[Int(n)], fn, "prompts")
    for (i, t) in tk.enumerated() where t < 0 || Int(t) >= vocab {
        throw .invalid("\(fn): prompts[\(i)] = \(t) is outside the vocabulary 0..<\(vocab)")
    }
    return (Array(tk), Array(off))
}

@c @implementation public func bh_model_predict(_ m: OpaquePointer?, _ prompts: UnsafePointer<Int32>?, _ offsets: UnsafePointer<Int64>?, _ n_prompts: Int64,
                                                _ buffer: UnsafeMutablePointer<Int32>?, _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_predict"
        let mm = try model(m, fn)
        let (p, o) = try promptsFromCaller(prompts, offsets, n_prompts, vocab: mm.vocabSize, maxLength: mm.maxPositions, fn)
        guard let count else { throw .invalid("\(fn): count pointer is NULL") }
        count.pointee = n_prompts
        if buffer == nil && capacity == 0 { return }
        try copyOut(try mm.predict(prompts: p, offsets: o), buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_model_tensor(_ m: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Float>?,
                                               _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_tensor"
        let mm = try model(m, fn)
        let n = try cString(name, fn, "name")
        guard let e = mm.tensorTable.first(where: { $0.name == n }) else {
            throw .invalid("\(fn): the model has no tensor \"\(n)\" (names as in Hugging Face, e.g. gpt_neox.layers.0.mlp.dense_4h_to_h.weight)")
        }
        try copyOut(UnsafeBufferPointer(rebasing: mm.parameterBlock[e.offset..<(e.offset + e.count)]), buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_model_free(_ m: OpaquePointer?) { Handle.free(m, LanguageModel.self) }

// MARK: training

/// A training run on a model and a dataset (the handle behind bh_trainer).
final class TrainingSession {
    let model: LanguageModel
    let dataset: Dataset
    let trainer: Trainer
    let optimizer: BlockAdamW
    let started = monotonicSeconds()
    /// Set by bh_trainer_end: a later bh_trainer_step is misuse, not more training.
    var ended = false

    init(model: LanguageModel, dataset: Dataset, spec: TrainSpec) throws(EngineError) {
        try dataset.checkFits(vocabSize: model.vocabSize, what: "training")
        self.model = model
        self.dataset = dataset
        var evalSets: [PromptSet] = []
        for g in spec.evalGroups { evalSets.append(try dataset.promptSet(g)) }
        optimizer = BlockAdamW(table: model.tensorTable, blockSize: model.parameterBlock.count, spec: spec)
        trainer = try Trainer(network: model, optimizer: optimizer, spec: spec, tokens: dataset.tokens, offsets: dataset.offsets, evalSets: evalSets)
        try model.ensureCapacity(batch: spec.batchSize, seq: trainer.batcher.width)
        if !spec.resumeFrom.isEmpty {
            let (loaded, ck) = try LanguageModel.load(spec.resumeFrom)
            guard loaded.config.toJSON() == model.config.toJSON() else {
                throw .invalid("training spec: resume_from \(spec.resumeFrom) holds a model with another config")
            }
            guard let mo = ck.optimizerM, let vo = ck.optimizerV, !ck.trainerState.isEmpty else {
                throw .format("\(spec.resumeFrom) has no optimizer state or trainer position: it is not a resumable checkpoint (write one with bh_trainer_save or checkpoint_path)")
            }
            model.parameterBlock.baseAddress!.update(from: loaded.parameterBlock.baseAddress!, count: model.parameterBlock.count)
            optimizer.firstMoment.replaceSubrange(0..<mo.count, with: mo)
            optimizer.secondMoment.replaceSubrange(0..<vo.count, with: vo)
            optimizer.stepCount = ck.optimizerStep
            try trainer.restore(state: ck.trainerState, history: ck.history)
        }
        if !spec.checkpointPath.isEmpty {
            let path = spec.checkpointPath
            trainer.saveCheckpoint = { [unowned self] (_: Trainer) throws(EngineError) in try self.save(path) }
        }
    }

    /// A resumable checkpoint: weights, optimizer moments, trainer position and history.
    func save(_ path: String) throws(EngineError) {
        model.history = trainer.history
        var ck = model.checkpoint()
        ck.optimizerM = optimizer.firstMoment
        ck.optimizerV = optimizer.secondMoment
        ck.optimizerStep = optimizer.stepCount
        ck.trainerState = trainer.stateJSON().serialized()
        try ck.save(path)
    }

    func report() -> JSON {
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
            ("dataset_spec", dataset.spec.json),
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

func session(_ t: OpaquePointer?, _ fn: String) throws(EngineError) -> TrainingSession {
    try Handle.get(t, TrainingSession.self, fn, "trainer")
}

@c @implementation public func bh_trainer_begin(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ spec_json: UnsafePointer<CChar>?,
                                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trainer_begin"
        let o = try clearOut(out, fn)
        let mm = try model(m, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        let spec = try TrainSpec(json: try cString(spec_json, fn, "spec_json"))
        if mm.tokenizerJSON.isEmpty { mm.tokenizerJSON = d.tokenizerJSON().serialized() }
        o.pointee = Handle.make(try TrainingSession(model: mm, dataset: d, spec: spec))
    }
}

@c @implementation public func bh_trainer_step(_ t: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exportedStep { () throws(EngineError) -> Int32 in
        let fn = "bh_trainer_step"
        let s = try session(t, fn)
        if let report_json { report_json.pointee = nil }
        guard !s.ended else { throw .misuse("\(fn): the training session was ended by bh_trainer_end; begin a new one to train further") }
        guard let r = try s.trainer.step() else {
            s.model.history = s.trainer.history
            return BH_DONE
        }
        if let report_json { try returnString(r.toJSON().serialized(), report_json, fn) }
        if s.trainer.finished { s.model.history = s.trainer.history }
        return BH_STEP
    }
}

@c @implementation public func bh_trainer_save(_ t: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trainer_save"
        let s = try session(t, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        try s.save(p)
    }
}

@c @implementation public func bh_trainer_end(_ t: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trainer_end"
        let s = try session(t, fn)
        s.ended = true
        s.model.history = s.trainer.history
        if let report_json { try returnString(s.report().serialized(pretty: true), report_json, fn) }
    }
}

@c @implementation public func bh_trainer_free(_ t: OpaquePointer?) { Handle.free(t, TrainingSession.self) }

// MARK: evaluation

func evaluate(_ m: LanguageModel, _ set: PromptSet, batch: Int) throws(EngineError) -> GroupResult {
    try evaluatePrompts(set, vocab: m.vocabSize, batchSize: batch) { (tk, rows, width, lengths, o) throws(EngineError) in
        try m.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
    }
}

@c @implementation public func bh_evaluate(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ spec_json: UnsafePointer<CChar>?,
                                           _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_evaluate"
        guard report_json != nil else { throw .invalid("\(fn): output pointer is NULL") }
        let mm = try model(m, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        try d.checkFits(vocabSize: mm.vocabSize, what: fn)
        var r = try JSONReader(text: spec_json.map { String(cString: $0) } ?? "", path: "evaluation spec")
        let groups = try r.stringArray("groups", default: d.evalGroups.map(\.name))
        let batch = try r.int("batch_size", default: 256, min: 1, max: 65536)
        try r.finish()
        let start = monotonicSeconds()
        var results: [(String, JSON)] = []
        for g in groups { results.append((g, try evaluate(mm, try d.promptSet(g), batch: batch).summary())) }
        let report: JSON = .object([
            ("spec", .object([("groups", .strings(groups)), ("batch_size", .int(batch))])),
            ("groups", .object(results)),
            ("model", mm.config.toJSON()),
            ("dataset_spec", d.spec.json),
            ("model_digest", .string(mm.contentDigest)),
            ("dataset_digest", .string(d.contentDigest())),
            ("seconds", .number(monotonicSeconds() - start)),
            ("library_version", .string(Version.string)),
        ])
        try returnString(report.serialized(pretty: true), report_json, fn)
    }
}

@c @implementation public func bh_evaluate_group(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ group: UnsafePointer<CChar>?,
                                                 _ predicted: UnsafeMutablePointer<Int32>?, _ correct: UnsafeMutablePointer<UInt8>?,
                                                 _ target_probability: UnsafeMutablePointer<Float>?, _ target_rank: UnsafeMutablePointer<Int32>?,
                                                 _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_evaluate_group"
        let mm = try model(m, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        try d.checkFits(vocabSize: mm.vocabSize, what: fn)
        let set = try d.promptSet(try cString(group, fn, "group"))
        guard let count else { throw .invalid("\(fn): count pointer is NULL") }
        count.pointee = Int64(set.count)
        guard capacity >= 0 else { throw .invalid("\(fn): capacity = \(capacity) is negative") }
        if predicted == nil && correct == nil && target_probability == nil && target_rank == nil { return }
        guard capacity >= Int64(set.count) else {
            throw EngineError(.bufferTooSmall, "\(fn): buffers hold \(capacity) elements but group has \(set.count) prompts")
        }
        let r = try evaluate(mm, set, batch: 256)
        for i in 0..<set.count {
            predicted?[i] = r.predicted[i]
            correct?[i] = r.correct[i]
            target_probability?[i] = r.targetProbability[i]
            target_rank?[i] = r.targetRank[i]
        }
    }
}

@c @implementation public func bh_capacity_search(_ spec_json: UnsafePointer<CChar>?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_capacity_search"
        // Checked first: the search can run for hours before it has a report to return.
        guard report_json != nil else { throw .invalid("\(fn): output pointer is NULL") }
        var r = try JSONReader(text: try cString(spec_json, fn, "spec_json"), path: "capacity search spec")
        let dsJSON = r.value("dataset") ?? .object([])
        let modelJSON = r.value("model") ?? .object([])
        let trainJSON = r.value("training") ?? .object([])
        var searchReader = try r.object("search")
        let search = try CapacitySearchSpec(&searchReader)
        try searchReader.finish()
        try r.finish()
        // Validate every part before the first (long) probe.
        let train = try TrainSpec(json: trainJSON.serialized())
        let baseDataset = try Dataset.generate(specJSON: withSubjects(dsJSON, search.minSubjects).serialized())
        _ = try makeConfig(modelJSON.serialized(), dataset: baseDataset, fn: fn)
        let start = monotonicSeconds()
        let result = try capacitySearch(search) { (subjects: Int) throws(EngineError) -> (accuracy: Double, details: JSON) in
            let t0 = monotonicSeconds()
            let ds = try Dataset.generate(specJSON: withSubjects(dsJSON, subjects).serialized())
            let m = try LanguageModel(config: try makeConfig(modelJSON.serialized(), dataset: ds, fn: fn))
            var spec = train
            spec.evalGroups = ["sro"]
            let s = try TrainingSession(model: m, dataset: ds, spec: spec)
            while try s.trainer.step() != nil {}
            let acc = try evaluate(m, try ds.promptSet("sro"), batch: 256).accuracy
            return (acc, .object([("facts", .int(ds.numFacts)), ("vocab_size", .int(ds.vocabSize)),
                                  ("steps", .int(s.trainer.stepsTaken)), ("seconds", .number(monotonicSeconds() - t0))]))
        }
        var report = result.toJSON(spec: search)
        if case var .object(fields) = report {
            fields += [("dataset", dsJSON), ("model", modelJSON), ("training", train.toJSON()),
                       ("seconds", .number(monotonicSeconds() - start)), ("library_version", .string(Version.string))]
            report = .object(fields)
        }
        try returnString(report.serialized(pretty: true), report_json, fn)
    }
}

/// The dataset spec with its subject count replaced.
func withSubjects(_ spec: JSON, _ n: Int) throws(EngineError) -> JSON {
    guard case var .object(fields) = spec else { throw .invalid("capacity search spec: dataset must be an object") }
    fields.removeAll { $0.0 == "subjects" }
    fields.append(("subjects", .int(n)))
    return .object(fields)
}
