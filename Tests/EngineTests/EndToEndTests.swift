import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// The tiny preset end to end: generate, train to 100%, save/load, resume, edit.
enum TinyRun {
    static func dataset() throws -> Dataset { try Dataset.generate(specJSON: #"{"preset": "tiny", "seed": 1}"#) }

    static func model(_ ds: Dataset, seed: UInt64 = 1) throws -> LanguageModel {
        var cfg = try ModelConfig.named("tiny", vocabSize: ds.vocabSize)
        cfg.seed = seed
        let m = try LanguageModel(config: cfg)
        m.tokenizerJSON = ds.tokenizerJSON().serialized()
        return m
    }

    static func spec(epochs: Int = 150) throws -> TrainSpec {
        try TrainSpec(json: #"{"epochs": \#(epochs), "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003, "weight_decay": 0.0, "eval_every_epochs": 25, "warmup_steps": 20}"#)
    }

    static func train(_ m: LanguageModel, _ ds: Dataset, _ spec: TrainSpec) throws -> Trainer {
        let t = try Trainer(network: m, optimizer: AdamW(table: m.tensorTable, blockSize: m.parameterBlock.count, spec: spec),
                            spec: spec, tokens: ds.tokens, offsets: ds.offsets, evalSets: [try ds.promptSet("sro")])
        while try t.step() != nil {}
        return t
    }

    /// A trained tiny model, made once per test process.
    nonisolated(unsafe) static var cached: (Dataset, LanguageModel)?
    static func trained() throws -> (Dataset, LanguageModel) {
        if let c = cached { return (c.0, try c.1.clone()) }
        let ds = try dataset()
        let m = try model(ds)
        _ = try train(m, ds, spec())
        cached = (ds, m)
        return (ds, try m.clone())
    }
}

@Suite(.serialized) struct EndToEndTests {
    @Test func tinyPresetLearnsEveryFact() throws {
        let start = monotonicSeconds()
        let (ds, m) = try TinyRun.trained()
        let r = try evaluatePrompts(try ds.promptSet("sro"), vocab: m.vocabSize, batchSize: 64) { (tk, rows, width, lengths, o) throws(EngineError) in
            try m.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }
        print("tiny: accuracy \(r.accuracy) in \(monotonicSeconds() - start) s")
        #expect(r.accuracy == 1.0)
    }

    @Test func saveLoadGivesIdenticalLogits() throws {
        let (ds, m) = try TinyRun.trained()
        let path = "/tmp/bh-e2e-\(getpid()).h5"
        defer { unlink(path) }
        try m.save(path)
        let (loaded, _) = try LanguageModel.load(path)
        let g = try ds.promptSet("sro")
        var a = [Float](repeating: 0, count: 4 * m.vocabSize), b = a
        let lengths = (0..<4).map { g.length($0) }
        let width = lengths.max()!
        var tokens = [Int32](repeating: 1, count: 4 * width)
        for r in 0..<4 { for t in 0..<lengths[r] { tokens[r * width + t] = g.prompts[Int(g.offsets[r]) + t] } }
        try m.logitsAtLast(tokens: tokens, rows: 4, width: width, lengths: lengths, out: &a)
        try loaded.logitsAtLast(tokens: tokens, rows: 4, width: width, lengths: lengths, out: &b)
        #expect(a == b)
        #expect(loaded.tokenizerJSON == m.tokenizerJSON)
    }

    @Test func resumeAfterInterruptionMatchesUninterrupted() throws {
        let ds = try TinyRun.dataset()
        var spec = try TinyRun.spec(epochs: 6)
        spec.evalEveryEpochs = 2
        let a = try TinyRun.model(ds)
        let ta = try TinyRun.train(a, ds, spec)

        // Interrupted run: 9 steps, checkpoint (weights + moments + position) to disk, new process state.
        let b = try TinyRun.model(ds)
        let optB = AdamW(table: b.tensorTable, blockSize: b.parameterBlock.count, spec: spec)
        let tb = try Trainer(network: b, optimizer: optB, spec: spec, tokens: ds.tokens, offsets: ds.offsets, evalSets: [try ds.promptSet("sro")])
        for _ in 0..<9 { _ = try tb.step() }
        var ck = b.checkpoint()
        ck.optimizerM = optB.firstMoment; ck.optimizerV = optB.secondMoment; ck.optimizerStep = optB.stepCount
        ck.trainerState = tb.stateJSON().serialized(); ck.history = tb.history
        let path = "/tmp/bh-resume-\(getpid()).h5"
        defer { unlink(path) }
        try ck.save(path)

        let (c, loaded) = try LanguageModel.load(path)
        let optC = AdamW(table: c.tensorTable, blockSize: c.parameterBlock.count, spec: spec)
        optC.firstMoment.replaceSubrange(0..<loaded.optimizerM!.count, with: loaded.optimizerM!)
        optC.secondMoment.replaceSubrange(0..<loaded.optimizerV!.count, with: loaded.optimizerV!)
        optC.stepCount = loaded.optimizerStep
        let tc = try Trainer(network: c, optimizer: optC, spec: spec, tokens: ds.tokens, offsets: ds.offsets, evalSets: [try ds.promptSet("sro")])
        try tc.restore(state: loaded.trainerState, history: loaded.history)
        while try tc.step() != nil {}
        #expect(Array(c.parameterBlock) == Array(a.parameterBlock))
        #expect(tc.history.loss == ta.history.loss)
        #expect(tc.history.evalAccuracy == ta.history.evalAccuracy)
    }
}
