import COpenBLAS

/// LAPACK (inside OpenBLAS) for float32 and float64 row-major matrices, as the rest of the engine
/// stores them: SVD, symmetric eigendecomposition, Cholesky, positive-definite and general solves.
/// LAPACK is column-major: a row-major [m, n] buffer is the column-major [n, m] transpose, which
/// each routine below takes into account. Workspaces come from LAPACK's own size query. A LAPACK
/// failure (no convergence, not positive definite, singular) is a numeric error naming the routine
/// and the matrix; non-finite input is refused before LAPACK sees it; sizes are checked.
public protocol LAPACKScalar: BinaryFloatingPoint {
    static var typeName: String { get }
    static func gesdd(_ jobz: UnsafePointer<CChar>, _ m: UnsafePointer<Int32>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Self>,
                      _ lda: UnsafePointer<Int32>, _ s: UnsafeMutablePointer<Self>, _ u: UnsafeMutablePointer<Self>, _ ldu: UnsafePointer<Int32>,
                      _ vt: UnsafeMutablePointer<Self>, _ ldvt: UnsafePointer<Int32>, _ work: UnsafeMutablePointer<Self>,
                      _ lwork: UnsafePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>)
    static func syevd(_ jobz: UnsafePointer<CChar>, _ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Self>,
                      _ lda: UnsafePointer<Int32>, _ w: UnsafeMutablePointer<Self>, _ work: UnsafeMutablePointer<Self>, _ lwork: UnsafePointer<Int32>,
                      _ iwork: UnsafeMutablePointer<Int32>, _ liwork: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>)
    static func potrf(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Self>, _ lda: UnsafePointer<Int32>,
                      _ info: UnsafeMutablePointer<Int32>)
    static func posv(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Self>,
                     _ lda: UnsafePointer<Int32>, _ b: UnsafeMutablePointer<Self>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>)
    static func gesv(_ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Self>, _ lda: UnsafePointer<Int32>,
                     _ ipiv: UnsafeMutablePointer<Int32>, _ b: UnsafeMutablePointer<Self>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>)
}

