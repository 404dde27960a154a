import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Singular values and rank measures of a weight change ΔW (row-major [rows, cols]).
public struct RankAnalysis {
    public let singularValues: [Float]   // descending
    /// Roy & Vetterli (2007): exp(−Σ p_i log p_i), p_i = σ_i / Σ σ_j.
    public let effectiveRank: Double
    /// Smallest k with Σ_{i≤k} σ_i² ≥ 0.99 Σ σ².
    public let energyRank99: Int
    /// σ_i > σ_max · max(rows, cols) · float epsilon (the usual numerical rank).
    public let numericalRank: Int

    public func toJSON() -> JSON {
        .object([("effective_rank", .number(effectiveRank)), ("energy_rank_99", .int(energyRank99)),
                 ("numerical_rank", .int(numericalRank)), ("frobenius_norm", .number(frobeniusNorm)),
                 ("max_rank", .int(singularValues.count))])
    }

    public var frobeniusNorm: Double { singularValues.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
}

/// Computes the singular values of a row-major matrix with LAPACK (sgesdd, values only).
public func singularValues(_ matrix: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws(EngineError) -> [Float] {
    guard rows > 0, cols > 0, matrix.count == rows * cols else { throw .invalid("singular values: bad matrix shape \(rows)x\(cols)") }
    // LAPACK is column-major: a row-major [rows, cols] is the column-major [cols, rows] transpose,
    // which has the same singular values.
    var a = Array(matrix)
    var m = Int32(cols), n = Int32(rows), lda = Int32(cols)
    var s = [Float](repeating: 0, count: min(rows, cols))
    var u: Float = 0, vt: Float = 0
    var ldu: Int32 = 1, ldvt: Int32 = 1
    var iwork = [Int32](repeating: 0, count: 8 * min(rows, cols))
    var info: Int32 = 0
    var jobz = CChar(UInt8(ascii: "N"))
    var lwork: Int32 = -1
    var query: Float = 0
    sgesdd_(&jobz, &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info)
    lwork = Int32(query) + 1
    var work = [Float](repeating: 0, count: Int(lwork))
    sgesdd_(&jobz, &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info)
    guard info == 0 else { throw .numeric("singular values: LAPACK sgesdd failed (info = \(info))") }
    return s
}

public func analyseRank(_ matrix: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws(EngineError) -> RankAnalysis {
    let s = try singularValues(matrix, rows: rows, cols: cols)
    let total = s.reduce(0.0) { $0 + Double($1) }
    var entropy = 0.0
    if total > 0 { for x in s where x > 0 { let p = Double(x) / total; entropy -= p * log(p) } }
    let energy = s.reduce(0.0) { $0 + Double($1) * Double($1) }
    var acc = 0.0, k99 = 0
    if energy > 0 {
        for (i, x) in s.enumerated() { acc += Double(x) * Double(x); if acc >= 0.99 * energy { k99 = i + 1; break } }
    }
    let tol = (s.first ?? 0) * Float(max(rows, cols)) * Float.ulpOfOne
    return RankAnalysis(singularValues: s, effectiveRank: total > 0 ? exp(entropy) : 0, energyRank99: k99,
                        numericalRank: s.filter { $0 > tol }.count)
}
