import Testing
@testable import Engine

/// Edits on a tiny model trained to 100%: the issue's "must show" items at test scale.
@Suite(.serialized) struct EditEndToEndTests {
    func run(_ m: LanguageModel, _ ds: Dataset, edit: String, method: String) throws -> EditResult {
        let set = try EditSetBuilder.build(try EditSpec(json: edit), facts: ds.factView())
        let spec = try EditMethodSpec(json: method, layers: m.config.layers)
        var perEdit: [EditSet] = []
        if spec.mode != .batch {
            for e in set.edits {
                var s = set.spec; s.kind = .single; s.count = 1; s.subjects = [e.subject]; s.newObject = e.newObject
                perEdit.append(try EditSetBuilder.build(s, facts: ds.factView()))
            }
        }
        let runner = try EditRunner(network: m, editSet: set, method: spec, layers: m.config.layers, perEditSets: perEdit)
        while try runner.step() != nil {}
        return try runner.finish()
    }

    func metric(_ r: EditResult, _ name: String) -> Double { r.metrics.first { $0.name == name }!.value }

    /// The default mix is scaled to the tiny dataset (about 13 copies of the edit instead of 250),
    /// so these edits train for 20 epochs: about as many steps as 5 epochs of the absolute counts.
    @Test func loraRank32OnLastMLPMakesASingleEdit() throws {
        let (ds, m) = try TinyRun.trained()
        let before = Array(m.parameterBlock)
        let r = try run(m, ds, edit: #"{"kind": "single", "seed": 3}"#,
                        method: #"{"method": "lora", "rank": 32, "alpha": 32, "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"learning_rate": 0.001, "epochs": 20}}"#)
        print("single LoRA edit: success \(metric(r, "edit_success")), remaining \(metric(r, "remaining_accuracy")) (before \(metric(r, "remaining_accuracy_before")))")
        #expect(metric(r, "edit_success") == 1.0)
        #expect(metric(r, "remaining_accuracy") >= metric(r, "remaining_accuracy_before") - 0.05)
        // Frozen parameters did not move by a single bit; the LoRA delta has rank ≤ 32.
        let trained = Set(["gpt_neox.layers.1.mlp.dense_h_to_4h.weight", "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"])
        for e in m.tensorTable where !trained.contains(e.name) {
            #expect(Array(m.parameterBlock[e.offset..<(e.offset + e.count)]) == Array(before[e.offset..<(e.offset + e.count)]), "\(e.name) moved")
        }
        for (e, d) in r.deltas {
            let rank = try d.withUnsafeBufferPointer { try analyseRank($0, rows: e.shape[0], cols: e.shape[1]) }
            #expect(rank.numericalRank <= 32)
            #expect(rank.numericalRank > 0)
        }
        #expect(r.adapters.count == 2)
        // CounterFact-style scores are reported beside the exact ones.
        #expect(metric(r, "efficacy_score") == 1.0)
        #expect(r.metrics.contains { $0.name == "neighborhood_score" })
        #expect(r.deltaNorms.filter { $0.1 > 0 }.map(\.0).sorted() == trained.sorted())
    }

    @Test func unmergedLoRAKeepsTheModelAndTheAdapters() throws {
        let (ds, m) = try TinyRun.trained()
        let before = Array(m.parameterBlock)
        let r = try run(m, ds, edit: #"{"kind": "single", "seed": 3}"#,
                        method: #"{"method": "lora", "rank": 32, "alpha": 32, "merge": false, "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"learning_rate": 0.001, "epochs": 20}}"#)
        #expect(Array(m.parameterBlock) == before)          // the model is left as it was
        #expect(r.adapters.count == 2)
        #expect(r.adapters.allSatisfy { $0.b.contains { $0 != 0 } })   // the adapters were trained
        #expect(metric(r, "edit_success") == 1.0)             // measured with the adapters applied
    }

    @Test func fullFineTuningForgetsARelation() throws {
        let (ds, m) = try TinyRun.trained()
        let r = try run(m, ds, edit: #"{"kind": "forget_relation", "relation": 1, "forget_fraction": 1.0}"#,
                        method: #"{"method": "full", "optimizer": {"learning_rate": 0.001, "epochs": 20, "batch_size": 16}}"#)
        print("forget relation (full FT): success \(metric(r, "forgetting_success")), remaining \(metric(r, "remaining_accuracy")) (before \(metric(r, "remaining_accuracy_before")))")
        #expect(metric(r, "forgetting_success") >= 0.9)
        #expect(r.metrics.contains { $0.name == "remaining_accuracy_drop" })
    }

    @Test func attentionOnlyAndMLPOnlyEditsReportTheDependentUpdate() throws {
        let ds = try Dataset.generate(specJSON: #"{"preset": "tiny", "seed": 2, "correlated_pair": true, "correlation_strength": 1.0}"#)
        let base = try TinyRun.model(ds)
        _ = try TinyRun.train(base, ds, try TinyRun.spec())
        for sub in ["attention", "mlp"] {
            let m = try base.clone()
            let r = try run(m, ds, edit: #"{"kind": "correlated", "seed": 1}"#,
                            method: #"{"method": "full", "layers": {"sublayers": "\#(sub)"}, "optimizer": {"learning_rate": 0.002, "epochs": 5}}"#)
            print("correlated edit (\(sub) only): success \(metric(r, "edit_success")), dependent update \(metric(r, "dependent_update_rate")), retention \(metric(r, "correlated_retention"))")
            #expect(r.metrics.contains { $0.name == "dependent_update_rate" })
            #expect(r.metrics.contains { $0.name == "correlated_retention" })
            #expect(metric(r, "edit_success") == 1.0)
        }
    }

    @Test func sequentialAndOneAtATimeModes() throws {
        let (ds, m) = try TinyRun.trained()
        let before = Array(m.parameterBlock)
        let r = try run(m, ds, edit: #"{"kind": "diverse", "count": 2, "repeats": 50}"#,
                        method: #"{"method": "lora", "rank": 8, "alpha": 32, "mode": "one_at_a_time", "layers": {"blocks": [1]}, "optimizer": {"learning_rate": 0.003, "epochs": 5}}"#)
        #expect(r.perEdit.count == 2)
        #expect(Array(m.parameterBlock) == before)  // restored after one-at-a-time
        let s = try run(m, ds, edit: #"{"kind": "diverse", "count": 2, "repeats": 50}"#,
                        method: #"{"method": "full", "mode": "sequential", "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"learning_rate": 0.002, "epochs": 5}}"#)
        #expect(s.steps > 0)
        #expect(Array(m.parameterBlock) != before)
    }

    @Test func badEditInputIsAClearErrorAndLeavesTheModelUntouched() throws {
        let (ds, m) = try TinyRun.trained()
        let before = Array(m.parameterBlock)
        func fails(_ edit: String, _ method: String, _ needle: String) {
            do { _ = try run(m, ds, edit: edit, method: method); Issue.record("expected an error: \(needle)") } catch {
                guard let e = error as? EngineError else { Issue.record("unexpected \(error)"); return }
                #expect(e.status == .invalid)
                #expect(e.message.contains(needle), "\(e.message)")
            }
        }
        fails("{}", #"{"layers": {"blocks": [9]}}"#, "blocks[0] = 9 but the model has 2 blocks")
        fails("{}", #"{"rank": 0}"#, "rank = 0")
        fails("{}", #"{"rank": 100}"#, "rank = 100 is larger")
        fails(#"{"relation": 5}"#, "{}", "relation = 5")
        fails(#"{"kind": "diverse", "count": 500}"#, "{}", "only 64 subjects")
        fails(#"{"dataset_fingerprint": "1234"}"#, "{}", "different dataset")
        #expect(Array(m.parameterBlock) == before)
    }
}
