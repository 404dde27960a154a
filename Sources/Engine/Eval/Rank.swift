#if canImport(Glibc)
import Glibc
#endif

/// Singular values and rank measures of a weight change ΔW (row-major [rows, cols]). Rank claims
/// depend on their definition, so every one is reported side by side.
public struct RankAnalysis {
    public let rows: Int, cols: Int
    public let singularValues: [Float]   // descending
    /// Roy & Vetterli (2007): exp(−Σ p_i log p_i), p_i = σ_i / Σ σ_j.
    public let effectiveRank: Double
    /// Smallest k with Σ_{i≤k} σ_i² ≥ 0.90 (0.99) Σ σ².
    public let energyRank90: Int
    public let energyRank99: Int
    /// ‖ΔW‖_F² / σ_max² (Rudelson & Vershynin).
    public let stableRank: Double
    /// σ_i > σ_max · max(rows, cols) · float epsilon (the usual numerical rank).
    public let numericalRank: Int

    public var frobeniusNorm: Double { singularValues.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
    public var spectralNorm: Double { Double(singularValues.first ?? 0) }

    /// The measures in the order the rank file's table lists them.
    public static let metricNames = ["effective_rank", "energy_rank_90", "energy_rank_99", "stable_rank", "numerical_rank",
                                     "frobenius_norm", "spectral_norm", "rows", "cols"]
    public var metrics: [Double] {
        [effectiveRank, Double(energyRank90), Double(energyRank99), stableRank, Double(numericalRank), frobeniusNorm, spectralNorm,
         Double(rows), Double(cols)]
    }

    public func toJSON() -> JSON {
        let counts: Set<String> = ["energy_rank_90", "energy_rank_99", "numerical_rank", "rows", "cols"]
        return .object(zip(Self.metricNames, metrics).map { n, v in (n, counts.contains(n) ? .int(Int(v)) : .number(v)) }
                       + [("max_rank", .int(singularValues.count))])
    }
}

/// The singular values of a row-major matrix, descending (LinearAlgebra.svd, values only).
public func singularValues(_ matrix: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws(EngineError) -> [Float] {
    guard rows > 0, cols > 0, matrix.count == rows * cols else { throw .invalid("singular values: bad matrix shape \(rows)x\(cols)") }
    return try LinearAlgebra.svd(Array(matrix), rows: rows, cols: cols, vectors: false).s
}

public func analyseRank(_ matrix: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws(EngineError) -> RankAnalysis {
    for x in matrix where !x.isFinite { throw .numeric("rank: the matrix holds \(x); cannot take its singular values") }
    let s = try singularValues(matrix, rows: rows, cols: cols)
    let total = s.reduce(0.0) { $0 + Double($1) }
    var entropy = 0.0
    if total > 0 { for x in s where x > 0 { let p = Double(x) / total; entropy -= p * log(p) } }
    let energy = s.reduce(0.0) { $0 + Double($1) * Double($1) }
    func energyRank(_ f: Double) -> Int {
        guard energy > 0 else { return 0 }
        var acc = 0.0
        for (i, x) in s.enumerated() { acc += Double(x) * Double(x); if acc >= f * energy * (1 - 1e-12) { return i + 1 } }
        return s.count
    }
    let top = Double(s.first ?? 0)
    let tol = (s.first ?? 0) * Float(max(rows, cols)) * Float.ulpOfOne
    return RankAnalysis(rows: rows, cols: cols, singularValues: s, effectiveRank: total > 0 ? exp(entropy) : 0,
                        energyRank90: energyRank(0.90), energyRank99: energyRank(0.99),
                        stableRank: top > 0 ? energy / (top * top) : 0, numericalRank: s.filter { $0 > tol }.count)
}

/// The rank measures of every changed matrix of a weight change: two models, an edit's deltas, or an
/// adapter's B·A products. Written as a rank file (format behemoth.rank; docs/formats.md).
public struct RankReport {
    public static let format = "behemoth.rank"
    public static let formatVersion: Int64 = 1

    public var entries: [(name: String, rank: RankAnalysis)] = []
    /// What was compared: {"source": "models" | "edit" | "adapter", digests, ...}.
    public var source: JSON

    /// Matrices of `deltas` (2-D tensors; all-zero ones are skipped: the tensor did not change).
    public init(deltas: [(name: String, shape: [Int], values: [Float])], source: JSON) throws(EngineError) {
        self.source = source
        for d in deltas where d.shape.count == 2 {
            guard d.values.count == d.shape[0] * d.shape[1] else { throw .invalid("rank: \(d.name) holds \(d.values.count) values for shape \(d.shape)") }
            if d.values.allSatisfy({ $0 == 0 }) { continue }
            let r = try d.values.withUnsafeBufferPointer { (b) throws(EngineError) in try analyseRank(b, rows: d.shape[0], cols: d.shape[1]) }
            entries.append((d.name, r))
        }
    }

    /// ΔW = b − a for every weight matrix of two models of the same shape.
    public static func models(_ a: LanguageModel, _ b: LanguageModel) throws(EngineError) -> RankReport {
        guard a.config.layers == b.config.layers, a.config.hidden == b.config.hidden, a.config.intermediate == b.config.intermediate,
              a.config.vocabSize == b.config.vocabSize, a.config.heads == b.config.heads else {
            throw .invalid("rank: the models have different shapes (\(a.config.layers) blocks × \(a.config.hidden), vocabulary \(a.config.vocabSize) vs \(b.config.layers) × \(b.config.hidden), \(b.config.vocabSize)); compare a model with its own edit")
        }
        let pa = a.parameterBlock, pb = b.parameterBlock
        let deltas = a.tensorTable.filter { $0.shape.count == 2 }.map { e in
            (e.name, e.shape, (0..<e.count).map { pb[e.offset + $0] - pa[e.offset + $0] })
        }
        return try RankReport(deltas: deltas, source: .object([("source", .string("models")), ("before_digest", .string(a.contentDigest)),
                                                                ("after_digest", .string(b.contentDigest))]))
    }

    /// An edit's weight deltas.
    public static func edit(_ r: EditResult, method: String) throws(EngineError) -> RankReport {
        try RankReport(deltas: r.deltas.map { ($0.0.name, $0.0.shape, $0.1) }, source: .object([("source", .string("edit")), ("method", .string(method))]))
    }

    /// Each adapted matrix's ΔW = alpha/rank · B·A.
    public static func adapter(_ set: AdapterSet) throws(EngineError) -> RankReport {
        let deltas = set.keys.map { k in
            let a = set.adapters[k]!
            return (k.tensorName, [a.rows, a.cols], a.delta())
        }
        return try RankReport(deltas: deltas, source: .object([("source", .string("adapter")), ("rank", .int(set.rank)),
                                                                ("alpha", .number(set.alpha)), ("adapter_digest", .string(set.contentDigest))]))
    }

    public func toJSON() -> JSON {
        let er = entries.map(\.rank.effectiveRank).sorted(), e90 = entries.map { Double($0.rank.energyRank90) }.sorted()
        func median(_ v: [Double]) -> JSON { v.isEmpty ? .null : .number(v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2) }
        return .object([
            ("source", source),
            ("matrices", .object(entries.map { ($0.name, $0.rank.toJSON()) })),
            ("median_effective_rank", median(er)), ("median_energy_rank_90", median(e90)),
            ("max_energy_rank_90", e90.last.map { .int(Int($0)) } ?? .null),
            ("max_numerical_rank", entries.map(\.rank.numericalRank).max().map { .int($0) } ?? .null),
        ])
    }

    public func save(_ path: String) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            var spec = source
            if case let .object(fields) = source { spec = .object(fields + [("matrices", .int(entries.count))]) }
            try f.stampFormat(Self.format, version: Self.formatVersion, spec: spec.serialized())
            try f.setAttribute("report", string: toJSON().serialized())
            try f.createGroup("/table")
            try f.createGroup("/singular_values")
            try f.setAttribute("names", string: JSON.strings(entries.map(\.name)).serialized(), at: "/table")
            for (k, n) in RankAnalysis.metricNames.enumerated() { try f.write("/table/\(n)", entries.map { $0.rank.metrics[k] }) }
            for e in entries {
                let p = "/singular_values/\(e.name)"
                try f.write(p, e.rank.singularValues)
                try f.setAttribute("rows", int: Int64(e.rank.rows), at: p)
                try f.setAttribute("cols", int: Int64(e.rank.cols), at: p)
            }
        }
    }
}
