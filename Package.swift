// swift-tools-version: 6.2
import PackageDescription

// The engine's element-wise kernels (LayerNorm, GELU, softmax, attention, AdamW) are written with
// SIMD types; on x86-64 they are compiled for AVX2 + FMA (Haswell, 2013, and every later x86
// server), which makes them 1.5–2× faster. The Python binding refuses to load on a CPU without AVX2.
#if arch(x86_64)
let engineReleaseFlags = ["-Ounchecked", "-wmo", "-target-cpu", "haswell", "-DBH_KERNELS_AVX2"]
#else
let engineReleaseFlags = ["-Ounchecked", "-wmo"]
#endif

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
        .target(
            name: "Engine",
            dependencies: ["COpenBLAS", "CHDF5"],
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(engineReleaseFlags, .when(configuration: .release))]
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
        .testTarget(name: "EngineTests", dependencies: ["Engine"], exclude: [], resources: [], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "FFITests", dependencies: ["BehemothFFI", "CBehemoth", "Engine"], swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
