import Testing
@testable import Engine

@Suite struct ModelConfigTests {
    @Test func presets() throws {
        let t = try ModelConfig(text: #"{"preset": "tiny", "vocab_size": 100}"#)
        #expect(t.layers == 2 && t.hidden == 64 && t.heads == 4 && t.intermediate == 256 && t.vocabSize == 100)
        let p = try ModelConfig(text: #"{"preset": "pythia-31m-shape"}"#)
        #expect(p.layers == 6 && p.hidden == 256 && p.heads == 8 && p.intermediate == 1024 && p.rotaryDims == 8)
        let q = try ModelConfig(text: #"{"preset": "pythia-14m-shape", "layers": 3}"#)
        #expect(q.layers == 3 && q.hidden == 128 && q.heads == 4 && q.intermediate == 512)
        let d = try ModelConfig(text: "")
        #expect(d.preset == "pythia-31m-shape" && d.layerNormEps == 1e-5 && d.rotaryBase == 10000 && d.parallelResidual)
    }

    @Test func parameterCountMatchesPythia31m() throws {
        // Non-embedding parameters of pythia-31m: 4,739,072 (model card).
        let c = try ModelConfig.named("pythia-31m-shape", vocabSize: 50304)
        let table = ParameterTable(config: c)
        let embeddings = 2 * 50304 * 256
        #expect(table.parameterCount - embeddings == 4_739_072)
        #expect(table["gpt_neox.layers.3.mlp.dense_4h_to_h.weight"]?.shape == [256, 1024])
        #expect(table["gpt_neox.layers.0.attention.query_key_value.weight"]?.shape == [768, 256])
        #expect(table["embed_out.weight"]?.shape == [50304, 256])
        #expect(table.tensors.allSatisfy { $0.offset % 16 == 0 })
    }

    @Test func jsonRoundTrip() throws {
        let c = try ModelConfig(text: #"{"preset":"tiny","vocab_size":77,"parallel_residual":false,"seed":9,"rotary_pct":0.5}"#)
        let again = try ModelConfig(json: c.toJSON())
        #expect(again == c)
        let keys: [String] = { if case let .object(f) = c.toJSON() { return f.map { $0.0 } }; return [] }()
        #expect(keys.count == 13)
    }

    @Test(arguments: [
        (#"{"hidden": 100, "heads": 3}"#, "not divisible by heads"),
        (#"{"layers": 0}"#, "layers = 0 must be at least 1"),
        (#"{"preset": "tiny", "rotary_pct": 0.1}"#, "must be even"),
        (#"{"preset": "huge"}"#, "is not one of"),
        (#"{"hiden": 64}"#, "unknown key 'hiden'"),
        (#"{"heads": "four"}"#, "heads must be an integer"),
        (#"{"layer_norm_eps": 0}"#, "greater than 0"),
        (#"{"vocab_size": -3}"#, "must be at least 0"),
    ])
    func badConfigsAreClearErrors(_ text: String, _ fragment: String) {
        do {
            _ = try ModelConfig(text: text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
            #expect(error.status == .invalid)
        }
    }

    @Test func modelNeedsVocabulary() {
        do {
            _ = try GPTNeoX(config: ModelConfig.preset("tiny")!, maxBatch: 1, maxSeq: 4)
            Issue.record("built a model without a vocabulary")
        } catch { #expect(error.message.contains("vocab_size")) }
    }

    @Test func initialisationFollowsHF() throws {
        let m = try GPTNeoX(config: ModelConfig.named("tiny", vocabSize: 300), maxBatch: 1, maxSeq: 4)
        let w = Array(m.params.view("gpt_neox.layers.0.mlp.dense_h_to_4h.weight")!)
        let mean = w.reduce(0, +) / Float(w.count)
        let sd = (w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(w.count)).squareRoot()
        #expect(abs(sd - 0.02) < 0.001 && abs(mean) < 0.001)
        #expect(m.params.view("gpt_neox.layers.1.attention.dense.bias")!.allSatisfy { $0 == 0 })
        #expect(m.params.view("gpt_neox.final_layer_norm.weight")!.allSatisfy { $0 == 1 })
        #expect(m.params.view("gpt_neox.layers.0.input_layernorm.bias")!.allSatisfy { $0 == 0 })
        let m2 = try GPTNeoX(config: ModelConfig.named("tiny", vocabSize: 300), maxBatch: 1, maxSeq: 4)
        #expect(m.params.storage.toArray() == m2.params.storage.toArray())
    }

    @Test func badInputsThrow() throws {
        let m = try GPTNeoX(config: ModelConfig.named("tiny", vocabSize: 10), maxBatch: 2, maxSeq: 4)
        #expect(throws: EngineError.self) { try m.forward(tokens: [1, 2, 3, 10], batch: 1, seq: 4) }
        #expect(throws: EngineError.self) { try m.forward(tokens: [Int32](repeating: 1, count: 15), batch: 3, seq: 5) }
        #expect(throws: EngineError.self) { try m.forward(tokens: [1, 2], targets: [1], batch: 1, seq: 2) }
        try m.forward(tokens: [1, 2], batch: 1, seq: 2)
        #expect(throws: EngineError.self) { try m.backward() }
    }
}
