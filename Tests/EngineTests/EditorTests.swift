import Testing
@testable import Engine

/// The editor platform: the registry, the demonstration editor through EditExperiment, the shared
/// before results, and the optimizer fields every fine-tuning editor echoes.
@Suite(.serialized) struct EditorTests {
    func experiment(_ m: LanguageModel, _ ds: Dataset, edit: String = #"{"kind": "single", "seed": 3}"#,
                    method: String) throws -> EditExperiment {
        let set = try EditSetBuilder.build(try EditSpec(json: edit), facts: ds.factView())
        return try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: try EditMethodSpec(json: method, layers: m.config.layers))
    }

    @Test func anUnregisteredMethodListsTheRegisteredOnes() {
        #expect(EditorRegistry.names == ["full", "lora", "fixed_rank_one", "rome", "memit", "alphaedit",
                                         "grad_ascent", "grad_diff", "kl", "npo", "simnpo", "rmu", "relabel"])
        do {
            _ = try EditMethodSpec(json: #"{"method": "nope"}"#, layers: 2)
            Issue.record("an unregistered method was accepted")
        } catch {
            #expect(error.status == .invalid)
            #expect(error.message.contains(#"method = "nope" is not a registered editor (registered: "full", "lora", "fixed_rank_one", "rome", "memit", "alphaedit", "grad_ascent", "grad_diff", "kl", "npo", "simnpo", "rmu", "relabel")"#), "\(error.message)")
        }
        // A method's own keys are refused for another method (strict keys per spec type).
        #expect(throws: EngineError.self) { try EditMethodSpec(json: #"{"method": "fixed_rank_one", "alpha": 2}"#, layers: 2) }
        #expect(throws: EngineError.self) { try EditMethodSpec(json: #"{"method": "lora", "scale": 2}"#, layers: 2) }
    }

    @Test func fixedRankOneRunsThroughTheHarness() throws {
        let (ds, m) = try TinyRun.trained()
        let before = Array(m.parameterBlock)
        let x = try experiment(m, ds, method: #"{"method": "fixed_rank_one", "scale": 0.5, "seed": 7, "layers": {"blocks": [0], "sublayers": "attention"}}"#)
        #expect(x.totalSteps == 1)
        var steps = 0
        while try x.step() != nil { steps += 1 }
        #expect(steps == 1)
        let r = try x.finish()
        let changed = ["gpt_neox.layers.0.attention.query_key_value.weight", "gpt_neox.layers.0.attention.dense.weight"]
        #expect(r.deltas.map(\.entry.name) == changed)
        for (e, d) in r.deltas {
            // s·u·vᵀ: rank one with Frobenius norm s
            let norm = d.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 0.5) < 1e-4, "\(e.name): norm \(norm)")
            let rank = try d.withUnsafeBufferPointer { try analyseRank($0, rows: e.shape[0], cols: e.shape[1]) }
            #expect(rank.numericalRank == 1)
        }
        for e in m.tensorTable where !changed.contains(e.name) {
            #expect(Array(m.parameterBlock[e.offset..<(e.offset + e.count)]) == Array(before[e.offset..<(e.offset + e.count)]), "\(e.name) moved")
        }
        #expect(r.metrics.contains { $0.name == "edit_success" })
        let report = r.reportJSON(editSet: x.editSet, method: x.method, model: m.config.toJSON())
        #expect(report["method"]?.serialized() == #"{"method":"fixed_rank_one","mode":"batch","layers":{"blocks":[0],"sublayers":"attention","matrices":[],"embeddings":false,"unembedding":false,"biases":true},"scale":0.5,"seed":7,"trained_tensors":["gpt_neox.layers.0.attention.query_key_value.weight","gpt_neox.layers.0.attention.dense.weight"]}"#)
    }

    @Test func beforeResultsAreComputedOncePerModelAndEditSet() throws {
        let (ds, m) = try TinyRun.trained()
        BeforeResults.shared.removeAll()
        // Edit sets no other test uses (the cache is shared by every test in the process).
        let own = #"{"kind": "single", "seed": 913}"#
        let a = try experiment(m, ds, edit: own, method: #"{"method": "fixed_rank_one", "layers": {"blocks": [1]}}"#)
        #expect(!a.beforeWasCached)
        while try a.step() != nil {}
        _ = try a.finish()   // changes the model: its digest changes too
        let m2 = try TinyRun.trained().1
        let b = try experiment(m2, ds, edit: own, method: #"{"method": "lora", "rank": 4, "layers": {"blocks": [1]}, "optimizer": {"epochs": 1}}"#)
        #expect(b.beforeWasCached)
        #expect(b.result.before.map(\.correct) == a.result.before.map(\.correct))
        #expect(b.result.before.map(\.targetProbability) == a.result.before.map(\.targetProbability))
        let c = try experiment(m, ds, edit: own, method: #"{"method": "fixed_rank_one", "layers": {"blocks": [1]}}"#)
        #expect(!c.beforeWasCached, "the edited model has another digest")
        let d = try experiment(try TinyRun.trained().1, ds, edit: #"{"kind": "single", "seed": 914}"#, method: #"{"method": "fixed_rank_one", "layers": {"blocks": [1]}}"#)
        #expect(!d.beforeWasCached, "another edit set")
    }

    @Test func theOptimizerEchoesAndUsesItsBetas() throws {
        let spec = try EditMethodSpec(json: #"{"method": "full", "layers": {"blocks": [1]}}"#, layers: 2)
        let opt = try #require(spec.toJSON()["optimizer"])
        #expect(opt["beta1"]?.serialized() == "0.9" && opt["beta2"]?.serialized() == "0.999" && opt["eps"]?.serialized() == "1e-08")
        let ds = try TinyRun.trained().0
        func deltas(_ optimizer: String) throws -> [Float] {
            let x = try experiment(try TinyRun.trained().1, ds,
                                   method: #"{"method": "full", "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"epochs": 2, \#(optimizer)}}"#)
            while try x.step() != nil {}
            return try x.finish().deltas[0].values
        }
        let defaults = try deltas(#""beta2": 0.999"#)
        #expect(try deltas(#""beta1": 0.9, "beta2": 0.999, "eps": 1e-8"#) == defaults)
        #expect(try deltas(#""beta2": 0.5"#) != defaults)
        #expect(try deltas(#""beta1": 0.5"#) != defaults)
        #expect(throws: EngineError.self) { try EditMethodSpec(json: #"{"method": "lora", "optimizer": {"beta2": 1}}"#, layers: 2) }
    }
}
