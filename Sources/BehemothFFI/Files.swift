import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

// Files of any type, and the memory limit (behemoth.h, "Files and limits").

@c @implementation public func bh_file_verify(_ path: UnsafePointer<CChar>?, _ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_file_verify"
        guard json_out != nil else { throw .invalid("\(fn): output pointer is NULL") }
        let p = try cString(path, fn, "path")
        var info = try BehemothFile.verify(p)
        // Datasets and models are also loaded in full: shapes against the spec, values in range.
        switch info["format"] {
        case .string(Dataset.fileFormat)?: _ = try Dataset.load(p)
        case .string(Checkpoint.format)?: _ = try LanguageModel.load(p)
        default: break
        }
        if case var .object(fields) = info {
            fields.append(("loaded", .bool(true)))
            info = .object(fields)
        }
        try returnString(info.serialized(), json_out, fn)
    }
}

@c @implementation public func bh_file_upgrade(_ source: UnsafePointer<CChar>?, _ target: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_file_upgrade"
        let s = try cString(source, fn, "source"), t = try cString(target, fn, "target")
        guard !s.isEmpty, !t.isEmpty else { throw .invalid("\(fn): source and target must not be empty") }
        try BehemothFile.upgrade(s, to: t)
    }
}

@c @implementation public func bh_set_memory_limit(_ bytes: Int64) -> Int32 {
    exported { () throws(EngineError) in try MemoryBudget.setLimit(Int(bytes)) }
}

@c @implementation public func bh_get_memory_limit() -> Int64 { Int64(MemoryBudget.limitBytes) }
