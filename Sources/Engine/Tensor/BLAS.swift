import COpenBLAS

/// Matrix products, all row-major float32 through OpenBLAS. Weights are stored as PyTorch stores
/// `nn.Linear` weights: W[out, in], so a linear layer is y = x · Wᵀ (transB).
public enum BLAS {
    /// Experimental: OpenBLAS single-threaded, each large product split by rows of C across the
    /// element-wise kernels' threads (one thread pool for everything).
    nonisolated(unsafe) public static var splitRows = false

    /// C[m,n] = alpha · A[m,k] · B[k,n] (+ beta · C), with optional transposes of the stored A / B.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if splitRows && m >= 64 && m * n * k >= 1 << 21 {
            Work.chunks(m, grain: 32) { _, r in
                cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                            Int32(r.count), Int32(n), Int32(k), alpha, transA ? a + r.lowerBound : a + r.lowerBound * lda, Int32(lda),
                            b, Int32(ldb), beta, c + r.lowerBound * ldc, Int32(ldc))
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[n,n] = Aᵀ·A for A[k,n] row-major, both triangles filled (syrk computes one, half a GEMM's
    /// work; the other is copied).
    public static func gram(a: UnsafePointer<Float>, rows k: Int, cols n: Int, c: UnsafeMutablePointer<Float>) {
        if n == 0 { return }
        if k == 0 { c.update(repeating: 0, count: n * n); return }
        // row-major C = Aᵀ A is column-major C = Aᵀ A as well (symmetric); upper triangle of row-major = lower of col-major
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), 1, a, Int32(n), 0, c, Int32(n))
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
