#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Threads for the element-wise kernels and, with `BLAS.threading == .engine` (the default), for the
/// matrix products too (`Runtime.setThreads` sets this and OpenBLAS's count).
public enum Parallel {
    nonisolated(unsafe) public static var threads: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Runs body over 0..<n split into at most `threads` contiguous ranges; serial when the work is
    /// smaller than `grain` items per thread (spawning costs more than it saves).
    public static func forRanges(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, n / max(1, grain)))
        if chunks <= 1 || n <= 1 { body(0..<n); return }
        let per = (n + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(n, lo + per)
                if lo < hi { body(lo..<hi) }
            }
        }
    }
}

/// Monotonic wall-clock seconds.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Plain file and folder helpers over Glibc (the engine does not use Foundation).
public enum FileSystem {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func makeDirectories(_ path: String) throws(EngineError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part + "/"
            if isDirectory(prefix) { continue }
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .io("cannot create folder \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Size in bytes, or nil if there is nothing at `path`.
    public static func fileSize(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    public static func readText(_ path: String) throws(EngineError) -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    public static func readBytes(_ path: String) throws(EngineError) -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { bytes.append(contentsOf: buf[0..<n]) }
            if n < buf.count { break }
        }
        if ferror(f) != 0 { throw .io("cannot read \(path)") }
        return bytes
    }

    /// Writes through a temporary file in the same folder, renamed into place.
    public static func writeText(_ path: String, _ text: String) throws(EngineError) {
        try writeBytes(path, Array(text.utf8))
    }

    /// Writes through a temporary file in the same folder, renamed into place.
    public static func writeBytes(_ path: String, _ bytes: [UInt8]) throws(EngineError) {
        try atomically(path) { (tmp: String) throws(EngineError) in
            guard let f = fopen(tmp, "wb") else { throw .io("cannot create \(tmp): \(String(cString: strerror(errno)))") }
            var data = bytes
            let n = data.isEmpty ? 0 : fwrite(&data, 1, data.count, f)
            let closed = fclose(f)
            if n != data.count || closed != 0 { throw .io("cannot write \(tmp) (disk full?)") }
        }
    }

    /// Runs `write` on a temporary path beside `path`, fsyncs it, renames it into place and fsyncs
    /// the folder, so a crash or power loss leaves either the old file or the new one. On failure the
    /// temporary file is removed and whatever was at `path` is left untouched; temporary files that
    /// killed processes left beside `path` are removed first.
    public static func atomically(_ path: String, _ write: (String) throws(EngineError) -> Void) throws(EngineError) {
        let tmp = temporaryPath(for: path)
        do {
            try write(tmp)
        } catch {
            unlink(tmp)
            throw error
        }
        try commitTemporary(tmp, to: path)
    }

    /// A temporary file beside `path` (stale ones of dead processes removed first).
    public static func temporaryPath(for path: String) -> String {
        removeStaleTemporaries(of: path)
        return "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Syncs a finished temporary file and renames it into place (removed on failure).
    public static func commitTemporary(_ tmp: String, to path: String) throws(EngineError) {
        do { try fsyncPath(tmp) } catch { unlink(tmp); throw error }
        if rename(tmp, path) != 0 {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw .io("cannot move \(tmp) to \(path): \(why)")
        }
        try? fsyncPath(folder(of: path))
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func fsyncPath(_ path: String) throws(EngineError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io("cannot open \(path) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw .io("cannot sync \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    /// Removes `<path>.tmp-<pid>-<n>` files whose process no longer exists.
    static func removeStaleTemporaries(of path: String) {
        let dir = folder(of: path)
        let base = String(path.split(separator: "/").last ?? "") + ".tmp-"
        for name in (try? listDirectory(dir)) ?? [] where name.hasPrefix(base) {
            let rest = name.dropFirst(base.count)
            guard let pid = Int32(rest.split(separator: "-").first ?? ""), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + name) }
        }
    }

    /// The folder for temporary files: $TMPDIR, or /tmp.
    public static func temporaryFolder() -> String {
        if let t = getenv("TMPDIR"), let s = String(validatingCString: t), !s.isEmpty, isDirectory(s) { return s }
        return "/tmp"
    }

    /// Removes a file, or a folder and everything in it (like rm -rf; errors are ignored).
    public static func removeTree(_ path: String) {
        if isDirectory(path) {
            for name in (try? listDirectory(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    public static func listDirectory(_ path: String) throws(EngineError) -> [String] {
        guard let d = opendir(path) else { throw .io("cannot open folder \(path): \(String(cString: strerror(errno)))") }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

/// A mutex for the process-wide caches (BeforeResults, KeyStatisticsCache).
public final class Lock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    public func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// A process-wide choice named by an environment variable (BEHEMOTH_KERNELS, BEHEMOTH_BLAS_THREADING):
/// the case it names (nil when unset or unknown), what it said, and, for an unknown value, why it
/// was refused ("NAME=x is not one of a, b; using <fallback>").
func environmentChoice<T: RawRepresentable & CaseIterable>(_ name: String, fallback: T) -> (choice: T?, requested: String, refusal: String)
where T.RawValue == String {
    guard let env = getenv(name).map({ String(cString: $0) }), !env.isEmpty else { return (nil, "", "") }
    if let t = T(rawValue: env.lowercased()) { return (t, env, "") }
    let names = T.allCases.map(\.rawValue).joined(separator: ", ")
    return (nil, env, "\(name)=\(env) is not one of \(names); using \(fallback.rawValue)")
}
