import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide runtime settings and facts: thread counts, the BLAS core, the CPU.
public enum Runtime {
    public static var threads: Int { Parallel.threads }

    public static func setThreads(_ n: Int) {
        Parallel.threads = n
        BLAS.applyThreadCount()
    }

    /// The kernel family OpenBLAS chose at load time ("SkylakeX", "Haswell", "Prescott", ...).
    public static var blasCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
    public static var blasConfig: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// CPU flags from /proc/cpuinfo (Linux), and the model name.
    public static func cpuInfo() -> (model: String, flags: Set<String>) {
        guard let text = try? FileSystem.readText("/proc/cpuinfo") else { return ("unknown", []) }
        var model = "unknown", flags = Set<String>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { String($0).trimmingSpaces }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", model == "unknown" { model = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
        }
        return (model, flags)
    }

    /// The same rule as tools/blas-core and the Python binding: name kernels by instruction set.
    public static func recommendedCore(flags: Set<String>) -> String? {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains) { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// Cores whose kernels use at least AVX2 (anything else on an AVX2 CPU is a slow fallback).
    static let avx2Cores: Set<String> = ["Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"]
    static let avx512Cores: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]

    /// How this library was built: the Swift runtime (linked in statically for the shipped library,
    /// `make build`; dynamically for `swift test`), the compiler, and the instruction set the
    /// engine's element-wise kernels were compiled for (Package.swift).
    public static var build: JSON {
        #if BH_STATIC_RUNTIME
        let runtime = "static"
        #else
        let runtime = "dynamic"
        #endif
        #if compiler(>=6.4)
        let compiler = "Swift 6.4 or later"
        #elseif compiler(>=6.3.1)
        let compiler = "Swift 6.3.1"
        #elseif compiler(>=6.3)
        let compiler = "Swift 6.3"
        #else
        let compiler = "Swift 6.2"
        #endif
        // the element-wise kernels are compiled once per instruction set and chosen at run time
        let kernels = KernelISA.allCases.map(\.rawValue).joined(separator: ", ") + " (chosen at run time: see kernels)"
        #if DEBUG
        let configuration = "debug"
        #else
        let configuration = "release"
        #endif
        return .object([("swift_runtime", .string(runtime)), ("compiler", .string(compiler)),
                        ("kernels", .string(kernels)), ("configuration", .string(configuration))])
    }

    public static func info() -> JSON {
        let (model, flags) = cpuInfo()
        let threading = BLAS.threading  // first: choosing it sets OpenBLAS's thread count
        let core = blasCore
        let recommended = recommendedCore(flags: flags)
        let env = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) } ?? ""
        var warning = ""
        if let recommended {
            let good = recommended == "SkylakeX" ? avx512Cores.contains(core) : avx2Cores.contains(core)
            if !good {
                warning = "OpenBLAS runs its \(core) kernels on a CPU with \(recommended == "SkylakeX" ? "AVX-512" : "AVX2"): "
                    + "matrix products may be several times slower. Set OPENBLAS_CORETYPE=\(recommended) in the environment "
                    + "before starting the program (the Python binding and the Makefile do this when it is unset)."
            }
        }
        let shown = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni", "amx_tile"]
        return .object([
            ("library_version", .string(Version.string)),
            ("build", build),
            ("blas_core", .string(core)),
            ("blas_config", .string(blasConfig)),
            ("threads", .int(threads)),
            ("blas_threads", .int(Int(openblas_get_num_threads()))),
            ("blas_threading", .object([("selected", .string(threading.rawValue)),
                                        ("requested", .string(BLAS.requested)), ("refused", .string(BLAS.refusal))])),
            ("cpu_model", .string(model)),
            ("cpu_features", .strings(shown.filter(flags.contains))),
            ("recommended_core", recommended.map { .string($0) } ?? .null),
            ("openblas_coretype_env", .string(env)),
            ("warning", .string(warning)),
            ("kernels", Kernels.info),
            ("editors", .strings(EditorRegistry.names)),
        ])
    }
}
