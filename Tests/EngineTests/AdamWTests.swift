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
        let entries = m.table.tensors
        var spec = TrainSpec()
        spec.weightDecay = 0.1
        let opt = AdamW(table: entries, blockSize: m.params.storage.count, spec: spec)
        opt.update(parameters: UnsafeMutableBufferPointer(start: m.params.storage.ptr, count: m.params.storage.count),
                   gradients: UnsafeBufferPointer(start: m.grads.storage.ptr, count: m.grads.storage.count),
                   learningRate: 0.5, gradientScale: 1, trainable: m.trainable)
        for (k, info) in m.table.tensors.enumerated() {
            let now = Array(m.params.view(k)), was = Array(before[info.offset..<info.offset + info.count])
            if !m.trainable[k] { #expect(now == was) }
            else if info.decays { #expect(relError(now, was.map { $0 * 0.95 }) < 1e-6, "\(info.name)") }
            else { #expect(now == was, "\(info.name) decayed") }
        }
        #expect(opt.stepCount == 1)
    }

    @Test func clippingScalesToMaxNorm() throws {
        let m = try tinyModel(vocab: 11, batch: 1, seq: 3)
        let g = m.grads.storage
        for i in 0..<g.count { g.ptr[i] = 1 }
        let entries = m.table.tensors
        let n = AdamW.globalNorm(UnsafeBufferPointer(start: g.ptr, count: g.count), table: entries, trainable: m.trainable)
        #expect(abs(Double(n) - Double(g.count).squareRoot()) < 1e-6 * Double(n))
        #expect(AdamW.clipScale(norm: n, maxNorm: 1) == Float(1 / (Double(n) + 1e-6)))
        #expect(AdamW.clipScale(norm: 0.5, maxNorm: 1) == 1 && AdamW.clipScale(norm: n, maxNorm: 0) == 1)
    }
}

/// One tensor table type: the model's table looks names up in O(1), and an entry made from a name
/// alone (a checkpoint's or a wrapper's) has the kind and block the model's layout gives it.
@Suite struct TensorTableTests {
    @Test func lookupAndDerivedKinds() throws {
        let t = ParameterTable(config: try ModelConfig.named("tiny", vocabSize: 50)).tensors
        #expect(t.count == 4 + 12 * 2)
        for (k, e) in t.enumerated() {
            #expect(t[e.name] == e && t.position(of: e.name) == k)
            let plain = TensorEntry(name: e.name, offset: e.offset, shape: e.shape)
            #expect(plain.kind == e.kind && plain.layer == e.layer, "\(e.name)")
        }
        #expect(t["nope"] == nil && !t.contains(name: "nope"))
        #expect(t.blockSize == t.map { $0.offset + $0.count }.max())
    }
}
