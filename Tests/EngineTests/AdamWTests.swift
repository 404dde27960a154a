import Testing
@testable import Engine

@Suite struct AdamWTests {
    @Test func scheduleWarmupCosineFloor() {
        let s = LRSchedule(lr: 1e-3, minLR: 1e-4, warmupSteps: 10, totalSteps: 110)
        #expect(abs(s.rate(at: 0) - 1e-4) < 1e-12)
        #expect(abs(s.rate(at: 9) - 1e-3) < 1e-12)
        #expect(abs(s.rate(at: 10) - 1e-3) < 1e-12)
        #expect(abs(s.rate(at: 60) - 5.5e-4) < 1e-12)  // half-way down the cosine
        #expect(abs(s.rate(at: 110) - 1e-4) < 1e-12)
        #expect(abs(s.rate(at: 500) - 1e-4) < 1e-12)
        for k in 10..<110 { #expect(s.rate(at: k + 1) <= s.rate(at: k)) }
        #expect(LRSchedule.constant(0.5).rate(at: 1000) == 0.5)
        #expect(throws: EngineError.self) { try LRSchedule(lr: 1e-3, minLR: 1e-2, totalSteps: 5).validate() }
    }

    @Test func decayOnlyOnMatricesAndFrozenUntouched() throws {
        let m = try tinyModel(vocab: 11, batch: 1, seq: 3)
        m.zeroGrad()
        let before = m.params.storage.toArray()
        m.setTrainable(false) { $0.name == "gpt_neox.layers.1.attention.dense.weight" }
        let opt = AdamW(table: m.table, weightDecay: 0.1, maxGradNorm: 1)
        opt.update(params: m.params, grads: m.grads, trainable: m.trainable, lr: 0.5)
        for (k, info) in m.table.tensors.enumerated() {
            let now = Array(m.params.view(k)), was = Array(before[info.offset..<info.offset + info.count])
            if !m.trainable[k] { #expect(now == was) }
            else if info.decays { #expect(relError(now, was.map { $0 * 0.95 }) < 1e-6, "\(info.name)") }
            else { #expect(now == was, "\(info.name) decayed") }
        }
        #expect(opt.step == 1)
    }

    @Test func clippingScalesToMaxNorm() throws {
        let m = try tinyModel(vocab: 11, batch: 1, seq: 3)
        let g = m.grads.storage
        for i in 0..<g.count { g.ptr[i] = 1 }
        let n = AdamW.gradNorm(m.grads, trainable: m.trainable)
        #expect(abs(n - Double(g.count).squareRoot()) < 1e-6 * n)
    }
}
