#if canImport(Glibc)
import Glibc
#endif
import KernelInterface
import KernelsAVX2
import KernelsAVX512
import KernelsPortable

/// The instruction sets the element-wise kernels are compiled for (Sources/Kernels, three builds),
/// and the one in use: the widest the CPU has, unless BEHEMOTH_KERNELS names another
/// (`avx512`, `avx2`, `portable`; one the CPU lacks is refused with a warning and the best is used).
public enum KernelISA: String, CaseIterable, Sendable {
    case avx512, avx2, portable

    public var kernels: any ElementwiseKernels.Type {
        switch self {
        case .avx512: return KernelsAVX512.ISAKernels.self
        case .avx2: return KernelsAVX2.ISAKernels.self
        case .portable: return KernelsPortable.ISAKernels.self
        }
    }

    /// CPU flags (Linux /proc/cpuinfo, which lists only what the kernel enabled) each build needs:
    /// -target-cpu skylake-avx512 and haswell in Package.swift.
    var requiredFlags: [String] {
        switch self {
        case .avx512: return ["avx2", "fma", "bmi1", "bmi2", "f16c", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        case .avx2: return ["avx2", "fma", "bmi1", "bmi2", "f16c"]
        case .portable: return []
        }
    }

    /// The builds this CPU can run, widest first.
    public static let supported: [KernelISA] = {
        #if arch(x86_64)
        let flags = Runtime.cpuInfo().flags
        return allCases.filter { $0.requiredFlags.allSatisfy(flags.contains) }
        #else
        return [.portable]
        #endif
    }()

    /// What BEHEMOTH_KERNELS asked for, and why it was not used (empty when it was, or was unset).
    public private(set) static var requested = "", refusal = ""

    static func initial() -> KernelISA {
        let best = supported.first ?? .portable
        let (named, env, unknown) = environmentChoice("BEHEMOTH_KERNELS", fallback: best)
        requested = env; refusal = unknown
        guard let isa = named else { return best }
        guard supported.contains(isa) else {
            refusal = "BEHEMOTH_KERNELS=\(env): this CPU lacks \(isa.requiredFlags.filter { !Runtime.cpuInfo().flags.contains($0) }.joined(separator: ", ")); using \(best.rawValue)"
            return best
        }
        return isa
    }
}

extension Kernels {
    /// The instruction set the kernels run on (process-wide; `use` changes it, for tests and benchmarks).
    nonisolated(unsafe) public private(set) static var isa: KernelISA = KernelISA.initial()

    /// Switches the kernels to another build; refused (false) when the CPU cannot run it.
    @discardableResult
    public static func use(_ isa: KernelISA) -> Bool {
        guard KernelISA.supported.contains(isa) else { return false }
        self.isa = isa
        return true
    }

    /// What bh_runtime_info reports of the kernels.
    public static var info: JSON {
        .object([("selected", .string(isa.rawValue)), ("vector_width", .int(isa.kernels.vectorWidth)),
                 ("supported", .strings(KernelISA.supported.map(\.rawValue))),
                 ("compiled", .strings(KernelISA.allCases.map(\.rawValue))),
                 ("requested", .string(KernelISA.requested)), ("refused", .string(KernelISA.refusal))])
    }
}