extension Float: LAPACKScalar {
    public static var typeName: String { "float32" }
    public static func gesdd(_ jobz: UnsafePointer<CChar>, _ m: UnsafePointer<Int32>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>, _ lda: UnsafePointer<Int32>, _ s: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>, _ ldu: UnsafePointer<Int32>, _ vt: UnsafeMutablePointer<Float>, _ ldvt: UnsafePointer<Int32>, _ work: UnsafeMutablePointer<Float>, _ lwork: UnsafePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { sgesdd_(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info, 1) }
    public static func syevd(_ jobz: UnsafePointer<CChar>, _ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>, _ lda: UnsafePointer<Int32>, _ w: UnsafeMutablePointer<Float>, _ work: UnsafeMutablePointer<Float>, _ lwork: UnsafePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>, _ liwork: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { ssyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info, 1, 1) }
    public static func potrf(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>, _ lda: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { spotrf_(uplo, n, a, lda, info, 1) }
    public static func posv(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>, _ lda: UnsafePointer<Int32>, _ b: UnsafeMutablePointer<Float>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { sposv_(uplo, n, nrhs, a, lda, b, ldb, info, 1) }
    public static func gesv(_ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>, _ lda: UnsafePointer<Int32>, _ ipiv: UnsafeMutablePointer<Int32>, _ b: UnsafeMutablePointer<Float>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { sgesv_(n, nrhs, a, lda, ipiv, b, ldb, info) }
}

extension Double: LAPACKScalar {
    public static var typeName: String { "float64" }
    public static func gesdd(_ jobz: UnsafePointer<CChar>, _ m: UnsafePointer<Int32>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Double>, _ lda: UnsafePointer<Int32>, _ s: UnsafeMutablePointer<Double>, _ u: UnsafeMutablePointer<Double>, _ ldu: UnsafePointer<Int32>, _ vt: UnsafeMutablePointer<Double>, _ ldvt: UnsafePointer<Int32>, _ work: UnsafeMutablePointer<Double>, _ lwork: UnsafePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { dgesdd_(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info, 1) }
    public static func syevd(_ jobz: UnsafePointer<CChar>, _ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Double>, _ lda: UnsafePointer<Int32>, _ w: UnsafeMutablePointer<Double>, _ work: UnsafeMutablePointer<Double>, _ lwork: UnsafePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>, _ liwork: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { dsyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info, 1, 1) }
    public static func potrf(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Double>, _ lda: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { dpotrf_(uplo, n, a, lda, info, 1) }
    public static func posv(_ uplo: UnsafePointer<CChar>, _ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Double>, _ lda: UnsafePointer<Int32>, _ b: UnsafeMutablePointer<Double>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { dposv_(uplo, n, nrhs, a, lda, b, ldb, info, 1) }
    public static func gesv(_ n: UnsafePointer<Int32>, _ nrhs: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Double>, _ lda: UnsafePointer<Int32>, _ ipiv: UnsafeMutablePointer<Int32>, _ b: UnsafeMutablePointer<Double>, _ ldb: UnsafePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) { dgesv_(n, nrhs, a, lda, ipiv, b, ldb, info) }
}

public enum LinearAlgebra {
    /// Checks a row-major [rows, cols] operand: sizes LAPACK's 32-bit integers hold, the element
    /// count, finite values.
    static func check<T: LAPACKScalar>(_ a: [T], _ rows: Int, _ cols: Int, _ what: String) throws(EngineError) {
        guard rows >= 1, cols >= 1, rows < Int(Int32.max), cols < Int(Int32.max) else {
            throw .invalid("\(what): a \(rows)×\(cols) matrix (each side must be 1 to \(Int32.max - 1))")
        }
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow, count == a.count else { throw .invalid("\(what): \(a.count) values for a \(rows)×\(cols) matrix") }
        if let i = a.firstIndex(where: { !$0.isFinite }) {
            throw .numeric("\(what): the \(rows)×\(cols) \(T.typeName) matrix holds \(a[i]) at (\(i / cols), \(i % cols))")
        }
    }

    /// A workspace size from LAPACK's query (lwork = -1), checked.
    static func workspace<T: LAPACKScalar>(_ query: T, _ what: String) throws(EngineError) -> Int32 {
        let n = Double(query).rounded(.up) + 1
        guard n.isFinite, n >= 1, n < Double(Int32.max) else { throw .numeric("\(what): LAPACK asked for a workspace of \(query) elements") }
        return Int32(n)
    }

    static func status(_ info: Int32, _ what: String, positive: (Int32) -> String) throws(EngineError) {
        if info < 0 { throw .internalError("\(what): LAPACK says argument \(-info) is illegal") }
        if info > 0 { throw .numeric("\(what): \(positive(info))") }
    }

    /// Thin SVD of A [m, n]: A = U · diag(s) · Vᵀ with U [m, k], s [k] descending, Vᵀ [k, n],
    /// k = min(m, n) (divide and conquer, ?gesdd). `vectors: false` gives s only (u and vt empty).
    public static func svd<T: LAPACKScalar>(_ a: [T], rows m: Int, cols n: Int, vectors: Bool = true) throws(EngineError) -> (u: [T], s: [T], vt: [T]) {
        let what = "svd"
        try check(a, m, n, what)
        // LAPACK sees B = Aᵀ [n, m]; B = Ub·S·Vbᵀ gives A = Vb·S·Ubᵀ, and in memory the row-major U of
        // A is Vbᵀ's column-major buffer [k, m] and A's Vᵀ is Ub's column-major buffer [n, k].
        let k = min(m, n)
        var b = a
        var lm = Int32(n), ln = Int32(m), lda = Int32(n), ldu = Int32(vectors ? n : 1), ldvt = Int32(vectors ? k : 1)
        var s = [T](repeating: 0, count: k)
        var ub = [T](repeating: 0, count: vectors ? n * k : 1), vtb = [T](repeating: 0, count: vectors ? k * m : 1)
        var iwork = [Int32](repeating: 0, count: 8 * k)
        var info: Int32 = 0, lwork: Int32 = -1, query: T = 0
        var jobz = CChar(UInt8(ascii: vectors ? "S" : "N"))
        T.gesdd(&jobz, &lm, &ln, &b, &lda, &s, &ub, &ldu, &vtb, &ldvt, &query, &lwork, &iwork, &info)
        try status(info, what) { _ in "the workspace query failed" }
        lwork = try workspace(query, what)
        var work = [T](repeating: 0, count: Int(lwork))
        T.gesdd(&jobz, &lm, &ln, &b, &lda, &s, &ub, &ldu, &vtb, &ldvt, &work, &lwork, &iwork, &info)
        try status(info, what) { _ in "the \(m)×\(n) \(T.typeName) matrix did not converge (?gesdd)" }
        return vectors ? (vtb, s, ub) : ([], s, [])
    }

    /// Eigendecomposition of a symmetric A [n, n] (its lower triangle is read): values ascending;
    /// `vectors` row-major [n, n] with eigenvector j in row j (A·v_j = λ_j·v_j; ?syevd).
    public static func symmetricEigen<T: LAPACKScalar>(_ a: [T], n: Int, vectors: Bool = true) throws(EngineError) -> (values: [T], vectors: [T]) {
        let what = "symmetric eigendecomposition"
        try check(a, n, n, what)
        // Column-major, the row-major buffer is Aᵀ = A; its upper triangle is our lower one. The
        // eigenvectors come back as columns, which read row-major are rows.
        var b = a
        var ln = Int32(n), lda = Int32(n), info: Int32 = 0
        var w = [T](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: vectors ? "V" : "N")), uplo = CChar(UInt8(ascii: "U"))
        var lwork: Int32 = -1, liwork: Int32 = -1, query: T = 0, iquery: Int32 = 0
        T.syevd(&jobz, &uplo, &ln, &b, &lda, &w, &query, &lwork, &iquery, &liwork, &info)
        try status(info, what) { _ in "the workspace query failed" }
        lwork = try workspace(query, what)
        liwork = max(1, iquery)
        var work = [T](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
        T.syevd(&jobz, &uplo, &ln, &b, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        try status(info, what) { i in "the \(n)×\(n) \(T.typeName) matrix did not converge (?syevd: \(i) off-diagonal elements)" }
        return (w, vectors ? b : [])
    }

    /// Cholesky factor of a symmetric positive-definite A [n, n] (lower triangle read): L [n, n]
    /// lower triangular, row-major, A = L·Lᵀ (?potrf).
    public static func cholesky<T: LAPACKScalar>(_ a: [T], n: Int) throws(EngineError) -> [T] {
        let what = "cholesky"
        try check(a, n, n, what)
        // Column-major 'U' on the row-major buffer: Uᵀ·U with U upper column-major is L·Lᵀ with L
        // lower row-major, in the same memory.
        var b = a
        var ln = Int32(n), lda = Int32(n), info: Int32 = 0, uplo = CChar(UInt8(ascii: "U"))
        T.potrf(&uplo, &ln, &b, &lda, &info)
        try status(info, what) { i in "the \(n)×\(n) \(T.typeName) matrix is not positive definite (its leading minor of order \(i) is not positive)" }
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { b[i * n + j] = 0 } }
        return b
    }

    /// X [n, k] with A·X = B for a symmetric positive-definite A [n, n] and B [n, k] (?posv).
    public static func solvePositiveDefinite<T: LAPACKScalar>(_ a: [T], n: Int, _ b: [T], columns k: Int) throws(EngineError) -> [T] {
        let what = "positive-definite solve"
        try check(a, n, n, what)
        try check(b, n, k, "\(what): right-hand side")
        var am = a, bm = transpose(b, n, k)
        var ln = Int32(n), nrhs = Int32(k), lda = Int32(n), ldb = Int32(n), info: Int32 = 0, uplo = CChar(UInt8(ascii: "U"))
        T.posv(&uplo, &ln, &nrhs, &am, &lda, &bm, &ldb, &info)
        try status(info, what) { i in "the \(n)×\(n) \(T.typeName) matrix is not positive definite (its leading minor of order \(i) is not positive)" }
        return transpose(bm, k, n)
    }

    /// X [n, k] with A·X = B for a general A [n, n] (LU with partial pivoting, ?gesv).
    public static func solve<T: LAPACKScalar>(_ a: [T], n: Int, _ b: [T], columns k: Int) throws(EngineError) -> [T] {
        let what = "solve"
        try check(a, n, n, what)
        try check(b, n, k, "\(what): right-hand side")
        var am = transpose(a, n, n), bm = transpose(b, n, k)
        var ln = Int32(n), nrhs = Int32(k), lda = Int32(n), ldb = Int32(n), info: Int32 = 0
        var ipiv = [Int32](repeating: 0, count: n)
        T.gesv(&ln, &nrhs, &am, &lda, &ipiv, &bm, &ldb, &info)
        try status(info, what) { i in "the \(n)×\(n) \(T.typeName) matrix is singular (U(\(i),\(i)) of its LU factorization is exactly zero)" }
        return transpose(bm, k, n)
    }

    /// C [m, n] = op(A) · op(B) in float64 (OpenBLAS dgemm), row-major; op(A) is [m, k], op(B) [k, n]
    /// (A stored [k, m] when transposed, B stored [n, k]).
    public static func product(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) throws(EngineError) -> [Double] {
        guard m >= 0, n >= 0, k >= 0, a.count == m * k, b.count == k * n else {
            throw .internalError("product: \(a.count) and \(b.count) values for [\(m), \(k)] · [\(k), \(n)]")
        }
        var c = [Double](repeating: 0, count: m * n)
        if m == 0 || n == 0 || k == 0 { return c }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(transA ? m : k), b, Int32(transB ? k : n), 0, &c, Int32(n))
        return c
    }

    /// The transpose of a row-major [rows, cols] matrix: [cols, rows].
    static func transpose<T>(_ a: [T], _ rows: Int, _ cols: Int) -> [T] {
        var t = a
        for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = a[i * cols + j] } }
        return t
    }
}
