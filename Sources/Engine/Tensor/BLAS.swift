import COpenBLAS

/// Matrix products, all row-major float32 through OpenBLAS. Weights are stored as PyTorch stores
/// `nn.Linear` weights: W[out, in], so a linear layer is y = x · Wᵀ (transB).
public enum BLAS {
    /// Who runs a matrix product's threads.
    public enum Threading: String, CaseIterable, Sendable {
        /// One pool for everything, the default: OpenBLAS runs single-threaded in the calling thread,
        /// and each large product (and the Gram matrix) is split into blocks of C across the engine's
        /// threads, the ones the element-wise kernels use; LAPACK runs on one thread. With two pools,
        /// OpenBLAS's idle workers spin for about 0.1 s after each product (2^28 cycles) on the core
        /// the element-wise kernels' second thread wants, which then gained little.
        case engine
        /// OpenBLAS's own thread pool for every product (how it was before; for comparison).
        case openblas
    }

    /// What BEHEMOTH_BLAS_THREADING asked for, and why it was not used (empty when it was, or was unset).
    public private(set) static var requested = "", refusal = ""

    /// The threading chosen at first use: BEHEMOTH_BLAS_THREADING (engine | openblas), else engine.
    static let initialThreading: Threading = {
        let (named, env, unknown) = environmentChoice("BEHEMOTH_BLAS_THREADING", fallback: Threading.engine)
        requested = env; refusal = unknown
        let choice = named ?? .engine
        openblas_set_num_threads(choice == .engine ? 1 : Int32(Parallel.threads))
        return choice
    }()
    nonisolated(unsafe) private static var chosen: Threading?

    /// The threading in use (process-wide).
    public static var threading: Threading { chosen ?? initialThreading }

    /// Switches threading (tests, benchmarks) and sets OpenBLAS's thread count to match.
    public static func use(_ t: Threading) {
        _ = initialThreading
        chosen = t
        applyThreadCount()
    }

    /// OpenBLAS's thread count for the current threading and `Parallel.threads` (Runtime.setThreads).
    static func applyThreadCount() {
        openblas_set_num_threads(threading == .engine ? 1 : Int32(Parallel.threads))
    }

    /// C[m,n] = alpha · A[m,k] · B[k,n] (+ beta · C), with optional transposes of the stored A / B.
    /// With `.engine` threading a product of at least 2^21 multiply-adds is split by rows of C
    /// (or by columns when C has few rows); each element is still one OpenBLAS dot over k.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
             beta: beta, c: c, ldc: ldc, split: threading == .engine)
    }

    /// `gemm` with the split chosen by the caller (tests compare split and whole products).
    @inline(__always)
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, split: Bool) {
        if m == 0 || n == 0 { return }
        func call(_ m: Int, _ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        if split, Parallel.threads > 1, m * n * k >= 1 << 21 {
            if m >= 64 {
                // rows lo..<hi of C from rows lo..<hi of op(A) (columns of the stored A when transposed)
                Work.chunks(m, grain: 32) { _, r in
                    call(r.count, n, transA ? a + r.lowerBound : a + r.lowerBound * lda, b, c + r.lowerBound * ldc)
                }
                return
            }
            if n >= 128 {
                // columns lo..<hi of C from columns lo..<hi of op(B) (rows of the stored B when transposed)
                Work.chunks(n, grain: 64) { _, r in
                    call(m, r.count, a, transB ? b + r.lowerBound * ldb : b + r.lowerBound, c + r.lowerBound)
                }
                return
            }
        }
        call(m, n, a, b, c)
    }

    /// C[n,n] = Aᵀ·A for A[k,n] row-major, both triangles filled. Three products, so two threads
    /// share it evenly and the result does not depend on the thread count: the diagonal blocks of the
    /// two column halves by syrk (each half a GEMM's work) on one thread, the block between them by
    /// one GEMM on the other; the lower triangle is then copied from the upper.
    public static func gram(a: UnsafePointer<Float>, rows k: Int, cols n: Int, c: UnsafeMutablePointer<Float>) {
        if n == 0 { return }
        if k == 0 { c.update(repeating: 0, count: n * n); return }
        // C[lo..<lo+w, lo..<lo+w], upper triangle (row-major) = A[:, lo..<lo+w]ᵀ · A[:, lo..<lo+w]
        func syrk(_ lo: Int, _ w: Int) {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(w), Int32(k), 1, a + lo, Int32(n), 0, c + lo * n + lo, Int32(n))
        }
        let h = n / 2
        func piece(_ i: Int) {
            if i == 0 { syrk(0, h); syrk(h, n - h); return }
            // C[0..<h, h..<n] = A[:, 0..<h]ᵀ · A[:, h..<n]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(h), Int32(n - h), Int32(k), 1, a, Int32(n),
                        a + h, Int32(n), 0, c + h, Int32(n))
        }
        if h == 0 {
            syrk(0, n)
        } else if threading == .engine {
            Work.chunks(2) { _, pieces in pieces.forEach(piece) }
        } else {
            piece(0); piece(1)  // each on OpenBLAS's threads
        }
        for i in 0..<n { for j in 0..<i { c[i * n + j] = c[j * n + i] } }
    }

    /// out[N, O] = x[N, I] · W[O, I]ᵀ (+ out if accumulate). Bias is added by the caller's fused pass.
    @inline(__always)
    public static func linearForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                     rows n: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        gemm(transA: false, transB: true, m: n, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
             beta: accumulate ? 1 : 0, c: out, ldc: outDim)
    }

    /// dx[N, I] (=, or += if accumulate) dy[N, O] · W[O, I].
    @inline(__always)
    public static func linearBackwardInput(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                           rows n: Int, inDim: Int, outDim: Int, accumulate: Bool) {
        gemm(transA: false, transB: false, m: n, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
             beta: accumulate ? 1 : 0, c: dx, ldc: inDim)
    }

    /// dW[O, I] += dy[N, O]ᵀ · x[N, I].
    @inline(__always)
    public static func linearBackwardWeight(dw: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                            rows n: Int, inDim: Int, outDim: Int) {
        gemm(transA: true, transB: false, m: outDim, n: inDim, k: n, a: dy, lda: outDim, b: x, ldb: inDim,
             beta: 1, c: dw, ldc: inDim)
    }
}
