import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Causal tracing: the batched path that reuses the corrupted run equals one full forward pass per
/// restoration; results do not depend on which other prompts are traced; bad input is an error.
@Suite(.serialized) struct TraceTests {
    func run(_ m: LanguageModel, _ ds: Dataset, _ json: String) throws -> CausalTracer {
        let spec = try TraceSpec(json: json)
        let t = try CausalTracer(model: m, prompts: try TracePrompt.fromDataset(ds, spec: spec), spec: spec,
                                 subjectStd: TracePrompt.subjectEmbeddingStd(ds, model: m))
        while try t.step() {}
        return t
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    @Test func reuseEqualsOneForwardPassPerRestoration() throws {
        let (ds, trained) = try TinyRun.trained()
        var cfg = trained.config
        cfg.parallelResidual = false
        cfg.initRange = 0.3   // an untrained sequential-residual model with peaky predictions
        let sequential = try LanguageModel(config: cfg)
        for (m, window) in [(trained, 1), (trained, 3), (sequential, 1), (sequential, 3)] {
            let base = #"{"prompts": [0, 5, 17], "samples": 4, "window": \#(window), "severed": ["mlp", "attn"]"#
            let a = try run(m, ds, base + #", "reuse": true}"#), b = try run(m, ds, base + #", "reuse": false}"#)
            #expect(a.results.count == 3 && a.results.contains { r in r.scores.contains { $0.contains { abs($0 - r.low) > 0.01 } } })
            for (x, y) in zip(a.results, b.results) {
                #expect(x.answer == y.answer && x.low == y.low && x.high == y.high)
                for k in 0..<x.scores.count { #expect(maxDiff(x.scores[k], y.scores[k]) < 1e-5, "window \(window), kind \(k)") }
            }
        }
    }

    @Test func aPromptsTraceDoesNotDependOnTheOthers() throws {
        let (ds, m) = try TinyRun.trained()
        let both = try run(m, ds, #"{"prompts": [3, 9], "samples": 3}"#), one = try run(m, ds, #"{"prompts": [9], "samples": 3}"#)
        // prompt 9's noise is seeded by its position in the list, so trace it second in both
        let again = try run(m, ds, #"{"prompts": [4, 9], "samples": 3}"#)
        #expect(both.results[1].scores == again.results[1].scores)
        #expect(one.results[0].high == both.results[1].high)
    }

    @Test func knownFactsHaveHighAboveLow() throws {
        let (ds, m) = try TinyRun.trained()
        let t = try run(m, ds, #"{"count": 20, "samples": 5}"#)
        let correct = t.results.filter(\.correct)
        #expect(correct.count >= 15)
        #expect(correct.filter { $0.high > $0.low }.count >= correct.count * 9 / 10)
        // the last block's output at the last token is the clean state the logits read
        let L = m.config.layers
        for r in correct {
            let T = r.prompt.tokens.count
            #expect(abs(r.scores[0][(T - 1) * L + L - 1] - r.high) < 1e-5)
            #expect(abs(r.scores[0][0 * L + L - 1] - r.low) < 1e-5, "an early token's top state does not reach the logits")
        }
    }

    @Test func badInputIsAnError() throws {
        let (ds, m) = try TinyRun.trained()
        for bad in [#"{"noise": 0}"#, #"{"noise": -1}"#, #"{"samples": 0}"#, #"{"kinds": ["mlp", "nope"]}"#, #"{"severed": ["block"]}"#,
                    #"{"kinds": [], "severed": []}"#, #"{"window": 0}"#, #"{"group": "missing"}"#, #"{"prompts": [100000]}"#, #"{"extra": 1}"#] {
            #expect(throws: EngineError.self, "\(bad)") { _ = try run(m, ds, bad) }
        }
        let spec = try TraceSpec(json: "{}")
        #expect(throws: EngineError.self) { _ = try CausalTracer(model: m, prompts: [], spec: spec, subjectStd: 1) }
        let p = TracePrompt(tokens: [1, 2, 3], subject: 2..<5, target: 1)
        #expect(throws: EngineError.self) { _ = try CausalTracer(model: m, prompts: [p], spec: spec, subjectStd: 1) }
        let q = TracePrompt(tokens: [1, 2, Int32(m.vocabSize)], subject: 0..<1, target: 1)
        #expect(throws: EngineError.self) { _ = try CausalTracer(model: m, prompts: [q], spec: spec, subjectStd: 1) }
        let ok = TracePrompt(tokens: [1, 2, 3], subject: 0..<1, target: 1)
        #expect(throws: EngineError.self, "subject_std without a dataset") { _ = try CausalTracer(model: m, prompts: [ok], spec: spec, subjectStd: nil) }
    }
}
