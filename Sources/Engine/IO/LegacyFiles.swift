import CHDF5
#if canImport(Glibc)
import Glibc
#endif

/// Files of format version 1 were written in HDF5's oldest layout (superblock v0, v1 object headers,
/// variable-length string attributes in the global heap): nothing in them is checksummed, and a
/// damaged byte can crash or hang libhdf5. Such a file is never opened in the caller's process: the
/// `behemoth-files` tool, started as a separate process (posix_spawn: safe in a threaded host,
/// unlike fork) under an address-space limit and an alarm, copies it into the checksummed layout
/// (format version 2) in a temporary file, and only that copy is read here. A tool that crashes,
/// hangs or fails leaves a format error. `behemoth upgrade OLD NEW` (bh_file_upgrade,
/// behemoth.upgrade_file in Python) writes the copy where the caller says, once and for all.
public enum LegacyFiles {
    /// True in the tool process that reads a legacy file (its readers accept variable-length strings).
    nonisolated(unsafe) public static var inChild = false
    /// Seconds the tool may take: 5, plus one for every 20 MB of the file.
    static func childSeconds(bytes: Int) -> UInt32 { UInt32(5 + min(bytes / 20_000_000, 3600)) }
    /// The address space the tool may use.
    static let childAddressSpace = 4 << 30

    /// The superblock version of an HDF5 file (nil if the signature is not at 0, 512, 1024 ...).
    static func superblockVersion(_ path: String) -> Int? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
        var offset = 0
        while offset <= 1 << 20 {
            var head = [UInt8](repeating: 0, count: 9)
            guard fseek(f, offset, SEEK_SET) == 0, fread(&head, 1, 9, f) == 9 else { return nil }
            if Array(head[0..<8]) == signature { return Int(head[8]) }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    /// True if `path` is an HDF5 file in the unchecksummed layout (superblock version 0 or 1).
    public static func isLegacy(_ path: String) -> Bool {
        guard let v = superblockVersion(path) else { return false }
        return v < 2
    }

    /// The `behemoth-files` tool: $BEHEMOTH_TOOL, else beside the library (or the test binary) that
    /// holds this code (a build folder, the Python wheel), or in ../libexec from it (`make install`).
    public static func toolPath() -> String? {
        if let e = getenv("BEHEMOTH_TOOL"), let s = String(validatingCString: e), !s.isEmpty { return s }
        guard let image = imagePath() else { return nil }
        let dir = FileSystem.folder(of: image)
        for candidate in ["\(dir)/behemoth-files", "\(dir)/../libexec/behemoth-files"]
        where access(candidate, X_OK) == 0 && !FileSystem.isDirectory(candidate) {
            return candidate
        }
        return nil
    }

    /// The file of the library or program this code was loaded from: the /proc/self/maps entry
    /// whose address range holds this image's handle.
    static func imagePath() -> String? {
        let here = UInt(bitPattern: #dsohandle)
        guard let maps = try? FileSystem.readText("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[5].hasPrefix("/") else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16) else { continue }
            if lo <= here && here < hi { return fields[5...].joined(separator: " ") }
        }
        return nil
    }

    /// Copies a legacy file into a temporary file of the checksummed layout, in a separate process;
    /// returns the temporary path (the caller removes it).
    static func upgradeInChild(_ path: String) throws(EngineError) -> String {
        let tmp = "\(FileSystem.temporaryFolder())/behemoth-upgrade-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).h5"
        try runTool(path, tmp)
        return tmp
    }

    /// Runs `behemoth upgrade --isolated SOURCE TARGET` and waits for it.
    static func runTool(_ source: String, _ target: String) throws(EngineError) {
        let legacy = "\(source) is a format version 1 file (HDF5's unchecksummed layout, written by Behemoth 0.1)"
        guard let tool = toolPath() else {
            throw .format("\(legacy); such files are read by the `behemoth-files` tool in a separate process, and it was not found beside the library or in ../libexec (`make install` and the Python wheel install it; or set BEHEMOTH_TOOL to its path)")
        }
        let argv: [String] = [tool, "upgrade", "--isolated", source, target]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        // The tool's own output (a crash report) is not the caller's business: the status says it.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tool, &actions, nil, &cArgs, environ)
        guard rc == 0 else { throw .io("\(legacy); cannot start \(tool): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f, code = (status >> 8) & 0xff
        guard signal == 0, code == 0, FileSystem.exists(target) else {
            unlink(target)
            FileSystem.removeStaleTemporaries(of: target)  // what a killed tool left beside the target
            let how = signal == SIGALRM ? "reading it took too long"
                : signal != 0 ? "reading it crashed the reader (signal \(signal))"
                : code == 3 ? "it is damaged or not a Behemoth file" : "the tool failed (exit status \(code))"
            throw .format("\(legacy) and could not be read safely: \(how)")
        }
    }

    /// The tool's side: limits this process, then copies `source` into the checksummed layout.
    public static func upgradeIsolated(_ source: String, to target: String) throws(EngineError) {
        inChild = true
        var rl = rlimit(rlim_cur: rlim_t(childAddressSpace), rlim_max: rlim_t(childAddressSpace))
        setrlimit(Int32(RLIMIT_AS.rawValue), &rl)
        alarm(childSeconds(bytes: FileSystem.fileSize(source) ?? 0))
        try upgrade(source, to: target)
    }

    /// Writes `target`, a file of the current layout with the content of `source`: legacy files go
    /// through the tool in a separate process; current files are read (and so verified) here.
    public static func upgradeFile(_ source: String, to target: String) throws(EngineError) {
        guard FileSystem.exists(source) else { throw .io("no such file: \(source)") }
        if isLegacy(source) {
            try FileSystem.atomically(target) { (tmp: String) throws(EngineError) in try runTool(source, tmp) }
        } else {
            try upgrade(source, to: target)
        }
    }

    /// Copies every group, dataset and attribute of `source` into a new checksummed file at `target`,
    /// with format_version 1 raised to 2 (the content is unchanged; only the layout differs).
    public static func upgrade(_ source: String, to target: String) throws(EngineError) {
        let src = try H5File.open(source)
        defer { src.close() }
        guard src.hasAttribute("format"), try src.stringAttribute("format").hasPrefix("behemoth.") else {
            throw .format("\(source) is not a Behemoth file (no 'format' attribute)")
        }
        try H5File.writeAtomically(target) { (dst: H5File) throws(EngineError) in
            func copyAttributes(_ obj: String) throws(EngineError) {
                for name in try src.attributeNames(at: obj) {
                    switch try src.attributeClass(name, at: obj) {
                    case H5T_STRING: try dst.setAttribute(name, string: try src.stringAttribute(name, at: obj), at: obj)
                    case H5T_INTEGER:
                        var v = try src.intAttribute(name, at: obj)
                        if obj == "/", name == "format_version", v == 1 { v = 2 }
                        try dst.setAttribute(name, int: v, at: obj)
                    default: throw .format("\(source): attribute \(name) on \(obj) is neither a string nor an integer")
                    }
                }
            }
            try src.visit { (p: String, isGroup: Bool) throws(EngineError) in
                if isGroup { try dst.createGroup(p) } else { try src.readStored(p).write(to: dst, p) }
                try copyAttributes(p)
            }
            try copyAttributes("/")
        }
    }
}
