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
    public func report(steps: Int) -> String {
        let total = seconds.reduce(0, +)
        var s = ""
        for p in Phase.allCases where calls[p.rawValue] > 0 {
            let ms = seconds[p.rawValue] / Double(steps) * 1000
            let name = "\(p)".padding(13)
            s += "  \(name) \(fmt(ms, 2)) ms/step  \(fmt(100 * seconds[p.rawValue] / total, 1))%\n"
        }
        s += "  total         \(fmt(total / Double(steps) * 1000, 2)) ms/step\n"
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
