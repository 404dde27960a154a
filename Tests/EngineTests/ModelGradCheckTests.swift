import Testing
@testable import Engine

/// Central finite differences against the hand-written backward pass on a few coordinates of every
/// tensor. float32 with eps = 1e-2 on a small model with large init (so gradients are well above the
/// float noise); the tolerance is tight enough that a gradient off by 10% fails (checked below).
@Suite struct ModelGradCheckTests {
    func check(parallel: Bool) throws {
        let b = 3, t = 5, vocab = 23
        let m = try tinyModel(vocab: vocab, parallel: parallel, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 3)
        var targets = randomTokens(b * t, vocab: vocab, seed: 4)
        targets[7] = -100; targets[14] = -1
        _ = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        let eps: Float = 1e-2
        var rng = RNG(seed: 17)
        var checked = 0, worst = 0.0
        for (k, info) in m.table.tensors.enumerated() {
            let g = Array(m.grads.view(k))
            let p = m.params.view(k)
            // the two largest-gradient coordinates and one random one
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            for (n, i) in [order[0], order[1], rng.below(g.count)].enumerated() {
                let saved = p[i]
                p[i] = saved + eps
                let lp = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
                p[i] = saved - eps
                let lm = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
                p[i] = saved
                let fd = Double(lp - lm) / Double(2 * eps)
                let an = Double(g[i])
                let tol = 0.02 * abs(an) + 3e-4
                #expect(abs(fd - an) <= tol, "\(info.name)[\(i)]: finite difference \(fd) vs backward \(an)")
                if n == 0 {
                    // a 10% error in this gradient would fail the same test
                    #expect(0.1 * abs(an) > tol, "\(info.name): gradient \(an) too small to prove anything")
                }
                worst = max(worst, abs(fd - an) / max(abs(an), 1e-6))
                checked += 1
            }
        }
        print("gradcheck parallel=\(parallel): \(checked) coordinates, worst relative diff \(worst)")
    }

    @Test func parallelResidual() throws { try check(parallel: true) }
    @Test func sequentialResidual() throws { try check(parallel: false) }
}
