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
        hooks.add(.mlpOutput, layer: 0) { (v: ActivationView) throws(EngineError) in try v.row(1, pos).update(repeating: 0) }
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
        try m.captureGradients(at: [point, HookPoint(.mlpHidden, layer: 1), HookPoint(.embeddings)])
        let tokens = randomTokens(b * t, vocab: vocab, seed: 9)
        var targets = [Int32](repeating: -100, count: b * t)
        targets[1 * t + 4] = 7  // one target, as ROME's objective
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        #expect(m.grads.storage.toArray().allSatisfy { $0 == 0 }, "frozen model got parameter gradients")
        let g = try m.activationGradient(at: point)!.rowArray(1, 2)
        #expect(m.activationGradient(at: HookPoint(.mlpHidden, layer: 1))!.width == 32)
        // positions after the target cannot influence it
        #expect(try m.activationGradient(at: point)!.rowArray(1, 5).allSatisfy { $0 == 0 })
        #expect(try m.activationGradient(at: point)!.rowArray(0, 2).allSatisfy { $0 == 0 })
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

    @Test func finalNormGradientMatchesFiniteDifferenceOfADelta() throws {
        // the final LayerNorm's output (what the unembedding reads), with the model frozen
        let m = try tinyModel(vocab: vocab, batch: b, seq: t, seed: 13)
        m.setTrainable(false) { _ in true }
        let point = HookPoint(.finalNorm)
        try m.captureGradients(at: [point])
        let tokens = randomTokens(b * t, vocab: vocab, seed: 14)
        let targets = randomTokens(b * t, vocab: vocab, seed: 15)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        let g = try m.activationGradient(at: point)!.rowArray(1, 3)
        #expect(g.contains { $0 != 0 })
        let eps: Float = 1e-2
        for j in [0, 6, 15] {
            var delta = [Float](repeating: 0, count: 16)
            delta[j] = eps
            let hp = ForwardHooks(); hp.addDelta(.finalNorm, at: [(1, 3)], delta: delta)
            let lp = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, hooks: hp)
            delta[j] = -eps
            let hm = ForwardHooks(); hm.addDelta(.finalNorm, at: [(1, 3)], delta: delta)
            let lm = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, hooks: hm)
            let fd = (lp - lm) / (2 * eps)
            #expect(abs(fd - g[j]) <= 0.02 * abs(g[j]) + 3e-4, "d loss/d final_norm[\(j)]: fd \(fd) vs \(g[j])")
        }
        // a block that does not exist is refused, for captures and injections alike
        #expect(throws: EngineError.self) { try m.captureGradients(at: [HookPoint(.mlpOutput, layer: 2)]) }
        #expect(throws: EngineError.self) { try m.backward(injecting: [HookPoint(.blockInput, layer: -1): []]) }
    }

    @Test func aModelRebuiltLargerKeepsItsGradientCaptures() throws {
        let lm = try LanguageModel(config: try ModelConfig.named("tiny", vocabSize: 90), batch: 2, seq: 8)
        try lm.net.captureGradients(at: [HookPoint(.finalNorm), HookPoint(.mlpHidden, layer: 1)])
        try lm.ensureCapacity(batch: 4, seq: 16)
        #expect(Set(lm.net.capturedPoints) == [HookPoint(.finalNorm), HookPoint(.mlpHidden, layer: 1)])
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

/// Hooks and recorders over runs larger than one chunk: global rows, errors instead of traps.
@Suite struct HooksAtScaleTests {
    func run(_ m: LanguageModel, _ tokens: [Int32], rows: Int, width: Int, hooks: ForwardHooks?) throws -> [Float] {
        var out = [Float](repeating: 0, count: rows * width * m.vocabSize)
        try tokens.withUnsafeBufferPointer { t in try out.withUnsafeMutableBufferPointer { o in
            try m.logits(tokens: t.baseAddress!, rows: rows, width: width, out: o.baseAddress!, hooks: hooks)
        } }
        return out
    }

    @Test func recordingAndPatchingAcrossChunks() throws {
        let (ds, m) = try TinyRun.trained()
        let rows = 3 * m.net.maxBatch + 5, width = 8
        let tokens = (0..<(rows * width)).map { ds.tokens[$0 % ds.tokens.count] }
        let store = ActivationStore(), moments = SecondMomentRecorder()
        let lengths = (0..<rows).map { ($0 * 7) % (width + 1) }, masked = SecondMomentRecorder(lengths: lengths)
        let rec = ForwardHooks()
        for site in [HookSite.mlpHidden, .blockOutput] { rec.record(site, layer: 1, into: store) }
        rec.record(.finalNorm, into: store)
        rec.record(.mlpHidden, layer: 1, into: moments)
        rec.record(.mlpHidden, layer: 1, into: masked)
        let clean = try run(m, tokens, rows: rows, width: width, hooks: rec)
        let key = HookPoint(.mlpHidden, layer: 1)
        #expect(store.shapes[key] == [rows, width, m.config.intermediate])
        #expect(store.shapes[HookPoint(.finalNorm)] == [rows, width, m.config.hidden])
        // Every row as recorded equals a forward pass of that row alone.
        for r in [0, 1, m.net.maxBatch, rows - 1] {
            let one = ForwardHooks(), single = ActivationStore()
            one.record(.mlpHidden, layer: 1, into: single)
            _ = try run(m, Array(tokens[(r * width)..<((r + 1) * width)]), rows: 1, width: width, hooks: one)
            let w = width * m.config.intermediate
            let recorded = store.values[key]![(r * w)..<((r + 1) * w)]
            #expect(zip(recorded, single.values[key]!).allSatisfy { abs($0 - $1) <= 1e-5 }, "row \(r)")
        }
        // Patching the run with its own recording changes nothing, in every chunk.
        let patch = ForwardHooks()
        patch.patch(.blockOutput, layer: 1, from: store[.blockOutput, layer: 1]!)
        #expect(try run(m, tokens, rows: rows, width: width, hooks: patch) == clean)
        // An overwrite in a later chunk changes that row only.
        let late = rows - 2
        let hooks = ForwardHooks()
        try hooks.overwrite(.finalNorm, at: [(late, 3)], with: [[Float](repeating: 0, count: m.config.hidden)])
        let hooked = try run(m, tokens, rows: rows, width: width, hooks: hooks)
        let V = m.vocabSize, rowSize = width * V
        for r in 0..<rows { #expect((Array(hooked[(r * rowSize)..<((r + 1) * rowSize)]) == Array(clean[(r * rowSize)..<((r + 1) * rowSize)])) == (r != late)) }
        // Second moments equal a float64 reference computed from the recording.
        let h = store.values[key]!, I = m.config.intermediate, n = rows * width
        let got = try #require(moments.moment(key))
        var worst = 0.0
        for i in stride(from: 0, to: I, by: 7) {
            for j in stride(from: 0, to: I, by: 5) {
                var s = 0.0
                for k in 0..<n { s += Double(h[k * I + i]) * Double(h[k * I + j]) }
                worst = max(worst, abs(got[i * I + j] - s / Double(n)) / max(1e-3, abs(s / Double(n))))
            }
        }
        #expect(worst < 1e-4, "second moments: worst relative difference \(worst)")
        // With lengths, only each row's first lengths[r] tokens count (padding left out).
        let gotMasked = try #require(masked.moment(key))
        let kept = (0..<n).filter { ($0 % width) < lengths[$0 / width] }
        #expect(masked.counts[key] == kept.count)
        worst = 0
        for i in stride(from: 0, to: I, by: 7) {
            for j in stride(from: 0, to: I, by: 5) {
                var s = 0.0
                for k in kept { s += Double(h[k * I + i]) * Double(h[k * I + j]) }
                worst = max(worst, abs(gotMasked[i * I + j] - s / Double(kept.count)) / max(1e-3, abs(s / Double(kept.count))))
            }
        }
        #expect(worst < 1e-4, "masked second moments: worst relative difference \(worst)")
        #expect(gotMasked != got)
        // Too few lengths for the run is an error, not a read past the end.
        let short = ForwardHooks()
        short.record(.mlpHidden, layer: 1, into: SecondMomentRecorder(lengths: [1, 2]))
        #expect(throws: EngineError.self) { _ = try run(m, tokens, rows: rows, width: width, hooks: short) }
    }

    @Test func badHooksAreErrorsBeforeTheRun() throws {
        let (ds, m) = try TinyRun.trained()
        let tokens = Array(ds.tokens[0..<(10 * 4)])
        func expectInvalid(_ needle: String, _ hooks: ForwardHooks) {
            do { _ = try run(m, tokens, rows: 10, width: 4, hooks: hooks); Issue.record("ran with a bad hook: \(needle)") } catch let e as EngineError {
                #expect(e.status == .invalid && e.message.contains(needle), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
        let row = ForwardHooks(); row.addDelta(.mlpOutput, layer: 0, at: [(10, 0)], delta: [Float](repeating: 1, count: m.config.hidden))
        expectInvalid("position (row 10, token 0) is outside the run of 10 rows", row)
        let layer = ForwardHooks(); layer.record(.blockOutput, layer: 5, into: ActivationStore())
        expectInvalid("block 5, but the model has 2 blocks", layer)
        let width = ForwardHooks(); width.addDelta(.mlpHidden, layer: 1, at: [(2, 1)], delta: [1, 2, 3])
        expectInvalid("a delta of 3 values for a site of width", width)
        let patch = ForwardHooks(); patch.patch(.embeddings, from: [1, 2])
        expectInvalid("the patch holds 2 values", patch)
        #expect(throws: EngineError.self) { try ForwardHooks().overwrite(.finalNorm, at: [(0, 0)], with: []) }
    }
}
