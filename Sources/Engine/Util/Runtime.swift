import COpenBLAS

/// Process-wide runtime settings: thread counts for OpenBLAS and the element-wise kernels.
public enum Runtime {
    public static var threads: Int { Parallel.threads }

    public static func setThreads(_ n: Int) {
        Parallel.threads = n
        openblas_set_num_threads(Int32(n))
    }
}
