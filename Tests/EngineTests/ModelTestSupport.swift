@testable import Engine

enum Fixture {
    static var dir: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)  // EngineTests/this file
        return parts.joined(separator: "/") + "/Fixtures/parity"
    }
    static func path(_ name: String) -> String { dir + "/" + name }
}

/// max |a − b| / max |b| (0 when both are all zero).
func relError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "sizes \(a.count) vs \(b.count)")
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        num = max(num, Double(abs(a[i] - b[i])))
        den = max(den, Double(abs(b[i])))
    }
    return den == 0 ? num : num / den
}

func tinyModel(vocab: Int = 23, layers: Int = 2, hidden: Int = 16, heads: Int = 2, intermediate: Int = 32,
               rotary: Double = 0.5, parallel: Bool = true, initRange: Double = 0.3, batch: Int = 3, seq: Int = 5,
               seed: UInt64 = 5) throws -> GPTNeoX {
    var c = ModelConfig.preset("tiny")!
    c.vocabSize = vocab; c.layers = layers; c.hidden = hidden; c.heads = heads; c.intermediate = intermediate
    c.rotaryPct = rotary; c.parallelResidual = parallel; c.initRange = initRange; c.seed = seed
    let m = try GPTNeoX(config: c, maxBatch: batch, maxSeq: seq)
    // non-trivial biases and LayerNorm parameters
    var rng = RNG(seed: seed &+ 99)
    for (k, t) in m.table.tensors.enumerated() where t.shape.count == 1 {
        let p = m.params.view(k)
        for j in 0..<p.count { p[j] += Float(rng.normal() * 0.2) }
    }
    return m
}

func randomTokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
    var r = RNG(seed: seed)
    return (0..<n).map { _ in Int32(r.below(vocab)) }
}
