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

@c @implementation public func bh_model_create(_ config_json: UnsafePointer<CChar>?, _ ds: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_create"
        let o = try clearOut(out, fn)
        let d = try optionalDataset(ds, fn)
        let cfg = try ModelConfig.forDataset(json: try cString(config_json, fn, "config_json"), dataset: d, what: "\(fn): model config")
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
        try returnString(try model(m, fn).info().serialized(), json_out, fn)
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
        try withOutputBuffer(buffer, capacity, count, total: total, fn) { (out: UnsafeMutablePointer<Float>) throws(EngineError) in
            try mm.logits(tokens: tk.baseAddress!, rows: Int(rows), width: Int(width), out: out)
        }
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

/// The tensor a caller names, or an error that shows how names look.
func namedTensor(_ mm: LanguageModel, _ name: UnsafePointer<CChar>?, _ fn: String) throws(EngineError) -> (String, TensorEntry) {
    let n = try cString(name, fn, "name")
    guard let e = mm.tensorTable[n] else {
        throw .invalid("\(fn): the model has no tensor \"\(n)\" (names as in Hugging Face, e.g. gpt_neox.layers.0.mlp.dense_4h_to_h.weight, or model.layers.0.mlp.down_proj.weight for llama)")
    }
    return (n, e)
}

@c @implementation public func bh_model_set_tensor(_ m: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ values: UnsafePointer<Float>?,
                                                   _ count: Int64) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_set_tensor"
        let mm = try model(m, fn)
        let (n, e) = try namedTensor(mm, name, fn)
        guard count == Int64(e.count) else { throw .invalid("\(fn): \(n) holds \(e.count) values (shape \(e.shape)); \(count) given") }
        let v = try inputBuffer(values, count, fn, "values")
        try checkFinite(v, fn)
        (mm.parameterBlock.baseAddress! + e.offset).update(from: v.baseAddress!, count: e.count)
    }
}

@c @implementation public func bh_model_tensor(_ m: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Float>?,
                                               _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_model_tensor"
        let mm = try model(m, fn)
        let (_, e) = try namedTensor(mm, name, fn)
        try copyOut(UnsafeBufferPointer(rebasing: mm.parameterBlock[e.offset..<(e.offset + e.count)]), buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_model_free(_ m: OpaquePointer?) { Handle.free(m, LanguageModel.self) }

// MARK: training

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
        o.pointee = Handle.make(try TrainingSession(model: mm, dataset: d, spec: spec))
    }
}

@c @implementation public func bh_trainer_step(_ t: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exportedStep { () throws(EngineError) -> Int32 in
        let fn = "bh_trainer_step"
        let s = try session(t, fn)
        if let report_json { report_json.pointee = nil }
        guard !s.ended else { throw .misuse("\(fn): the training session was ended by bh_trainer_end; begin a new one to train further") }
        guard let r = try s.step() else { return BH_DONE }
        if let report_json { try returnString(r.toJSON().serialized(), report_json, fn) }
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
        let report = try session(t, fn).end()
        if let report_json { try returnString(report.serialized(pretty: true), report_json, fn) }
    }
}

@c @implementation public func bh_trainer_free(_ t: OpaquePointer?) { Handle.free(t, TrainingSession.self) }

// MARK: evaluation

@c @implementation public func bh_evaluate(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ spec_json: UnsafePointer<CChar>?,
                                           _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_evaluate"
        guard report_json != nil else { throw .invalid("\(fn): output pointer is NULL") }
        let mm = try model(m, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        let spec = try EvaluationSpec(json: try cString(spec_json, fn, "spec_json"), dataset: d)
        try returnString(try Evaluation.run(mm, d, spec: spec).serialized(pretty: true), report_json, fn)
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
        let r = try Evaluation.group(mm, set)
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
        let search = try CapacitySearchRun(json: try cString(spec_json, fn, "spec_json"))
        try returnString(try search.run().serialized(pretty: true), report_json, fn)
    }
}
