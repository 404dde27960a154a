#if canImport(Glibc)
import Glibc
#endif

/// The most memory one constructor may allocate. Swift traps (killing the caller's process) when an
/// allocation fails, so every large allocation is priced first, with overflow-checked arithmetic,
/// and refused with a message naming the need and the limit. The limit defaults to 80% of physical
/// memory; BEHEMOTH_MAX_MEMORY_GB changes it.
public enum MemoryBudget {
    nonisolated(unsafe) private static var override: Int? = nil

    public static var physicalBytes: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    public static var limitBytes: Int {
        if let o = override { return o }
        if let e = getenv("BEHEMOTH_MAX_MEMORY_GB"), let gb = Double(String(cString: e)), gb > 0, gb < 1e9 { return Int(gb * 1e9) }
        return physicalBytes / 10 * 8
    }

    /// Sets the limit in bytes (0 restores the default).
    public static func setLimit(_ bytes: Int) throws(EngineError) {
        guard bytes >= 0 else { throw .invalid("memory limit: \(bytes) bytes must not be negative") }
        override = bytes == 0 ? nil : bytes
    }

    static func gigabytes(_ b: Int) -> String {
        let gb = Double(b) / 1e9
        return gb >= 10 ? "\(Int(gb.rounded())) GB" : "\(Double(Int(gb * 100)) / 100) GB"
    }

    /// Throws BH_ERR_NOMEM when `bytes` (nil: the arithmetic overflowed) exceeds the limit.
    public static func check(_ bytes: Int?, _ what: String) throws(EngineError) {
        let limit = limitBytes
        guard let bytes, bytes <= limit else {
            let need = bytes.map(gigabytes) ?? "more than 9.2 EB"
            throw EngineError(.noMemory, "\(what) needs \(need); the limit is \(gigabytes(limit)) (raise it with bh_set_memory_limit, behemoth.set_memory_limit or BEHEMOTH_MAX_MEMORY_GB)")
        }
    }

    /// Sum of products, nil on overflow.
    public static func total(_ terms: [[Int]]) -> Int? {
        var sum = 0
        for t in terms {
            var p = 1
            for v in t {
                guard v >= 0 else { return nil }
                let (r, o) = p.multipliedReportingOverflow(by: v); if o { return nil }; p = r
            }
            let (s, o) = sum.addingReportingOverflow(p); if o { return nil }; sum = s
        }
        return sum
    }
}
