import Testing
@testable import Engine

@Suite struct ModelHookTests {
    let b = 2, t = 6, vocab = 31

    @Test func patchingCleanBlockOutputsChangesNothing() throws {
        let m = try tinyModel(vocab: vocab, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 1)
        let store = ActivationStore()
        let rec = ForwardHooks()
        for l in 0..<2 { rec.record(.blockOutput, layer: l, into: store); rec.record(.mlpHidden, layer: l, into: store) }
        rec.record(.embeddings, into: store)
        try m.forward(tokens: tokens, batch: b, seq: t, hooks: rec)
        let clean = Array(m.logits)
        #expect(store[.blockOutput, layer: 1]!.count == b * t * 16)
        #expect(store[.mlpHidden, layer: 0]!.count == b * t * 32)
        let patch = ForwardHooks()
        for l in 0..<2 { patch.patch(.blockOutput, layer: l, from: store[.blockOutput, layer: l]!) }
        patch.patch(.embeddings, from: store[.embeddings, layer: 0]!)
        try m.forward(tokens: tokens, batch: b, seq: t, hooks: patch)
        #expect(Array(m.logits) == clean)
        // and patching from a different input does change the output
        let other = randomTokens(b * t, vocab: vocab, seed: 2)
        try m.forward(tokens: other, batch: b, seq: t, hooks: patch)
        let patched = Array(m.logits)
        try m.forward(tokens: other, batch: b, seq: t)
        #expect(patched != Array(m.logits))
        // block 1's output patched in fully determines the logits
        #expect(patched == clean)
    }

    @Test(arguments: [true, false])
    func zeroingAnMLPOutputChangesOnlyThatAndLaterPositions(parallel: Bool) throws {
        let m = try tinyModel(vocab: vocab, parallel: parallel, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 5)
        try m.forward(tokens: tokens, batch: b, seq: t)
        let clean = Array(m.logits)
        let hooks = ForwardHooks()
        let pos = 3
        hooks.add(.mlpOutput, layer: 0) { v in v.row(1, pos).update(repeating: 0) }
        try m.forward(tokens: tokens, batch: b, seq: t, hooks: hooks)
        let hooked = Array(m.logits)
        for bi in 0..<b {
            for ti in 0..<t {
                let r = (bi * t + ti) * vocab
                let same = Array(hooked[r..<r + vocab]) == Array(clean[r..<r + vocab])
                if bi == 1 && ti >= pos { #expect(!same, "position (\(bi), \(ti)) should change") } else { #expect(same, "position (\(bi), \(ti)) changed") }
            }
        }
    }

    @Test func activationGradientMatchesFiniteDifferenceOfADelta() throws {
        // ROME's pattern: a vector added at an MLP output, its gradient from the backward pass.
        let m = try tinyModel(vocab: vocab, batch: b, seq: t, seed: 8)
        m.setTrainable(false) { _ in true }
        let point = HookPoint(.mlpOutput, layer: 0)
        m.captureGradients(at: [point, HookPoint(.mlpHidden, layer: 1), HookPoint(.embeddings)])
        let tokens = randomTokens(b * t, vocab: vocab, seed: 9)
        var targets = [Int32](repeating: -100, count: b * t)
        targets[1 * t + 4] = 7  // one target, as ROME's objective
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        #expect(m.grads.storage.toArray().allSatisfy { $0 == 0 }, "frozen model got parameter gradients")
        let g = m.activationGradient(at: point)!.rowArray(1, 2)
        #expect(m.activationGradient(at: HookPoint(.mlpHidden, layer: 1))!.width == 32)
        // positions after the target cannot influence it
        #expect(m.activationGradient(at: point)!.rowArray(1, 5).allSatisfy { $0 == 0 })
        #expect(m.activationGradient(at: point)!.rowArray(0, 2).allSatisfy { $0 == 0 })
        let eps: Float = 1e-2
        for j in [0, 5, 11] {
            var delta = [Float](repeating: 0, count: 16)
            delta[j] = eps
            let hp = ForwardHooks(); hp.addDelta(.mlpOutput, layer: 0, at: [(1, 2)], delta: delta)
            let lp = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, hooks: hp)
            delta[j] = -eps
            let hm = ForwardHooks(); hm.addDelta(.mlpOutput, layer: 0, at: [(1, 2)], delta: delta)
            let lm = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, hooks: hm)
            let fd = (lp - lm) / (2 * eps)
            #expect(abs(fd - g[j]) <= 0.02 * abs(g[j]) + 3e-4, "d loss/d mlp_out[\(j)]: fd \(fd) vs \(g[j])")
        }
    }

    @Test func freezingSkipsGradientsAndKeepsTheRest() throws {
        let m = try tinyModel(vocab: vocab, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 11)
        let targets = randomTokens(b * t, vocab: vocab, seed: 12)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        let full = m.grads.storage.toArray()
        m.trainOnly(layers: [1], parts: ["mlp."])
        #expect(m.trainable.filter { $0 }.count == 4)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        for (k, info) in m.table.tensors.enumerated() {
            let g = Array(m.grads.view(k))
            if m.trainable[k] {
                let ref = Array(full[info.offset..<info.offset + info.count])
                #expect(relError(g, ref) < 1e-6, "\(info.name)")
            } else {
                #expect(g.allSatisfy { $0 == 0 }, "\(info.name) is frozen but got a gradient")
            }
        }
        // only layer-0 attention trainable: gradient still flows down through layer 1
        m.trainOnly(layers: [0], parts: ["attention.", "input_layernorm"])
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        for (k, info) in m.table.tensors.enumerated() where m.trainable[k] {
            #expect(relError(Array(m.grads.view(k)), Array(full[info.offset..<info.offset + info.count])) < 1e-5, "\(info.name)")
        }
    }
}
