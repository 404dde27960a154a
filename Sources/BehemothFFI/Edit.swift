import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

// Edit sets and fine-tuning editors (behemoth.h, "Editing").

/// An edit set with the facts it was built from (for per-edit sets in the sequential modes).
final class EditSetHandle {
    let set: EditSet
    let facts: FactView
    let datasetVocab: Int
    let datasetTokenizer: String   // the dataset's vocabulary roles, as a model records them
    let datasetDigest: String
    /// The dataset itself, for editors that read its training sentences (ROME's key statistics).
    let dataset: Dataset
    init(set: EditSet, dataset d: Dataset) {
        self.set = set; facts = d.factView(); datasetVocab = d.vocabSize; datasetTokenizer = d.tokenizerJSON().serialized()
        datasetDigest = d.contentDigest(); dataset = d
    }

    /// The content digest of the edit set: its spec and every array (ContentDigest).
    lazy var digest: String = set.contentDigest

    func info() -> JSON {
        let arrays: [(String, JSON)] = set.arrayList().map { ($0.name, .object([("dtype", .string($0.dtype)), ("shape", .ints($0.shape))])) }
        guard case var .object(fields) = set.summary() else { return set.summary() }
        fields.append(("arrays", .object(arrays)))
        fields.append(("digest", .string(digest)))
        fields.append(("dataset_digest", .string(datasetDigest)))
        if set.isForgetSet {
            fields.append(("forget_facts", .ints(set.forgetFacts)))
            fields.append(("retain_groups", .strings(set.retainGroupNames)))
            if dataset.origin == "generated" {
                fields.append(("oracle_dataset_spec", UnlearningMetrics.oracleSpec(dataset: dataset, editSet: set).toJSON()))
            }
        }
        return .object(fields)
    }
}

func editSetHandle(_ es: OpaquePointer?, _ fn: String) throws(EngineError) -> EditSetHandle {
    try Handle.get(es, EditSetHandle.self, fn, "edit set")
}

@c @implementation public func bh_editset_create(_ ds: OpaquePointer?, _ spec_json: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_editset_create"
        let o = try clearOut(out, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        let spec = try EditSpec(json: try cString(spec_json, fn, "spec_json"))
        let set = try EditSetBuilder.build(spec, facts: d.factView())
        o.pointee = Handle.make(EditSetHandle(set: set, dataset: d))
    }
}

@c @implementation public func bh_editset_import_reference(_ ds: OpaquePointer?, _ dir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_editset_import_reference"
        let o = try clearOut(out, fn)
        let d = try Handle.get(ds, Dataset.self, fn, "dataset")
        let p = try cString(dir, fn, "dir")
        guard !p.isEmpty else { throw .invalid("\(fn): dir is empty") }
        let set = try EditSetBuilder.importReference(p, dataset: d)
        o.pointee = Handle.make(EditSetHandle(set: set, dataset: d))
    }
}

@c @implementation public func bh_editset_info(_ es: OpaquePointer?, _ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_editset_info"
        try returnString(try editSetHandle(es, fn).info().serialized(), json_out, fn)
    }
}

