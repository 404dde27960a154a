import Testing
@testable import Engine

/// LoRA adapter sets as values: from an edit, to a file and back, applied merged or as a side path,
/// removed; refused on another model shape or when damaged.
@Suite(.serialized) struct AdapterTests {
    static func editedAdapters() throws -> (Dataset, LanguageModel, AdapterSet) {
        let (ds, m) = try TinyRun.trained()
        let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "seed": 3}"#), facts: ds.factView())
        let method = try EditMethodSpec(json: #"{"method": "lora", "rank": 8, "alpha": 16, "merge": false, "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"learning_rate": 0.001, "epochs": 3}}"#, layers: m.config.layers)
        let x = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method)
        while try x.step() != nil {}
        let r = try x.finish()
        return (ds, m, try AdapterSet(r.adapters))
    }

    func logits(_ m: LanguageModel, _ ds: Dataset) throws -> [Float] {
        let tokens = Array(ds.tokens[0..<10])
        var out = [Float](repeating: 0, count: 10 * m.vocabSize)
        try tokens.withUnsafeBufferPointer { t in try out.withUnsafeMutableBufferPointer { o in
            try m.logits(tokens: t.baseAddress!, rows: 1, width: 10, out: o.baseAddress!)
        } }
        return out
    }

    @Test func anEditsAdaptersSaveLoadAndApplyBothWays() throws {
        let (ds, m, adapters) = try AdapterTests.editedAdapters()   // merge: false: m is unchanged
        #expect(adapters.keys.map(\.tensorName) == ["gpt_neox.layers.1.mlp.dense_h_to_4h.weight", "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"])
        let dir = DataTest.tempDir("adapter")
        defer { DataTest.removeTree(dir) }
        try adapters.save("\(dir)/a.h5")
        let loaded = try AdapterSet.load("\(dir)/a.h5")
        #expect(loaded.rank == 8 && loaded.alpha == 16 && loaded.keys == adapters.keys)
        for k in adapters.keys { #expect(loaded.adapters[k]!.a == adapters.adapters[k]!.a && loaded.adapters[k]!.b == adapters.adapters[k]!.b) }
        #expect(try BehemothFile.verify("\(dir)/a.h5")["format"]?.serialized() == #""behemoth.adapter""#)

        let original = Array(m.parameterBlock)
        let plain = try logits(m, ds)
        try loaded.attach(to: m)                                   // a side path: the weights stay
        #expect(Array(m.parameterBlock) == original)
        let side = try logits(m, ds)
        #expect(side != plain)
        #expect(throws: EngineError.self) { try loaded.attach(to: m) }   // one side path at a time
        // reports name the adapter running beside the weights: its digest is the file's
        let fileDigest = try BehemothFile.verify("\(dir)/a.h5")["digest"]!
        #expect(fileDigest == .string(loaded.contentDigest) && loaded.contentDigest == adapters.contentDigest)
        let spec = try EvaluationSpec(json: #"{"groups": ["sro"]}"#)
        #expect(try Evaluation.run(m, ds, spec: spec)["side_path_adapter_digest"] == fileDigest)
        #expect(m.info()["side_path_adapter_digest"] == fileDigest)
        try loaded.detach(from: m)
        #expect(try logits(m, ds) == plain)
        #expect(try Evaluation.run(m, ds, spec: spec)["side_path_adapter_digest"] == .null)

        try loaded.merge(into: m)                                  // merged: the same function
        let merged = try logits(m, ds)
        #expect(zip(merged, side).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($0)) })
        try loaded.merge(into: m, sign: -1)                        // removed: the weights, up to rounding
        #expect(zip(Array(m.parameterBlock), original).allSatisfy { abs($0 - $1) <= 1e-6 })
    }

    @Test func anotherModelShapeAndDamagedFilesAreRefused() throws {
        let (ds, _, adapters) = try AdapterTests.editedAdapters()
        var cfg = try ModelConfig.named("tiny", vocabSize: ds.vocabSize)
        cfg.intermediate = 128
        let other = try LanguageModel(config: cfg)
        do { try adapters.attach(to: other); Issue.record("attached to another shape") } catch {
            #expect(error.status == .invalid && error.message.contains("gpt_neox.layers.1.mlp.dense_h_to_4h.weight"), "\(error.message)")
        }
        #expect(throws: EngineError.self) { try adapters.merge(into: other) }

        let dir = DataTest.tempDir("adapter-bad")
        defer { DataTest.removeTree(dir) }
        try adapters.save("\(dir)/a.h5")
        var bytes = try FileSystem.readBytes("\(dir)/a.h5")
        var refused = 0
        for i in stride(from: 100, to: bytes.count, by: max(1, bytes.count / 40)) {
            bytes[i] ^= 0x5a
            try FileSystem.writeBytes("\(dir)/b.h5", bytes)
            bytes[i] ^= 0x5a
            do { _ = try AdapterSet.load("\(dir)/b.h5") } catch { #expect(error.status == .format || error.status == .io); refused += 1 }
        }
        #expect(refused > 30)   // a flip in unused padding may load; its content is then the same (digests)
    }

    @Test func aLoRAEditWaitsForTheSidePathToGo() throws {
        let (ds, m, adapters) = try AdapterTests.editedAdapters()
        try adapters.attach(to: m)
        let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "seed": 4}"#), facts: ds.factView())
        let method = try EditMethodSpec(json: #"{"method": "lora", "rank": 4, "layers": {"blocks": [1]}, "optimizer": {"epochs": 1}}"#, layers: m.config.layers)
        do { _ = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method); Issue.record("edited under a side path") } catch {
            #expect(error.status == .misuse)
        }
        try adapters.detach(from: m)
        _ = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method)
    }
    /// Made from a spec and factors (how adapters trained elsewhere come in): zero until set, then
    /// the same set as the one it copies (digest, logits); bad specs and factors are refused.
    @Test func aSetFromASpecAndFactors() throws {
        let (ds, m, adapters) = try AdapterTests.editedAdapters()
        var made = try AdapterSet(spec: adapters.toJSON().serialized())
        #expect(made.keys == adapters.keys && made.rank == 8 && made.alpha == 16)
        for k in made.keys { #expect(made.adapters[k]!.delta().allSatisfy { $0 == 0 }) }
        #expect(made.contentDigest != adapters.contentDigest)
        for k in adapters.keys {
            for w in ["A", "B"] {
                let v = try adapters.factor(k.tensorName, w)
                try v.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws(EngineError) in try made.setFactor(k.tensorName, w, p) }
                #expect(try made.factor(k.tensorName, w) == v)
            }
        }
        #expect(made.contentDigest == adapters.contentDigest)
        try made.attach(to: m)
        let viaMade = try logits(m, ds)
        try made.detach(from: m)
        try adapters.attach(to: m)
        #expect(try logits(m, ds) == viaMade)
        try adapters.detach(from: m)

        let fc2 = "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
        func refused(_ body: () throws(EngineError) -> Void, _ part: String) {
            do { try body(); Issue.record("accepted; expected an error with \(part)") } catch {
                #expect(error.status == .invalid && error.message.contains(part), "\(error.message)")
            }
        }
        let nan: [Float] = [.nan] + [Float](repeating: 0, count: 64 * 8 - 1)
        refused({ () throws(EngineError) in try nan.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws(EngineError) in try made.setFactor(fc2, "B", p) } }, "finite")
        refused({ () throws(EngineError) in try nan.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws(EngineError) in try made.setFactor(fc2, "A", p) } }, "2048 values")
        refused({ () throws(EngineError) in _ = try made.factor(fc2, "a") }, "must be \"A\"")
        refused({ () throws(EngineError) in _ = try made.factor("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "A") }, "no target")
        let target = #"{"tensor": "gpt_neox.layers.0.attention.dense.weight", "shape": [64, 64]}"#
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 0, "alpha": 1, "targets": [\#(target)]}"#) }, "rank")
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 2, "targets": [\#(target)]}"#) }, "alpha")
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 2, "alpha": 1, "targets": []}"#) }, "targets")
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 2, "alpha": 1, "targets": [\#(target), \#(target)]}"#) }, "twice")
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 2, "alpha": 1, "targets": [{"tensor": "embed_out.weight", "shape": [9, 64]}]}"#) }, "embed_out")
        refused({ () throws(EngineError) in _ = try AdapterSet(spec: #"{"rank": 2, "alpha": 1, "targets": [{"tensor": "gpt_neox.layers.0.attention.dense.weight", "shape": [64, 64], "matrix": "dense_4h_to_h"}]}"#) }, "disagree")
        do { _ = try AdapterSet(spec: #"{"rank": 1048576, "alpha": 1, "targets": [{"tensor": "gpt_neox.layers.0.attention.dense.weight", "shape": [1048576, 1048576]}]}"#); Issue.record("8.8 TB allocated") } catch {
            #expect(error.status == .noMemory)
        }
    }
}
