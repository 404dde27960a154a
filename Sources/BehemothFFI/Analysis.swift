import CBehemoth
import Engine

// Recording activations, causal tracing, effective rank (behemoth.h, "Analysis").

/// The prompts of a recording: a dataset's group, an edit set's group, or the caller's (exactly one).
func promptSource(_ m: LanguageModel, _ ds: OpaquePointer?, _ es: OpaquePointer?, _ prompts: UnsafePointer<Int32>?, _ offsets: UnsafePointer<Int64>?,
                  _ n: Int64, group: String, _ fn: String) throws(EngineError) -> (PromptBatch, [(String, JSON)]) {
    let given = [ds != nil, es != nil, prompts != nil || offsets != nil || n != 0].filter { $0 }.count
    guard given == 1 else { throw .invalid("\(fn): give exactly one prompt source: a dataset, an edit set, or prompts + offsets (\(given) given)") }
    if ds != nil {
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        try EditExperiment.checkCompatible(model: m, datasetVocab: d.vocabSize, datasetTokenizer: d.tokenizerJSON().serialized())
        guard let g = d.evalGroup(named: group) else {
            throw .invalid("\(fn): the dataset has no evaluation group \"\(group)\" (it has \(d.evalGroups.map(\.name).joined(separator: ", ")))")
        }
        return (try PromptBatch(group: g, dataset: d), [("source", .string("dataset")), ("dataset_digest", .string(d.contentDigest()))])
    }
    if es != nil {
        let h = try editSetHandle(es, fn)
        try EditExperiment.checkCompatible(model: m, datasetVocab: h.datasetVocab, datasetTokenizer: h.datasetTokenizer)
        guard let g = h.set.group(group) else {
            throw .invalid("\(fn): the edit set has no group \"\(group)\" (it has \(h.set.groups.map(\.name).joined(separator: ", ")))")
        }
        return (try PromptBatch(group: g, dataset: h.dataset), [("source", .string("edit_set")), ("edit_set_digest", .string(h.digest)),
                                                                 ("dataset_digest", .string(h.datasetDigest))])
    }
    let (p, o) = try promptsFromCaller(prompts, offsets, n, vocab: m.vocabSize, maxLength: m.maxPositions, fn)
    return (try PromptBatch(tokens: p, offsets: o), [("source", .string("prompts"))])
}

@c @implementation public func bh_record_begin(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ es: OpaquePointer?, _ prompts: UnsafePointer<Int32>?,
                                               _ offsets: UnsafePointer<Int64>?, _ n_prompts: Int64, _ spec_json: UnsafePointer<CChar>?,
                                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_record_begin"
        let o = try clearOut(out, fn)
        let mm = try model(m, fn)
        let spec = try RecordSpec(json: try cString(spec_json, fn, "spec_json"))
        let (batch, source) = try promptSource(mm, ds, es, prompts, offsets, n_prompts, group: spec.group, fn)
        o.pointee = Handle.make(try ActivationRecording(model: mm, prompts: batch, spec: spec, extraSpec: source))
    }
}

@c @implementation public func bh_record_step(_ r: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exportedStep { () throws(EngineError) -> Int32 in
        let fn = "bh_record_step"
        let rec = try Handle.get(r, ActivationRecording.self, fn, "recorder")
        if let report_json { report_json.pointee = nil }
        guard try rec.step() else { return BH_DONE }
        if let report_json { try returnString(JSON.object([("done", .int(rec.done)), ("total", .int(rec.total))]).serialized(), report_json, fn) }
        return BH_STEP
    }
}

@c @implementation public func bh_record_end(_ r: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_record_end"
        let rec = try Handle.get(r, ActivationRecording.self, fn, "recorder")
        let report = try rec.finish()
        if let report_json { try returnString(report.serialized(), report_json, fn) }
    }
}

@c @implementation public func bh_record_free(_ r: OpaquePointer?) { Handle.free(r, ActivationRecording.self) }

@c @implementation public func bh_trace_begin(_ m: OpaquePointer?, _ ds: OpaquePointer?, _ spec_json: UnsafePointer<CChar>?,
                                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trace_begin"
        let o = try clearOut(out, fn)
        let mm = try model(m, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        try EditExperiment.checkCompatible(model: mm, datasetVocab: d.vocabSize, datasetTokenizer: d.tokenizerJSON().serialized())
        let spec = try TraceSpec(json: try cString(spec_json, fn, "spec_json"))
        let t = try CausalTracer(model: mm, prompts: try TracePrompt.fromDataset(d, spec: spec), spec: spec,
                                 subjectStd: TracePrompt.subjectEmbeddingStd(d, model: mm))
        t.datasetDigest = d.contentDigest()
        o.pointee = Handle.make(t)
    }
}

@c @implementation public func bh_trace_step(_ t: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exportedStep { () throws(EngineError) -> Int32 in
        let fn = "bh_trace_step"
        let tr = try Handle.get(t, CausalTracer.self, fn, "tracer")
        if let report_json { report_json.pointee = nil }
        guard try tr.step() else { return BH_DONE }
        if let report_json, let r = tr.results.last {
            try returnString(JSON.object([("done", .int(tr.results.count)), ("total", .int(tr.prompts.count)), ("fact", .int(Int(r.prompt.fact))),
                                          ("answer", .int(Int(r.answer))), ("target", .int(Int(r.prompt.target))), ("correct", .bool(r.correct)),
                                          ("low", .number(Double(r.low))), ("high", .number(Double(r.high)))]).serialized(), report_json, fn)
        }
        return BH_STEP
    }
}

@c @implementation public func bh_trace_end(_ t: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trace_end"
        let tr = try Handle.get(t, CausalTracer.self, fn, "tracer")
        if let report_json { try returnString(tr.report().serialized(pretty: true), report_json, fn) }
    }
}

@c @implementation public func bh_trace_save(_ t: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trace_save"
        let tr = try Handle.get(t, CausalTracer.self, fn, "tracer")
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        try tr.save(p)
    }
}

@c @implementation public func bh_trace_array(_ t: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Float>?,
                                              _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_trace_array"
        let tr = try Handle.get(t, CausalTracer.self, fn, "tracer")
        let n = try cString(name, fn, "name")
        guard let values = tr.array(n) else {
            throw .invalid("\(fn): no array \"\(n)\" (low, high, \(tr.kindNames.map { "scores/\($0), average/\($0)" }.joined(separator: ", ")))")
        }
        try copyOut(values, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_trace_free(_ t: OpaquePointer?) { Handle.free(t, CausalTracer.self) }

/// Writes the rank file when a path is given and returns the report.
func finishRank(_ r: RankReport, _ path: UnsafePointer<CChar>?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ fn: String) throws(EngineError) {
    if path != nil {
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty (pass NULL for no file)") }
        try r.save(p)
    }
    if let report_json { try returnString(r.toJSON().serialized(), report_json, fn) }
}

@c @implementation public func bh_rank_models(_ before: OpaquePointer?, _ after: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                              _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_rank_models"
        try finishRank(try RankReport.models(try model(before, fn), try model(after, fn)), path, report_json, fn)
    }
}

@c @implementation public func bh_rank_edit(_ e: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                            _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_rank_edit"
        let s = try editSession(e, fn)
        guard let r = s.result else { throw .misuse("\(fn): call bh_edit_end first") }
        try finishRank(try RankReport.edit(r, method: s.experiment.method.method), path, report_json, fn)
    }
}

@c @implementation public func bh_rank_adapter(_ a: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                               _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_rank_adapter"
        try finishRank(try RankReport.adapter(try adapter(a, fn)), path, report_json, fn)
    }
}
