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

/// Tracing against an independent PyTorch implementation of the reference (tools/make_trace_fixture.py
/// → Tests/Fixtures/parity/trace.h5, float64, the noise draws stored): scores, low and high equal to
/// 1e-5 for the three kinds at windows 1 and 3 and both severed variants, on a parallel- and a
/// sequential-residual model, with and without reuse.
@Suite(.serialized) struct TraceParityTests {
    @Test(arguments: ["parallel", "sequential"]) func matchesTheReference(group: String) throws {
        let f = try H5File.open(Fixture.path("trace.h5"))
        defer { f.close() }
        let cfg = try ModelConfig(text: try f.stringAttribute("config", at: "/\(group)"))
        let m = try LanguageModel(config: cfg, initializeWeights: false)
        for e in m.tensorTable { try m.net.params.set(e.name, try f.read("/\(group)/weights/\(e.name)", as: Float.self).data) }
        let L = cfg.layers
        var worst = 0.0, cases = 0
        for k in 0..<3 {
            let c = "/\(group)/case\(k)"
            let prompt = try f.read("\(c)/prompt", as: Int32.self).data, subject = try f.read("\(c)/subject", as: Int32.self).data
            let noise = try f.read("\(c)/noise", as: Double.self), sigma = try f.read("\(c)/sigma", as: Double.self).data[0]
            let replace = try f.read("\(c)/replace", as: Int32.self).data[0] == 1
            let answer = try f.read("\(c)/answer", as: Int32.self).data[0]
            let low = try f.read("\(c)/low", as: Double.self).data[0], high = try f.read("\(c)/high", as: Double.self).data[0]
            let p = TracePrompt(tokens: prompt, subject: Int(subject[0])..<Int(subject[1]), target: answer)
            for window in [1, 3] {
                for reuse in [true, false] {
                    let spec = try TraceSpec(json: #"{"noise": \#(sigma), "noise_scale": "absolute", "replace": \#(replace), "samples": \#(noise.shape[0]), "window": \#(window), "severed": ["mlp", "attn"], "reuse": \#(reuse)}"#)
                    let t = try CausalTracer(model: m, prompts: [p], spec: spec, subjectStd: nil)
                    t.noiseDraws = [noise.data.map(Float.init)]
                    try t.step()
                    let r = t.results[0]
                    #expect(r.answer == answer, "\(c)")
                    worst = max(worst, abs(Double(r.low) - low), abs(Double(r.high) - high))
                    for (ki, kind) in t.kindNames.enumerated() {
                        let name = kind.hasPrefix("block_severed_") ? "severed/\(kind.dropFirst("block_severed_".count))" : "scores/\(kind)_w\(window)"
                        if kind.hasPrefix("block_severed_") && window != 1 { continue }   // severed restores one block
                        let ref = try f.read("\(c)/\(name)", as: Double.self)
                        #expect(ref.shape == [prompt.count, L])
                        for i in 0..<ref.data.count { worst = max(worst, abs(Double(r.scores[ki][i]) - ref.data[i])) }
                        cases += 1
                    }
                }
            }
        }
        print("trace parity (\(group)): \(cases) score tables, largest difference \(worst)")
        #expect(cases == 3 * 2 * 2 * 5 - 3 * 2 * 2)
        #expect(worst < 1e-5, "largest difference \(worst)")
    }
}
