import Testing
@testable import Engine

/// LAPACK through Tensor/LinearAlgebra, float32 and float64: each result reconstructs its input, and
/// failures are numeric errors that say what failed.
struct LinearAlgebraTests {
    func random<T: LAPACKScalar>(_ n: Int, seed: UInt64, as: T.Type = T.self) -> [T] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in T(rng.normal()) }
    }
    func matmul<T: LAPACKScalar>(_ a: [T], _ b: [T], _ m: Int, _ k: Int, _ n: Int) -> [T] {
        var c = [T](repeating: 0, count: m * n)
        for i in 0..<m { for p in 0..<k { let x = a[i * k + p]; for j in 0..<n { c[i * n + j] += x * b[p * n + j] } } }
        return c
    }
    func maxDiff<T: LAPACKScalar>(_ a: [T], _ b: [T]) -> Double { zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0 }
    func tol<T: LAPACKScalar>(_: T.Type) -> Double { T.self == Float.self ? 2e-4 : 1e-10 }
    /// A·Aᵀ + n·I: symmetric positive definite.
    func spd<T: LAPACKScalar>(_ n: Int, seed: UInt64, as: T.Type) -> [T] {
        let a: [T] = random(n * n, seed: seed)
        var s = matmul(a, LinearAlgebra.transpose(a, n, n), n, n, n)
        for i in 0..<n { s[i * n + i] += T(n) }
        return s
    }

    func svdReconstructs<T: LAPACKScalar>(_: T.Type) throws {
        for (m, n) in [(5, 3), (3, 5), (4, 4), (1, 6), (6, 1)] {
            let a: [T] = random(m * n, seed: UInt64(m * 10 + n))
            let (u, s, vt) = try LinearAlgebra.svd(a, rows: m, cols: n)
            let k = min(m, n)
            #expect(zip(s, s.dropFirst()).allSatisfy { $0 >= $1 }, "descending")
            var us = u
            for i in 0..<m { for j in 0..<k { us[i * k + j] *= s[j] } }
            #expect(maxDiff(matmul(us, vt, m, k, n), a) < tol(T.self), "\(T.self) \(m)×\(n)")
            let utu = matmul(LinearAlgebra.transpose(u, m, k), u, k, m, k)
            let eye = (0..<(k * k)).map { $0 / k == $0 % k ? T(1) : T(0) }
            #expect(maxDiff(utu, eye) < tol(T.self), "U has orthonormal columns")
            #expect(maxDiff(try LinearAlgebra.svd(a, rows: m, cols: n, vectors: false).s, s) < tol(T.self), "values only agree")
        }
        // diag(3, 2, 0): singular values 3, 2, 0 (rank deficient)
        let d: [T] = [3, 0, 0, 0, 0, 0, 0, 0, 2]
        let s = try LinearAlgebra.svd(d, rows: 3, cols: 3).s
        #expect(maxDiff(s, [3, 2, 0]) < tol(T.self))
    }

    func eigenCholeskySolves<T: LAPACKScalar>(_: T.Type) throws {
        let n = 6
        let a = spd(n, seed: 3, as: T.self)
        let (w, v) = try LinearAlgebra.symmetricEigen(a, n: n)
        #expect(zip(w, w.dropFirst()).allSatisfy { $0 <= $1 }, "ascending")
        for j in 0..<n {   // A·v_j = λ_j·v_j, v_j = row j
            let vj = Array(v[(j * n)..<((j + 1) * n)])
            #expect(maxDiff(matmul(a, vj, n, n, 1), vj.map { $0 * w[j] }) < tol(T.self) * 50)
        }
        let l = try LinearAlgebra.cholesky(a, n: n)
        for i in 0..<n { for j in (i + 1)..<n { #expect(l[i * n + j] == 0) } }
        #expect(maxDiff(matmul(l, LinearAlgebra.transpose(l, n, n), n, n, n), a) < tol(T.self) * 50)
        let b: [T] = random(n * 2, seed: 9)
        let x = try LinearAlgebra.solvePositiveDefinite(a, n: n, b, columns: 2)
        #expect(maxDiff(matmul(a, x, n, n, 2), b) < tol(T.self) * 50)
        let g: [T] = random(n * n, seed: 11)
        let y = try LinearAlgebra.solve(g, n: n, b, columns: 2)
        #expect(maxDiff(matmul(g, y, n, n, 2), b) < tol(T.self) * 500)
    }

    @Test func float32() throws { try svdReconstructs(Float.self); try eigenCholeskySolves(Float.self) }
    @Test func float64() throws { try svdReconstructs(Double.self); try eigenCholeskySolves(Double.self) }

    @Test func failuresSayWhatFailed() {
        func expectError(_ status: EngineError.Status, _ needle: String, _ body: () throws(EngineError) -> Void) {
            do { try body(); Issue.record("no error for \(needle)") } catch {
                #expect(error.status == status && error.message.contains(needle), "\(error.message)")
            }
        }
        let notPD: [Double] = [1, 2, 2, 1]   // eigenvalues 3 and −1
        expectError(.numeric, "not positive definite (its leading minor of order 2") { () throws(EngineError) in _ = try LinearAlgebra.cholesky(notPD, n: 2) }
        expectError(.numeric, "not positive definite") { () throws(EngineError) in _ = try LinearAlgebra.solvePositiveDefinite(notPD, n: 2, [1, 1], columns: 1) }
        expectError(.numeric, "is singular") { () throws(EngineError) in _ = try LinearAlgebra.solve([1, 2, 2, 4] as [Float], n: 2, [1, 1], columns: 1) }
        expectError(.numeric, "holds nan at (0, 1)") { () throws(EngineError) in _ = try LinearAlgebra.svd([1, .nan, 3, 4] as [Float], rows: 2, cols: 2) }
        expectError(.invalid, "3 values for a 2×2 matrix") { () throws(EngineError) in _ = try LinearAlgebra.symmetricEigen([1, 2, 3] as [Double], n: 2) }
        expectError(.invalid, "a 0×2 matrix") { () throws(EngineError) in _ = try LinearAlgebra.svd([] as [Float], rows: 0, cols: 2) }
    }
}
