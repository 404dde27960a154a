import Testing
@testable import Engine

@Suite struct BatcherTests {
    @Test func everySequenceOncePerEpochAndDeterministic() throws {
        // 5 sequences of lengths 3..7, tokens numbered so each sequence is recognisable by its first token.
        var tokens: [Int32] = [], offsets: [Int64] = [0]
        for s in 0..<5 { for t in 0..<(s + 3) { tokens.append(Int32(100 * s + t + 10)) }; offsets.append(Int64(tokens.count)) }
        var b = try SequenceBatcher(tokens: tokens, offsets: offsets, batchSize: 2, seed: 3, maxWidth: 16)
        #expect(b.width == 6)
        #expect(b.batchesPerEpoch == 3)
        var inputs = [Int32](repeating: 0, count: 2 * b.width), targets = inputs
        var firsts: [Int32] = []
        for i in 0..<3 {
            let rows = b.fill(epoch: 0, index: i, inputs: &inputs, targets: &targets)
            for r in 0..<rows {
                firsts.append(inputs[r * b.width])
                let s = Int(inputs[r * b.width] - 10) / 100
                // targets are the inputs shifted by one; padding is ignored (-1)
                for t in 0..<b.width {
                    if t < s + 2 { #expect(targets[r * b.width + t] == inputs[r * b.width + t] + 1) } else { #expect(targets[r * b.width + t] == -1) }
                }
            }
        }
        #expect(firsts.sorted() == [10, 110, 210, 310, 410])
        var b2 = try SequenceBatcher(tokens: tokens, offsets: offsets, batchSize: 2, seed: 3, maxWidth: 16)
        var in2 = inputs
        b2.fill(epoch: 0, index: 0, inputs: &in2, targets: &targets)
        b.fill(epoch: 0, index: 0, inputs: &inputs, targets: &targets)
        #expect(in2 == inputs)
        #expect(throws: EngineError.self) { _ = try SequenceBatcher(tokens: tokens, offsets: offsets, batchSize: 2, seed: 3, maxWidth: 4) }
    }
}

@Suite struct PromptEvaluationTests {
    @Test func accuracyProbabilityAndRankAreExact() throws {
        // Two prompts of lengths 2 and 3; a fake model whose logits favour token (last prompt token + 1).
        let set = PromptSet(name: "g", prompts: [1, 2, 3, 4, 5], offsets: [0, 2, 5], targets: [3, 0], relations: [0, 1])
        let vocab = 8
        let r = try evaluatePrompts(set, vocab: vocab, batchSize: 4) { (tokens, rows, width, lengths, out) throws(EngineError) in
            for row in 0..<rows {
                let last = Int(tokens[row * width + lengths[row] - 1])
                for j in 0..<vocab { out[row * vocab + j] = j == last + 1 ? 2 : (j == 0 ? 1 : 0) }
            }
        }
        #expect(r.correct == [1, 0])
        #expect(r.targetRank == [1, 2])
        let z = 2.7182817 * 2.7182817 + 2.7182817 + 6
        #expect(abs(r.targetProbability[0] - Float(2.7182817 * 2.7182817 / z)) < 1e-5)
        #expect(r.accuracy == 0.5)
        #expect(r.perRelation().map(\.accuracy) == [1.0, 0.0])
    }
}

@Suite struct CapacitySearchTests {
    @Test func findsTheLargestPassingCount() throws {
        var spec = CapacitySearchSpec()
        spec.minSubjects = 10; spec.maxSubjects = 10_000; spec.relativeTolerance = 0.01; spec.maxProbes = 30
        let r = try capacitySearch(spec) { (s: Int) throws(EngineError) in (s <= 777 ? 0.99 : 0.5, .null) }
        #expect(r.bestSubjects! <= 777)
        #expect(r.bestSubjects! >= 770)
        #expect(r.probes.count > 3)
        let none = try capacitySearch(spec) { (_: Int) throws(EngineError) in (0.1, .null) }
        #expect(none.bestSubjects == nil)
    }
}
