import Testing
@testable import Engine

/// Matrix products split across the engine's threads (`BLAS.Threading.engine`, the default): every
/// transpose combination, split by rows and by columns of C, with alpha and beta, agrees with a
/// float64 product and with the same product made in one OpenBLAS call.
@Suite struct BLASThreadingTests {
    func random(_ n: Int, _ seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in Float(rng.uniform()) - 0.5 }
    }

    /// C = alpha·op(A)·op(B) + beta·C0 in float64, A stored [m,k] or [k,m], B [k,n] or [n,k].
    func reference(_ a: [Float], _ b: [Float], _ c0: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
                   alpha: Float, beta: Float) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    s += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                }
                c[i * n + j] = Double(alpha) * s + Double(beta) * Double(c0[i * n + j])
            }
        }
        return c
    }

    func product(_ a: [Float], _ b: [Float], _ c0: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
                 alpha: Float, beta: Float, split: Bool) -> [Float] {
        var c = c0
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!,
                              lda: transA ? m : k, b: bp.baseAddress!, ldb: transB ? k : n, beta: beta, c: cp.baseAddress!,
                              ldc: n, split: split)
                }
            }
        }
        return c
    }

    @Test(arguments: [(200, 96, 160), (40, 300, 256), (130, 130, 130)])
    func splitProductsAgree(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        #expect(m * n * k >= 1 << 21, "large enough to be split")
        for transA in [false, true] {
            for transB in [false, true] {
                let a = random(m * k, 1), b = random(k * n, 2), c0 = random(m * n, 3)
                let want = reference(a, b, c0, m: m, n: n, k: k, transA: transA, transB: transB, alpha: 0.5, beta: 2)
                let split = product(a, b, c0, m: m, n: n, k: k, transA: transA, transB: transB, alpha: 0.5, beta: 2, split: true)
                let whole = product(a, b, c0, m: m, n: n, k: k, transA: transA, transB: transB, alpha: 0.5, beta: 2, split: false)
                let errSplit = zip(split, want).map { abs(Double($0) - $1) }.max() ?? 0
                let errWhole = zip(whole, want).map { abs(Double($0) - $1) }.max() ?? 0
                let gap = zip(split, whole).map { abs($0 - $1) }.max() ?? 0
                let what = "\(m)×\(n)×\(k) transA \(transA) transB \(transB)"
                #expect(errSplit < 1e-4, "\(what): split product off the float64 one by \(errSplit)")
                #expect(errWhole < 1e-4, "\(what): whole product off the float64 one by \(errWhole)")
                #expect(gap < 1e-5, "\(what): split and whole products differ by \(gap)")
            }
        }
    }

    /// The Gram matrix in three products (two syrk, one GEMM): AᵀA to float rounding, exactly symmetric,
    /// for an odd and a one-column width.
    @Test(arguments: [37, 1, 2])
    func gramMatchesFloat64(n: Int) {
        let k = 300
        let a = random(k * n, 7)
        var c = [Float](repeating: .nan, count: n * n)
        a.withUnsafeBufferPointer { ap in c.withUnsafeMutableBufferPointer { BLAS.gram(a: ap.baseAddress!, rows: k, cols: n, c: $0.baseAddress!) } }
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[p * n + i]) * Double(a[p * n + j]) }
                worst = max(worst, abs(Double(c[i * n + j]) - s))
                #expect(c[i * n + j] == c[j * n + i], "C[\(i), \(j)] and C[\(j), \(i)] differ")
            }
        }
        #expect(worst < 1e-4, "Gram off the float64 AᵀA by \(worst) at n = \(n)")
    }

    @Test func theThreadingIsReported() {
        #expect(Runtime.info()["blas_threading"]?["selected"] == .string(BLAS.threading.rawValue))
    }
}
