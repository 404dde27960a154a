import Testing
@testable import Engine

@Suite struct LoRARankTests {
    @Test func loraDeltaHasRankAtMostR() throws {
        var rng = RNG(seed: 1)
        var lora = try LoRAAdapter(target: TensorEntry(name: "w", offset: 0, shape: [40, 24]), rank: 3, alpha: 6, rng: &rng)
        #expect(lora.delta().allSatisfy { $0 == 0 })  // B starts at zero
        lora.b = (0..<(40 * 3)).map { _ in Float(rng.normal()) }
        let d = lora.delta()
        let r = try d.withUnsafeBufferPointer { try analyseRank($0, rows: 40, cols: 24) }
        #expect(r.numericalRank == 3)
        #expect(r.singularValues.count == 24)
        #expect(r.effectiveRank <= 3.0001)
    }

    /// LoRA as a side path of the model: the gradients of A and B (two blocks, so the upper block's
    /// share of dx reaches the lower one) match central differences of the loss, with and without dropout.
    @Test(arguments: [0.0, 0.3]) func nativeLoRAGradientsMatchFiniteDifferences(dropout: Double) throws {
        var cfg = try ModelConfig.named("tiny", vocabSize: 40)
        cfg.layers = 2; cfg.hidden = 16; cfg.heads = 2; cfg.intermediate = 32; cfg.seed = 4
        let m = try LanguageModel(config: cfg)
        let names = ["gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "gpt_neox.layers.1.attention.query_key_value.weight",
                     "gpt_neox.layers.0.attention.dense.weight", "gpt_neox.layers.1.mlp.dense_h_to_4h.weight"]
        let lora = try LoRANetwork(base: m, names: names, rank: 3, alpha: 6, dropout: dropout, seed: 9)
        var rng = RNG(seed: 11)
        for i in 0..<lora.parameterBlock.count { lora.parameterBlock[i] = Float(rng.normal() * 0.3) }  // B ≠ 0
        let tokens: [Int32] = (0..<12).map { _ in Int32(rng.below(40)) }
        var targets: [Int32] = (0..<12).map { _ in Int32(rng.below(40)) }
        targets[5] = -1
        func loss() throws -> Double {
            lora.rng = RNG(seed: 77, stream: "lora dropout")  // the same dropout masks every call
            return Double(try lora.lossAndGradients(inputs: tokens, targets: targets, rows: 2, width: 6))
        }
        _ = try loss()
        let grads = Array(lora.gradientBlock)
        for e in lora.tensorTable {
            for j in [0, e.count / 2, e.count - 1] {
                let i = e.offset + j, saved = lora.parameterBlock[i], h: Float = 1e-2
                lora.parameterBlock[i] = saved + h; let up = try loss()
                lora.parameterBlock[i] = saved - h; let down = try loss()
                lora.parameterBlock[i] = saved
                let fd = (up - down) / Double(2 * h)
                #expect(abs(fd - Double(grads[i])) <= 0.03 * abs(fd) + 2e-3, "\(e.name)[\(j)]: fd \(fd) vs \(grads[i])")
            }
        }
        // Merged, the model computes what the side path computed (no dropout at evaluation).
        lora.training = false
        var a = [Float](repeating: 0, count: 2 * 40), b = a
        try lora.logitsAtLast(tokens: tokens, rows: 2, width: 6, lengths: [6, 6], out: &a)
        lora.merge()
        try m.logitsAtLast(tokens: tokens, rows: 2, width: 6, lengths: [6, 6], out: &b)
        for i in 0..<a.count { #expect(abs(a[i] - b[i]) < 1e-4) }
    }

    @Test func rankZeroOrTooLargeIsAnError() {
        var rng = RNG(seed: 3)
        #expect(throws: EngineError.self) { _ = try LoRAAdapter(target: TensorEntry(name: "w", offset: 0, shape: [5, 4]), rank: 0, alpha: 1, rng: &rng) }
        #expect(throws: EngineError.self) { _ = try LoRAAdapter(target: TensorEntry(name: "w", offset: 0, shape: [5, 4]), rank: 5, alpha: 1, rng: &rng) }
    }

    @Test func effectiveRankOfIdentityIsFull() throws {
        var eye = [Float](repeating: 0, count: 36)
        for i in 0..<6 { eye[i * 6 + i] = 1 }
        let r = try eye.withUnsafeBufferPointer { try analyseRank($0, rows: 6, cols: 6) }
        #expect(abs(r.effectiveRank - 6) < 1e-4)
        #expect(r.energyRank99 == 6)
    }
}
