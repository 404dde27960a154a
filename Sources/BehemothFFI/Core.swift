import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

@c @implementation public func bh_version() -> UnsafePointer<CChar>? {
    StaticText.version
}

@c @implementation public func bh_abi_version() -> UInt32 { BH_ABI_VERSION }

@c @implementation public func bh_status_str(_ status: Int32) -> UnsafePointer<CChar>? {
    StaticText.status(status)
}

@c @implementation public func bh_string_free(_ s: UnsafeMutablePointer<CChar>?) {
    free(s)
}

@c @implementation public func bh_set_num_threads(_ n: Int32) -> Int32 {
    exported { () throws(EngineError) in
        guard n >= 1, n <= 1024 else { throw .invalid("bh_set_num_threads: n = \(n) must be between 1 and 1024") }
        Runtime.setThreads(Int(n))
    }
}

@c @implementation public func bh_get_num_threads() -> Int32 { Int32(Runtime.threads) }

/// Static C strings that live for the whole process.
enum StaticText {
    static let version: UnsafePointer<CChar> = UnsafePointer(strdup(Version.string)!)
    static let statuses: [Int32: UnsafePointer<CChar>] = {
        let texts: [Int32: String] = [
            BH_OK: "ok", BH_ERR_INVALID: "invalid argument", BH_ERR_MISUSE: "misuse (call out of order)",
            BH_ERR_IO: "input/output error", BH_ERR_FORMAT: "bad file format", BH_ERR_NUMERIC: "numerical failure",
            BH_ERR_CANCELLED: "cancelled", BH_ERR_BUFFER_TOO_SMALL: "buffer too small", BH_ERR_NOMEM: "out of memory",
            BH_ERR_INTERNAL: "internal error", BH_STEP: "step taken, more to do", BH_DONE: "done",
        ]
        return texts.mapValues { UnsafePointer(strdup($0)!) }
    }()
    static let unknown: UnsafePointer<CChar> = UnsafePointer(strdup("unknown status")!)
    static func status(_ s: Int32) -> UnsafePointer<CChar> { statuses[s] ?? unknown }
}

@c @implementation public func bh_runtime_info(_ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        try returnString(Runtime.info().serialized(), json_out, "bh_runtime_info")
    }
}
