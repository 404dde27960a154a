import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// A bigram model (logits = W[token]) implementing TrainableNetwork: enough to test the trainer's
/// state machine, schedule, clipping, NaN handling and resume without the transformer.
final class BigramNetwork: TrainableNetwork {
    let vocabSize: Int
    let maxPositions = 64
    var params: [Float]
    var grads: [Float]
    var poison = false
    let tensorTable: TensorTable
    let parameterBlock: UnsafeMutableBufferPointer<Float>
    let gradientBlock: UnsafeMutableBufferPointer<Float>
    var trainingFlopsPerToken: Double { Double(6 * vocabSize) }

    init(vocab: Int) {
        vocabSize = vocab
        params = [Float](repeating: 0, count: vocab * vocab)
        grads = params
        tensorTable = TensorTable([TensorEntry(name: "w", offset: 0, shape: [vocab, vocab])])
        parameterBlock = .allocate(capacity: vocab * vocab)
        parameterBlock.initialize(repeating: 0)
        gradientBlock = .allocate(capacity: vocab * vocab)
        gradientBlock.initialize(repeating: 0)
    }

    deinit { parameterBlock.deallocate(); gradientBlock.deallocate() }

    func lossAndGradients(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, rows: Int, width: Int) throws(EngineError) -> Float {
        for i in 0..<gradientBlock.count { gradientBlock[i] = 0 }
        var total: Double = 0, n = 0
        for p in 0..<(rows * width) where targets[p] >= 0 { n += 1; _ = p }
        for p in 0..<(rows * width) where targets[p] >= 0 {
            let row = Int(inputs[p]) * vocabSize
            var m = -Float.infinity
            for j in 0..<vocabSize { m = max(m, parameterBlock[row + j]) }
            var s: Float = 0
            for j in 0..<vocabSize { s += expf(parameterBlock[row + j] - m) }
            let t = Int(targets[p])
            total += Double(-(parameterBlock[row + t] - m - logf(s)))
            for j in 0..<vocabSize {
                let pj = expf(parameterBlock[row + j] - m) / s
                gradientBlock[row + j] += (pj - (j == t ? 1 : 0)) / Float(n)
            }
        }
        return poison ? .nan : Float(total / Double(n))
    }

    func logitsAtLast(tokens: UnsafePointer<Int32>, rows: Int, width: Int, lengths: [Int], out: UnsafeMutablePointer<Float>) throws(EngineError) {
        for r in 0..<rows {
            let row = Int(tokens[r * width + lengths[r] - 1]) * vocabSize
            for j in 0..<vocabSize { out[r * vocabSize + j] = parameterBlock[row + j] }
        }
    }
}

final class PlainAdam: BlockOptimizer {
    var stepCount = 0
    var firstMoment: [Float]
    var secondMoment: [Float]
    init(count: Int) { firstMoment = [Float](repeating: 0, count: count); secondMoment = firstMoment }
    func update(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Float,
                gradientScale: Float, trainable: [Bool]?) {
        stepCount += 1
        let b1: Float = 0.9, b2: Float = 0.999
        let c1 = 1 - powf(b1, Float(stepCount)), c2 = 1 - powf(b2, Float(stepCount))
        for i in 0..<parameters.count {
            let g = gradients[i] * gradientScale
            firstMoment[i] = b1 * firstMoment[i] + (1 - b1) * g
            secondMoment[i] = b2 * secondMoment[i] + (1 - b2) * g * g
            parameters[i] -= learningRate * (firstMoment[i] / c1) / ((secondMoment[i] / c2).squareRoot() + 1e-8)
        }
    }
}

@Suite struct TrainerTests {
    // Sequences "a b EOS": token 2+i followed by 8+((5i+1) % 6); the bigram model can learn them exactly.
    static func data() -> (tokens: [Int32], offsets: [Int64], eval: PromptSet) {
        var tokens: [Int32] = [], offsets: [Int64] = [0], prompts: [Int32] = [], pOff: [Int64] = [0], targets: [Int32] = []
        for i in 0..<6 {
            let a = Int32(2 + i), b = Int32(8 + (i * 5 + 1) % 6)
            tokens += [a, b, 0]; offsets.append(Int64(tokens.count))
            prompts.append(a); pOff.append(Int64(prompts.count)); targets.append(b)
        }
        return (tokens, offsets, PromptSet(name: "sro", prompts: prompts, offsets: pOff, targets: targets))
    }

    func makeTrainer(_ spec: TrainSpec) throws -> (BigramNetwork, Trainer) {
        let net = BigramNetwork(vocab: 16)
        let d = Self.data()
        let t = try Trainer(network: net, optimizer: PlainAdam(count: 256), spec: spec, tokens: d.tokens, offsets: d.offsets, evalSets: [d.eval])
        return (net, t)
    }

