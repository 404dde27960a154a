import Testing
@testable import Engine

/// The two-sample Kolmogorov–Smirnov test against scipy.stats.ks_2samp(a, b, method="exact")
/// (scipy 1.17.1) on fixed samples; the values below were computed with it.
@Suite struct StatisticsTests {
    /// ((k·mul) mod mod) / mod + offset for k < count: exact in binary64, so ties are the same here and in scipy.
    func sample(_ count: Int, _ mul: Int, _ mod: Int, _ offset: Double = 0) -> [Double] {
        (0..<count).map { Double(($0 * mul) % mod) / Double(mod) + offset }
    }

    @Test func matchesScipyExact() throws {
        let cases: [(String, [Double], [Double], Double, Double)] = [
            ("equal sizes, shifted", sample(40, 37, 101), sample(40, 53, 89, 0.15), 0.175, 0.5786001416508443),
            ("unequal sizes", sample(30, 37, 101), sample(47, 53, 89, 0.1), 0.1375886524822695, 0.8181747783044143),
            ("ties", (0..<25).map { Double(($0 * 7) % 5) }, (0..<33).map { Double(($0 * 3) % 6) }, 0.3151515151515151, 0.09363903742353177),
            ("same sample", sample(20, 37, 101), sample(20, 37, 101), 0, 1),
            ("disjoint", sample(60, 37, 101), sample(45, 53, 89, 2), 1, 1.840906125590564e-30),
            ("one value each side", [0], [1], 1, 1),
            ("large unequal", sample(300, 37, 101), sample(451, 53, 89, 0.05), 0.06184774575018478, 0.47056940360966054),
        ]
        for (name, a, b, d, p) in cases {
            let t = try KolmogorovSmirnov(a, b)
            #expect(abs(t.statistic - d) <= 1e-15, "\(name): D \(t.statistic) vs scipy \(d)")
            #expect(abs(t.pValue - p) <= 1e-9 * p, "\(name): p \(t.pValue) vs scipy \(p)")
            let swapped = try KolmogorovSmirnov(b, a)
            #expect(swapped.statistic == t.statistic && abs(swapped.pValue - t.pValue) <= 1e-9 * p, "\(name): symmetric")
        }
    }

    /// Past the exact test's size, forget quality takes the asymptotic p-value; it is within about 1% of
    /// scipy.stats.ks_2samp(method="asymp") (values from scipy 1.17.1 on samples of these sizes).
    @Test func theAsymptoticPValueMatchesScipysAsymptoticMethod() throws {
        for (m, n, d, p) in [(2000, 3000, 0.04583333333333339, 0.012518923459115528), (5000, 5000, 0.0232, 0.13346706584719603),
                             (20000, 21000, 0.011845238095238103, 0.11195962466971277), (20000, 21000, 0.019952380952381, 0.0005659966606858891)] {
            let q = KolmogorovSmirnov.asymptoticPValue(m: m, n: n, statistic: d)
            #expect(abs(q - p) <= 0.01 * p, "\(m)×\(n), D = \(d): \(q) vs scipy \(p)")
        }
        #expect(KolmogorovSmirnov.asymptoticPValue(m: 100, n: 100, statistic: 0) == 1)
        // 30,000 × 30,000 values: refused exact, asymptotic when allowed (and said so)
        let a = (0..<30_000).map { Double($0) }, b = (0..<30_000).map { Double($0) + 600.5 }
        let t = try KolmogorovSmirnov(a, b, allowAsymptotic: true)
        #expect(!t.exact)
        #expect(abs(t.statistic - 601.0 / 30_000) < 1e-12)   // a's values 0...600 lie below all of b
        #expect(t.pValue == KolmogorovSmirnov.asymptoticPValue(m: 30_000, n: 30_000, statistic: t.statistic))
        #expect(try KolmogorovSmirnov([1, 2], [3], allowAsymptotic: true).exact)
    }

    @Test func badInputIsAnError() {
        #expect(throws: EngineError.self) { try KolmogorovSmirnov([], [1]) }
        #expect(throws: EngineError.self) { try KolmogorovSmirnov([1, .nan], [1]) }
        #expect(throws: EngineError.self) { try KolmogorovSmirnov([1, .infinity], [1]) }
        #expect(throws: EngineError.self) { try KolmogorovSmirnov([Double](repeating: 0, count: 30_000), [Double](repeating: 1, count: 30_000)) }
    }
}
