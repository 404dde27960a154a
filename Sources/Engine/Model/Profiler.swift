/// Optional per-phase wall-clock accounting of the forward/backward passes (for `bh-bench --profile`).
/// Off unless `GPTNeoX.profiler` is set; the cost is two clock reads per phase.
public final class Profiler {
    public enum Phase: Int, CaseIterable {
        case embed, layerNorm, qkvGemm, rotary, attention, denseGemm, fc1Gemm, gelu, fc2Gemm, residual, biasFill
        case unembedGemm, crossEntropy
        case bUnembedGemm, bLayerNorm, bFc2Gemm, bGelu, bFc1Gemm, bDenseGemm, bAttention, bQkvGemm, bBias, bEmbed
        case optimizer
    }
    public var seconds = [Double](repeating: 0, count: Phase.allCases.count)
    public var calls = [Int](repeating: 0, count: Phase.allCases.count)
    var last = 0.0
    public init() {}
    public func reset() { for i in seconds.indices { seconds[i] = 0; calls[i] = 0 } }
    @inline(__always) func start() { last = monotonicSeconds() }
    @inline(__always) func stop(_ p: Phase) {
        let now = monotonicSeconds()
        seconds[p.rawValue] += now - last
        calls[p.rawValue] += 1
        last = now
    }
    /// The kernel family a phase belongs to (the report's second table).
    public enum Family: String, CaseIterable {
        case gemm = "matrix products (OpenBLAS)", norm = "norms", attention = "attention + rotary", activation = "GELU / SwiGLU"
        case loss = "softmax + cross-entropy", optimizer = "optimizer", memory = "embeddings, biases, residual adds"
    }

    public static func family(_ p: Phase) -> Family {
        switch p {
        case .qkvGemm, .denseGemm, .fc1Gemm, .fc2Gemm, .unembedGemm, .bUnembedGemm, .bFc2Gemm, .bFc1Gemm, .bDenseGemm, .bQkvGemm: return .gemm
        case .layerNorm, .bLayerNorm: return .norm
        case .rotary, .attention, .bAttention: return .attention
        case .gelu, .bGelu: return .activation
        case .crossEntropy: return .loss
        case .optimizer: return .optimizer
        case .embed, .residual, .biasFill, .bBias, .bEmbed: return .memory
        }
    }

    /// Seconds per family over the profiled steps.
    public func familySeconds() -> [(Family, Double)] {
        Family.allCases.map { f in (f, Phase.allCases.filter { Profiler.family($0) == f }.reduce(0) { $0 + seconds[$1.rawValue] }) }
    }

    /// Share of the profiled time outside the matrix products.
    public var nonGemmShare: Double {
        let total = seconds.reduce(0, +)
        return total > 0 ? 1 - (familySeconds().first { $0.0 == .gemm }?.1 ?? 0) / total : 0
    }

    public func report(steps: Int) -> String {
        let total = seconds.reduce(0, +)
        var s = ""
        for p in Phase.allCases where calls[p.rawValue] > 0 {
            let ms = seconds[p.rawValue] / Double(steps) * 1000
            let name = "\(p)".padding(13)
            s += "  \(name) \(fmt(ms, 2)) ms/step  \(fmt(100 * seconds[p.rawValue] / total, 1))%\n"
        }
        s += "  total         \(fmt(total / Double(steps) * 1000, 2)) ms/step\n"
        s += "by kernel family:\n"
        for (f, sec) in familySeconds() where sec > 0 {
            s += "  \(f.rawValue.padding(34)) \(fmt(sec / Double(steps) * 1000, 2)) ms/step  \(fmt(100 * sec / total, 1))%\n"
        }
        s += "non_gemm_share \(fmt(nonGemmShare, 3))\n"
        return s
    }
}

public func fmt(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
