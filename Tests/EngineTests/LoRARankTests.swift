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

    @Test func loraGradientsMatchFiniteDifferences() throws {
        // L = Σ G ⊙ W_eff for a fixed G: ∂L/∂W = G, so gA, gB must equal finite differences of L.
        var rng = RNG(seed: 2)
        var lora = try LoRAAdapter(target: TensorEntry(name: "w", offset: 0, shape: [5, 4]), rank: 2, alpha: 4, rng: &rng)
        lora.b = (0..<10).map { _ in Float(rng.normal()) }
        let g = (0..<20).map { _ in Float(rng.normal()) }
        var gA = [Float](repeating: 0, count: 8), gB = [Float](repeating: 0, count: 10)
        lora.gradients(weightGradient: g, gA: &gA, gB: &gB)
        func loss(_ l: LoRAAdapter) -> Double { zip(l.delta(), g).reduce(0.0) { $0 + Double($1.0 * $1.1) } }
        let h: Float = 1e-2
        for i in 0..<8 {
            var p = lora, m = lora
            p.a[i] += h; m.a[i] -= h
            #expect(abs((loss(p) - loss(m)) / Double(2 * h) - Double(gA[i])) < 1e-2)
        }
        for i in 0..<10 {
            var p = lora, m = lora
            p.b[i] += h; m.b[i] -= h
            #expect(abs((loss(p) - loss(m)) / Double(2 * h) - Double(gB[i])) < 1e-2)
        }
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
