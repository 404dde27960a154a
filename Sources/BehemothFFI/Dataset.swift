import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

// The dataset half of the C API (behemoth.h, "Datasets"). Every pointer, size and name is checked
// here; the engine throws EngineError for everything else.

private func dataset(_ ds: OpaquePointer?, _ fn: String) throws(EngineError) -> Dataset {
    try Handle.get(ds, Dataset.self, fn, "dataset")
}

@c @implementation public func bh_dataset_generate(_ spec_json: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_generate"
        let o = try clearOut(out, fn)
        let spec = try cString(spec_json, fn, "spec_json")
        let ds = try Dataset.generate(specJSON: spec)
        o.pointee = Handle.make(ds)
    }
}

@c @implementation public func bh_dataset_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_load"
        let o = try clearOut(out, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        o.pointee = Handle.make(try Dataset.load(p))
    }
}

@c @implementation public func bh_dataset_save(_ ds: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_save"
        let d = try dataset(ds, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        try d.save(p)
    }
}

@c @implementation public func bh_dataset_import_reference(_ dir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_import_reference"
        let o = try clearOut(out, fn)
        let p = try cString(dir, fn, "dir")
        guard !p.isEmpty else { throw .invalid("\(fn): dir is empty") }
        o.pointee = Handle.make(try Dataset.importReference(p))
    }
}

@c @implementation public func bh_dataset_export_reference(_ ds: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_export_reference"
        let d = try dataset(ds, fn)
        let p = try cString(dir, fn, "dir")
        guard !p.isEmpty else { throw .invalid("\(fn): dir is empty") }
        try d.exportReference(p)
    }
}

@c @implementation public func bh_dataset_info(_ ds: OpaquePointer?, _ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_info"
        guard let json_out else { throw .invalid("\(fn): json_out is NULL") }
        json_out.pointee = nil
        let d = try dataset(ds, fn)
        try returnString(d.infoJSON().serialized(pretty: true), json_out, fn)
    }
}

private func arrayName(_ name: UnsafePointer<CChar>?, _ fn: String) throws(EngineError) -> String {
    try cString(name, fn, "name")
}

private func unknownArray(_ d: Dataset, _ name: String, _ fn: String, want: String) -> EngineError {
    if let a = d.arrayList().first(where: { $0.name == name }) {
        return .invalid("\(fn): array '\(name)' holds \(a.dtype); use bh_dataset_array_\(a.dtype == "int64" ? "i64" : "i32")")
    }
    let names = d.arrayList().filter { $0.dtype == want }.map(\.name).joined(separator: ", ")
    return .invalid("\(fn): no array named '\(name)' (\(want) arrays: \(names))")
}

@c @implementation public func bh_dataset_array_i32(_ ds: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Int32>?,
                                                    _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_array_i32"
        if let count { count.pointee = 0 }
        let d = try dataset(ds, fn)
        let n = try arrayName(name, fn)
        guard let a = d.int32Array(n) else { throw unknownArray(d, n, fn, want: "int32") }
        try copyOut(a, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_dataset_array_i64(_ ds: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ buffer: UnsafeMutablePointer<Int64>?,
                                                    _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_array_i64"
        if let count { count.pointee = 0 }
        let d = try dataset(ds, fn)
        let n = try arrayName(name, fn)
        guard let a = d.int64Array(n) else { throw unknownArray(d, n, fn, want: "int64") }
        try copyOut(a, buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_dataset_decode(_ ds: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n_tokens: Int64,
                                                 _ text_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_dataset_decode"
        guard let text_out else { throw .invalid("\(fn): text_out is NULL") }
        text_out.pointee = nil
        let d = try dataset(ds, fn)
        let t = try inputBuffer(tokens, n_tokens, fn, "tokens", max: 1 << 31)
        let text: String
        do throws(EngineError) { text = try d.decode(t) } catch { throw .invalid("\(fn): \(error.message)") }
        try returnString(text, text_out, fn)
    }
}

@c @implementation public func bh_dataset_free(_ ds: OpaquePointer?) {
    Handle.free(ds, Dataset.self)
}