    @Test func learnsAndReportsEverything() throws {
        var spec = TrainSpec()
        spec.epochs = 60; spec.batchSize = 4; spec.learningRate = 0.1; spec.minLearningRate = 0.01; spec.evalEveryEpochs = 20
        spec.warmupSteps = 10
        let (_, t) = try makeTrainer(spec)
        #expect(t.totalSteps == 120)
        var reports: [StepReport] = []
        while let r = try t.step() { reports.append(r) }
        #expect(reports.count == 120)
        #expect(reports.last!.loss < reports.first!.loss)
        #expect(reports.filter(\.evaluated).count == 3)
        #expect(reports.last!.accuracy.first!.1 == 1.0)
        #expect(t.history.evalAccuracy.count == 3)
        // schedule: warm-up rises, then cosine decays to the floor
        #expect(abs(t.learningRate(at: t.totalSteps - 1) - 0.01) < 1e-3)
        #expect(t.learningRate(at: 0) < t.learningRate(at: 2))
    }

    @Test func resumeGivesIdenticalParameters() throws {
        var spec = TrainSpec()
        spec.epochs = 10; spec.batchSize = 4; spec.learningRate = 0.05; spec.evalEveryEpochs = 0
        let (a, ta) = try makeTrainer(spec)
        while try ta.step() != nil {}

        let (b, tb) = try makeTrainer(spec)
        for _ in 0..<7 { _ = try tb.step() }
        // "interrupt": copy weights, moments and position into a fresh trainer
        let (c, tc) = try makeTrainer(spec)
        for i in 0..<c.parameterBlock.count { c.parameterBlock[i] = b.parameterBlock[i] }
        tc.optimizer.firstMoment = tb.optimizer.firstMoment
        tc.optimizer.secondMoment = tb.optimizer.secondMoment
        tc.optimizer.stepCount = tb.optimizer.stepCount
        try tc.restore(state: tb.stateJSON().serialized(), history: tb.history)
        while try tc.step() != nil {}
        #expect(Array(a.parameterBlock) == Array(c.parameterBlock))
        #expect(tc.history.loss == ta.history.loss)
    }

    @Test func globalNormClippingReachesTheOptimizer() throws {
        final class Spy: BlockOptimizer {
            var stepCount = 0, firstMoment: [Float] = [], secondMoment: [Float] = [], scales: [Float] = []
            func update(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Float,
                        gradientScale: Float, trainable: [Bool]?) { scales.append(gradientScale) }
        }
        var spec = TrainSpec()
        spec.epochs = 1; spec.batchSize = 6; spec.gradClip = 1e-3
        let d = Self.data()
        let spy = Spy()
        let t = try Trainer(network: BigramNetwork(vocab: 16), optimizer: spy, spec: spec, tokens: d.tokens, offsets: d.offsets, evalSets: [])
        let r = try #require(try t.step())
        #expect(abs(spy.scales[0] - Float(1e-3) / r.gradNorm) < 1e-6)
        spec.gradClip = 0  // off: the gradients pass unscaled
        let spy2 = Spy()
        let t2 = try Trainer(network: BigramNetwork(vocab: 16), optimizer: spy2, spec: spec, tokens: d.tokens, offsets: d.offsets, evalSets: [])
        _ = try t2.step()
        #expect(spy2.scales == [1])
    }

    @Test func blockAdamWAppliesTheGradientScale() {
        let table = TensorTable([TensorEntry(name: "w", offset: 0, shape: [2, 2])])
        var spec = TrainSpec(); spec.eps = 0.5; spec.weightDecay = 0
        let g: [Float] = [1, -2, 3, 4], half = g.map { $0 * 0.5 }
        var p1: [Float] = [0, 0, 0, 0], p2 = p1
        let a = AdamW(table: table, blockSize: 4, spec: spec), b = AdamW(table: table, blockSize: 4, spec: spec)
        p1.withUnsafeMutableBufferPointer { p in g.withUnsafeBufferPointer { a.update(parameters: p, gradients: $0, learningRate: 0.1, gradientScale: 0.5, trainable: nil) } }
        p2.withUnsafeMutableBufferPointer { p in half.withUnsafeBufferPointer { b.update(parameters: p, gradients: $0, learningRate: 0.1, gradientScale: 1, trainable: nil) } }
        #expect(p1 == p2)
        #expect(p1 != [0, 0, 0, 0])
    }

    @Test func nanLossStopsWithNumericStatus() throws {
        var spec = TrainSpec()
        spec.epochs = 2; spec.batchSize = 4
        let (net, t) = try makeTrainer(spec)
        _ = try t.step()
        net.poison = true
        do { _ = try t.step(); Issue.record("expected a numeric error") } catch {
            #expect(error.status == .numeric)
        }
    }

    @Test func badSpecsAreClearErrors() {
        #expect(throws: EngineError.self) { _ = try TrainSpec(json: #"{"learning_rate": -1}"#) }
        #expect(throws: EngineError.self) { _ = try TrainSpec(json: #"{"epochs": 0}"#) }
        #expect(throws: EngineError.self) { _ = try TrainSpec(json: #"{"lr": 0.1}"#) }
        #expect(throws: EngineError.self) { _ = try TrainSpec(json: #"{"learning_rate": 0.001, "min_learning_rate": 0.01}"#) }
    }
}
