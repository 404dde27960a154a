#if canImport(Glibc)
import Glibc
#endif

/// The two-sided two-sample Kolmogorov–Smirnov test with the exact p-value, as
/// `scipy.stats.ks_2samp(a, b, method="exact")` defines it: D = max |F_a − F_b| over the pooled
/// values (ties evaluated after every equal value), rounded to the lattice of the two sample sizes,
/// and p = P(D' ≥ D) for two samples of those sizes from one continuous distribution. TOFU's
/// Forget Quality is this p-value between the unlearned and the oracle models' truth ratios.
public struct KolmogorovSmirnov {
    public let statistic: Double
    public let pValue: Double
    public let sizes: (Int, Int)
    /// false when the samples were too large for the exact p-value and `allowAsymptotic` gave the
    /// asymptotic one (`asymptoticPValue`).
    public let exact: Bool

    /// The largest m·n the exact p-value is computed for (a path count over an m × n lattice, about
    /// a second at this size).
    public static let maxLattice = 400_000_000

    /// `allowAsymptotic`: past `maxLattice` (m·n), the asymptotic p-value instead of an error.
    public init(_ a: [Double], _ b: [Double], allowAsymptotic: Bool = false) throws(EngineError) {
        let m = a.count, n = b.count
        guard m > 0, n > 0 else { throw .invalid("Kolmogorov–Smirnov test: both samples need at least one value (got \(m) and \(n))") }
        guard a.allSatisfy({ $0.isFinite }), b.allSatisfy({ $0.isFinite }) else {
            throw .invalid("Kolmogorov–Smirnov test: the samples hold NaN or infinite values")
        }
        let (mn, overflow) = m.multipliedReportingOverflow(by: n)
        exact = !overflow && mn <= KolmogorovSmirnov.maxLattice
        guard exact || allowAsymptotic else {
            throw .invalid("Kolmogorov–Smirnov test: samples of \(m) and \(n) values are too large for the exact p-value (m·n ≤ \(KolmogorovSmirnov.maxLattice))")
        }
        sizes = (m, n)
        // D from the two empirical CDFs, stepping through the pooled sorted values; after a run of
        // equal values both CDFs have taken all of them.
        let x = a.sorted(), y = b.sorted()
        var i = 0, j = 0, dMax = 0.0   // max |i/m − j/n|, kept as |i·n − j·m| / (m·n)
        while i < m || j < n {
            let v = j == n || (i < m && x[i] <= y[j]) ? x[i] : y[j]
            while i < m && x[i] == v { i += 1 }
            while j < n && y[j] == v { j += 1 }
            dMax = max(dMax, abs(Double(i) * Double(n) - Double(j) * Double(m)))
        }
        statistic = dMax / (Double(m) * Double(n))
        pValue = exact ? KolmogorovSmirnov.exactPValue(m: m, n: n, distance: Int(dMax))
                       : KolmogorovSmirnov.asymptoticPValue(m: m, n: n, statistic: statistic)
    }

    /// The asymptotic two-sided p-value: Kolmogorov's limit Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}
    /// at λ = (√e + 0.12 + 0.11/√e)·D, e = m·n/(m + n) (Stephens' small-sample correction).
    public static func asymptoticPValue(m: Int, n: Int, statistic d: Double) -> Double {
        let e = Double(m) * Double(n) / Double(m + n), r = e.squareRoot()
        let lambda = (r + 0.12 + 0.11 / r) * d
        if lambda < 0.2 { return 1 }
        var q = 0.0, sign = 1.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * lambda * lambda)
            q += sign * term
            if term < 1e-16 * max(q, 1e-300) { break }
            sign = -sign
        }
        return min(1, max(0, 2 * q))
    }

    /// P(a path of m right-steps and n up-steps, uniformly random, leaves the band
    /// |i·n − j·m| < distance): each step from (i, j) goes right with probability (m−i)/(m−i+n−j),
    /// and the mass of every step out of the band is summed (so small p-values keep their digits).
    static func exactPValue(m: Int, n: Int, distance: Int) -> Double {
        if distance == 0 { return 1 }
        var row = [Double](repeating: 0, count: n + 1)      // row i: probability of being at (i, j) inside the band
        var next = [Double](repeating: 0, count: n + 1)
        row[0] = 1
        var outside = 0.0
        for i in 0...m {
            for k in 0...n { next[k] = 0 }
            for j in 0...n {
                let mass = row[j]
                if mass == 0 { continue }
                let left = Double((m - i) + (n - j))
                if i < m {
                    let t = mass * Double(m - i) / left
                    if abs((i + 1) * n - j * m) < distance { next[j] += t } else { outside += t }
                }
                if j < n {
                    let t = mass * Double(n - j) / left
                    if abs(i * n - (j + 1) * m) < distance { row[j + 1] += t } else { outside += t }
                }
            }
            swap(&row, &next)
        }
        return min(1, max(0, outside))
    }
}
