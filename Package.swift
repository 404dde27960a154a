// swift-tools-version: 6.2
import PackageDescription

// The engine's element-wise kernels (LayerNorm, GELU, softmax, attention, AdamW, ...) are written once
// with SIMD types (Sources/Kernels) and compiled three times: for AVX-512 (16-float vectors), for
// AVX2 + FMA (8-float vectors) and for the baseline instruction set; the engine picks the widest
// the CPU has at run time (Engine/Tensor/KernelDispatch.swift, reported by bh_runtime_info).
// Sources/KernelsAVX2 and KernelsAVX512 hold symbolic links to Sources/Kernels' files.
let optimize: SwiftSetting = .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))
func kernelSettings(cpu: String?, define: String?) -> [SwiftSetting] {
    // -fno-math-errno: sqrt of a vector becomes one instruction, not a libm call per lane
    var s: [SwiftSetting] = [.swiftLanguageMode(.v5), optimize, .unsafeFlags(["-Xcc", "-fno-math-errno"])]
    #if arch(x86_64)
    if let cpu { s.append(.unsafeFlags(["-target-cpu", cpu])) }
    #endif
    if let define { s.append(.define(define)) }
    return s
}

// libbehemoth.so: the Engine (pure Swift) behind a hand-written C API (include/behemoth.h).
// System libraries: OpenBLAS (GEMM, LAPACK) and HDF5 (files); `make deps` installs them.
let package = Package(
    name: "Behemoth",
    products: [
        .library(name: "behemoth", type: .dynamic, targets: ["BehemothFFI"]),
        .executable(name: "bh-bench", targets: ["BenchTool"]),
        .executable(name: "behemoth-files", targets: ["BehemothTool"]),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        // The public header (symlinked from include/) plus the thread-local error buffer and CPU probes.
        .target(name: "CBehemoth"),
        .target(name: "KernelInterface", swiftSettings: kernelSettings(cpu: nil, define: nil)),
        .target(name: "KernelsPortable", dependencies: ["KernelInterface"], path: "Sources/Kernels",
                swiftSettings: kernelSettings(cpu: nil, define: nil)),
        .target(name: "KernelsAVX2", dependencies: ["KernelInterface"],
                swiftSettings: kernelSettings(cpu: "haswell", define: "BH_KERNELS_AVX2")),
        .target(name: "KernelsAVX512", dependencies: ["KernelInterface"],
                swiftSettings: kernelSettings(cpu: "skylake-avx512", define: "BH_WIDE16")),
        .target(
            name: "Engine",
            dependencies: ["COpenBLAS", "CHDF5", "KernelInterface", "KernelsPortable", "KernelsAVX2", "KernelsAVX512"],
            swiftSettings: [.swiftLanguageMode(.v5), optimize]
        ),
        .target(
            name: "BehemothFFI",
            dependencies: ["Engine", "CBehemoth"],
            exclude: ["exports.map"],
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=Sources/BehemothFFI/exports.map"])]
        ),
        // Training-throughput benchmark (bench/train_bench.py runs it beside PyTorch).
        .executableTarget(
            name: "BenchTool",
            dependencies: ["Engine", "COpenBLAS"],
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        // behemoth-files: verify and upgrade files; the library starts it to read format version 1 files in isolation.
        .executableTarget(name: "BehemothTool", dependencies: ["Engine"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "KernelInterface"], exclude: [], resources: [], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "FFITests", dependencies: ["BehemothFFI", "CBehemoth", "Engine"], swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
