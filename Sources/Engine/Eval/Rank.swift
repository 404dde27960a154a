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

/// The singular values of a row-major matrix, descending (LinearAlgebra.svd, values only).
public func singularValues(_ matrix: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws(EngineError) -> [Float] {
    guard rows > 0, cols > 0, matrix.count == rows * cols else { throw .invalid("singular values: bad matrix shape \(rows)x\(cols)") }
    return try LinearAlgebra.svd(Array(matrix), rows: rows, cols: cols, vectors: false).s
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
