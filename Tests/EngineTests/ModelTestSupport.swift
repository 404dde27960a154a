import Testing
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

/// `llama`: the llama architecture (sequential residual) with `kvHeads` key/value heads and tied or untied embeddings.
func tinyModel(vocab: Int = 23, layers: Int = 2, hidden: Int = 16, heads: Int = 2, intermediate: Int = 32,
               rotary: Double = 0.5, parallel: Bool = true, initRange: Double = 0.3, batch: Int = 3, seq: Int = 5,
               seed: UInt64 = 5, llama: Bool = false, kvHeads: Int = 0, tied: Bool = false) throws -> GPTNeoX {
    var c = ModelConfig.preset("tiny")!
    if llama { c = c.asLlama(kvHeads: kvHeads); c.tieEmbeddings = tied }
    c.vocabSize = vocab; c.layers = layers; c.hidden = hidden; c.heads = heads; c.intermediate = intermediate
    c.rotaryPct = rotary; c.parallelResidual = parallel && !llama; c.initRange = initRange; c.seed = seed
    let m = try GPTNeoX(config: c, maxBatch: batch, maxSeq: seq)
    // non-trivial biases and norm parameters
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

/// Central finite differences against the backward pass on three coordinates of every tensor (the
/// two largest gradients and a random one), float32 with eps = 1e-2; the tolerance is tight enough
/// that a gradient off by 10% fails (checked on the largest). Returns the worst relative difference.
@discardableResult
func checkGradientsByFiniteDifferences(_ m: GPTNeoX, tokens: [Int32], targets: [Int32], batch b: Int, seq t: Int) throws -> Double {
    _ = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
    m.zeroGrad()
    try m.backward()
    let eps: Float = 1e-2
    var rng = RNG(seed: 17)
    var worst = 0.0
    for (k, info) in m.table.tensors.enumerated() {
        let g = Array(m.grads.view(k)), p = m.params.view(k)
        let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
        for (n, i) in [order[0], order[1], rng.below(g.count)].enumerated() {
            let saved = p[i]
            p[i] = saved + eps
            let lp = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
            p[i] = saved - eps
            let lm = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
            p[i] = saved
            let fd = Double(lp - lm) / Double(2 * eps), an = Double(g[i])
            let tol = 0.02 * abs(an) + 3e-4
            #expect(abs(fd - an) <= tol, "\(info.name)[\(i)]: finite difference \(fd) vs backward \(an)")
            // a 10% error in the largest gradient would fail the same test
            if n == 0 { #expect(0.1 * abs(an) > tol, "\(info.name): gradient \(an) too small to prove anything") }
            worst = max(worst, abs(fd - an) / max(abs(an), 1e-6))
        }
    }
    return worst
}