@c @implementation public func bh_editset_array_i32(_ es: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Int32>?,
                                                   _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_editset_array_i32"
        let h = try editSetHandle(es, fn)
        let n = try cString(name, fn, "name")
        guard let a = h.set.int32Array(n) else {
            if h.set.int64Array(n) != nil { throw .invalid("\(fn): array \"\(n)\" is int64; use bh_editset_array_i64") }
            throw .invalid("\(fn): no array \"\(n)\" (bh_editset_info lists them)")
        }
        try copyOut(a, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_editset_array_i64(_ es: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Int64>?,
                                                   _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_editset_array_i64"
        let h = try editSetHandle(es, fn)
        let n = try cString(name, fn, "name")
        guard let a = h.set.int64Array(n) else {
            if h.set.int32Array(n) != nil { throw .invalid("\(fn): array \"\(n)\" is int32; use bh_editset_array_i32") }
            throw .invalid("\(fn): no array \"\(n)\" (bh_editset_info lists them)")
        }
        try copyOut(a, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_editset_free(_ es: OpaquePointer?) { Handle.free(es, EditSetHandle.self) }

/// An edit in progress on a model (the handle behind bh_edit).
final class EditSession {
    let model: LanguageModel
    let editSet: EditSetHandle
    let experiment: EditExperiment
    var result: EditResult?
    var report: JSON?

    init(model: LanguageModel, editSet: EditSetHandle, methodJSON: String) throws(EngineError) {
        let method = try EditMethodSpec(json: methodJSON, layers: model.config.layers, architecture: model.config.architecture,
                                        tiedEmbeddings: model.config.tieEmbeddings)
        try EditExperiment.checkCompatible(model: model, datasetVocab: editSet.datasetVocab, datasetTokenizer: editSet.datasetTokenizer)
        self.model = model
        self.editSet = editSet
        experiment = try EditExperiment(model: model, editSet: editSet.set, facts: editSet.facts, method: method, dataset: editSet.dataset)
    }
}

func editSession(_ e: OpaquePointer?, _ fn: String) throws(EngineError) -> EditSession {
    try Handle.get(e, EditSession.self, fn, "edit")
}

@c @implementation public func bh_edit_begin(_ m: OpaquePointer?, _ es: OpaquePointer?, _ method_json: UnsafePointer<CChar>?,
                                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_begin"
        let o = try clearOut(out, fn)
        let mm = try model(m, fn)
        let h = try editSetHandle(es, fn)
        o.pointee = Handle.make(try EditSession(model: mm, editSet: h, methodJSON: try cString(method_json, fn, "method_json")))
    }
}

@c @implementation public func bh_edit_step(_ e: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exportedStep { () throws(EngineError) -> Int32 in
        let fn = "bh_edit_step"
        let s = try editSession(e, fn)
        if let report_json { report_json.pointee = nil }
        guard s.result == nil else { throw .misuse("\(fn): the edit was ended by bh_edit_end; begin a new one to edit further") }
        guard let r = try s.experiment.step() else { return BH_DONE }
        if let report_json { try returnString(r.toJSON().serialized(), report_json, fn) }
        return BH_STEP
    }
}

@c @implementation public func bh_edit_end(_ e: OpaquePointer?, _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_end"
        let s = try editSession(e, fn)
        if s.result == nil {
            let r = try s.experiment.finish()  // before the last step: the edit as trained so far (stopped_early)
            s.result = r
            let report = r.reportJSON(editSet: s.editSet.set, method: s.experiment.method, model: s.model.config.toJSON())
            // What the edit ran on and produced, by content digest (keys for caches and for matching files).
            let digests: JSON = .object([("model_before", .string(s.experiment.modelDigestBefore)), ("model_after", .string(s.model.contentDigest)),
                                         ("edit_set", .string(s.editSet.digest)), ("dataset", .string(s.editSet.datasetDigest))])
            if case var .object(fields) = report { fields.append(("digests", digests)); s.report = .object(fields) } else { s.report = report }
        }
        if let report_json { try returnString(s.report!.serialized(pretty: true), report_json, fn) }
    }
}

@c @implementation public func bh_edit_save(_ e: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_save"
        let s = try editSession(e, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        guard let r = s.result, let rep = s.report else { throw .misuse("\(fn): call bh_edit_end first") }
        try r.save(p, report: rep)
    }
}

@c @implementation public func bh_edit_delta(_ e: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Float>?,
                                             _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_delta"
        let s = try editSession(e, fn)
        let n = try cString(name, fn, "name")
        guard let r = s.result else { throw .misuse("\(fn): call bh_edit_end first") }
        guard let d = r.deltas.first(where: { $0.entry.name == n }) else {
            throw .invalid("\(fn): \"\(n)\" was not trained by this edit (trained: \(r.deltas.map(\.entry.name).joined(separator: ", ")))")
        }
        try copyOut(d.values, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_edit_vector(_ e: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Float>?,
                                              _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_vector"
        let s = try editSession(e, fn)
        let n = try cString(name, fn, "name")
        guard let r = s.result else { throw .misuse("\(fn): call bh_edit_end first") }
        guard let v = r.vectors.first(where: { $0.name == n }) else {
            throw .invalid(r.vectors.isEmpty ? "\(fn): this edit's method keeps no vectors"
                                             : "\(fn): no vector \"\(n)\" (the report's \"vectors\" lists them)")
        }
        try copyOut(v.values, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_edit_free(_ e: OpaquePointer?) { Handle.free(e, EditSession.self) }
