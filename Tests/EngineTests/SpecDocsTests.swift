import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Specs declared once: decoding a spec's echo gives the same spec (every field echoed, none lost),
/// and the docs' tables list exactly the declared fields.
struct SpecDocsTests {
    /// decode(echo(x)) echoes x again, for the defaults and for a spec with every field changed.
    func roundTrip<S: DeclaredSpec>(_ type: S.Type, _ json: String) throws {
        for text in ["{}", json] {
            let x = try S(json: text)
            let again = try S(json: x.toJSON().serialized())
            #expect(again.toJSON() == x.toJSON(), "\(S.self): \(x.toJSON().serialized())")
            guard case let .object(fields) = x.toJSON() else { Issue.record("\(S.self) echoes no object"); return }
            // Fields added after files were written are echoed only when set (their digests stay the same).
            let echoedWhenSet: Set<String> = ["exclude_facts", "collisions", "collision_seed", "entity", "scope", "facts", "retain_facts",
                                               "templates_per_relation", "heldout_templates", "template_weights", "templates"]
            let keys = fields.map(\.0)
            #expect(keys == S.keys.filter { !echoedWhenSet.contains($0) || keys.contains($0) }, "\(S.self) echoes every declared field, in order")
        }
    }

    @Test func everySpecRoundTrips() throws {
        try roundTrip(TrainSpec.self, #"{"epochs": 7, "stop_at_accuracy": 0.5, "batch_size": 3, "learning_rate": 0.01, "min_learning_rate": 0.001, "warmup_steps": 4, "warmup_fraction": 0.2, "weight_decay": 0.3, "beta1": 0.8, "beta2": 0.9, "eps": 1e-6, "grad_clip": 2, "seed": 9, "eval_every_epochs": 2, "eval_groups": ["a", "b"], "checkpoint_path": "x.h5", "checkpoint_every_epochs": 3, "resume_from": "y.h5"}"#)
        try roundTrip(CapacitySearchSpec.self, #"{"min_subjects": 3, "max_subjects": 30, "target_accuracy": 0.5, "relative_tolerance": 0.1, "max_probes": 4, "print_progress": true}"#)
        try roundTrip(EvaluationSpec.self, #"{"groups": ["sro"], "batch_size": 17}"#)
        try roundTrip(TraceSpec.self, #"{"group": "sor", "prompts": [1, 2], "count": 5, "noise": 0.5, "noise_scale": "absolute", "replace": true, "samples": 3, "window": 3, "kinds": ["mlp"], "severed": ["attn"], "reuse": false, "seed": 4}"#)
        try roundTrip(RecordSpec.self, #"{"path": "a.h5", "group": "sor", "sites": ["mlp_hidden"], "blocks": [1], "positions": ["all"], "batch_size": 9, "count": 3}"#)
        try roundTrip(DatasetSpec.self, #"{"preset": "tiny", "subjects": 70, "relationships": 4, "objects": 12, "repeats": 2, "shuffle": false, "inversion_frac": 0.25, "minority_position_entity_frac": 0, "minority_position_frac": 0.2, "phrase_creator": "nonsense", "questions_entity_frac": 0.4, "questions_frac": 0.5, "correlated_pair": true, "correlation_strength": 0.75, "binarize_first_correlated": true, "num_nested_objects": 0, "obj_nested_obj_edges_upweight": 2, "exclude_facts": [3, 1], "seed": 11}"#)
        try roundTrip(DatasetSpec.self, #"{"preset": "demo", "num_nested_objects": 5, "obj_nested_obj_edges_upweight": 3, "minority_position_frac": 0.3}"#)
        try roundTrip(DatasetSpec.self, #"{"preset": "tiny", "collisions": [{"kind": "subject_parts", "fraction": 0.1}, {"kind": "grammar_as_entity", "fraction": 0.2, "entity": "subject"}], "collision_seed": 4}"#)
        try roundTrip(CollisionSpec.self, #"{"kind": "grammar_as_entity", "fraction": 0.5, "entity": "subject"}"#)
        try roundTrip(DatasetSpec.self, #"{"preset": "tiny", "templates_per_relation": 3, "heldout_templates": 1, "template_weights": [2, 1.5], "templates": ["W9 RR {r} W7 SS {s} W5 OO {o}", "SS {s} W11 W12 RR {r} W13 OO {o}"]}"#)
        try roundTrip(EditSpec.self, #"{"kind": "forget_relation", "relation": 2, "count": 3, "subjects": [1, 2, 5, 7], "new_object": 4, "forget_fraction": 0.5, "forced_object": 1, "repeats": 9, "same_value_max": 8, "same_relation_per_edit": 7, "regularization_per_edit": 6, "absolute_counts": true, "seed": 5, "dataset_fingerprint": "abc"}"#)
        try roundTrip(EditSpec.self, #"{"kind": "unlearn", "scope": "facts", "facts": [[1, 2], [3, 0]], "retain_facts": [[4, 1]], "forced_object": 2, "seed": 3}"#)
        // The preset sets the counts' defaults; explicit counts override it.
        #expect(try DatasetSpec(json: #"{"preset": "tiny"}"#).subjects == 64)
        #expect(try DatasetSpec(json: #"{"subjects": 9, "preset": "tiny"}"#).subjects == 9)
        // regularization_per_edit is echoed resolved; diverse makes 10 edits unless told otherwise.
        #expect(try EditSpec(json: #"{"repeats": 7}"#).toJSON().serialized().contains("\"regularization_per_edit\":7"))
        #expect(try EditSpec(json: #"{"kind": "diverse"}"#).count == 10)
        for text in ["{}", #"{"preset": "tiny", "layers": 3, "hidden": 48, "heads": 4, "intermediate": 96, "rotary_pct": 0.5, "rotary_base": 500, "parallel_residual": false, "layer_norm_eps": 1e-6, "vocab_size": 99, "max_positions": 40, "init_range": 0.05, "seed": 3}"#,
                     #"{"preset": "tiny", "architecture": "llama", "kv_heads": 2, "tie_embeddings": true, "rotary_pct": 0.5}"#,
                     #"{"preset": "llama-tiny"}"#] {
            let x = try ModelConfig(text: text)
            #expect(try ModelConfig(json: x.toJSON()) == x)
            guard case let .object(fields) = x.toJSON() else { Issue.record("no object"); continue }
            // the llama keys are echoed only for llama (every GPT-NeoX config keeps its JSON)
            let llamaOnly: Set = ["architecture", "kv_heads", "tie_embeddings"]
            #expect(fields.map(\.0) == ModelConfig.keys.filter { x.isLlama || !llamaOnly.contains($0) })
        }

        // The edit method, for every registered editor: the report's echo runs again as the same spec.
        let methods = [
            #"{"method": "full", "mode": "sequential", "layers": {"blocks": [1], "sublayers": "mlp", "matrices": [], "embeddings": true, "unembedding": true, "biases": false}, "optimizer": {"epochs": 3, "batch_size": 5, "learning_rate": 0.01, "min_learning_rate": 0.001, "warmup_steps": 2, "warmup_fraction": 0.1, "weight_decay": 0.2, "grad_clip": 3, "beta1": 0.5, "beta2": 0.6, "eps": 1e-5, "seed": 4}}"#,
            #"{"method": "lora", "mode": "one_at_a_time", "layers": {"blocks": [0], "matrices": ["dense_4h_to_h"]}, "rank": 4, "alpha": 8, "dropout": 0.1, "merge": false, "optimizer": {"beta2": 0.9}}"#,
            #"{"method": "fixed_rank_one", "layers": {"sublayers": "attention"}, "scale": 0.5, "seed": 3}"#,
            #"{"method": "rome", "layers": {"blocks": [1]}, "fact_token": "last", "v_lr": 0.1, "v_steps": 5, "v_weight_decay": 0.1, "kl_factor": 0.5, "clamp_norm_factor": 2, "stop_loss": 0.01, "context_templates": [[5, 2], [3, 1]], "covariance_adjustment": false, "inverse": "ridge", "ridge": 0.5, "stats_tokens": 100, "stats_seed": 2, "stats_dir": "x", "seed": 4}"#,
            #"{"method": "memit", "layers": {"blocks": [1]}, "fact_token": "relation", "v_steps": 7, "clamp_norm_factor": 0.5, "covariance_weight": 100, "stats_tokens": 10}"#,
            #"{"method": "alphaedit", "mode": "sequential", "layers": {"blocks": [0, 1]}, "v_lr": 0.2, "nullspace_threshold": 0.1, "l2": 2, "context_templates": [[4, 1]]}"#,
            #"{"method": "grad_ascent", "adapter": "lora", "rank": 4, "alpha": 8, "dropout": 0.1, "gamma": 2, "optimizer": {"epochs": 2}, "relearn": {"steps": 5, "data": "retain", "fraction": 0.2, "learning_rate": 0.01, "batch_size": 4, "seed": 2}}"#,
            #"{"method": "grad_diff", "gamma": 0.5, "retain_weight": 2, "retain_loss": "kl"}"#,
            #"{"method": "kl", "gamma": 0.5, "retain_weight": 3}"#,
            #"{"method": "npo", "beta": 0.5, "gamma": 2, "retain_weight": 0.5, "retain_loss": "kl"}"#,
            #"{"method": "simnpo", "beta": 2, "gamma": 1, "delta": 0.5, "retain_weight": 2, "retain_loss": "kl"}"#,
            #"{"method": "rmu", "layers": {"blocks": [0]}, "steering_coeff": 6.5, "gamma": 2, "retain_weight": 100, "layer": 1}"#,
            #"{"method": "relabel", "gamma": 2, "retain_weight": 0, "retain_loss": "kl"}"#,
        ]
        #expect(Set(try methods.map { try EditMethodSpec(json: $0, layers: 2).method }) == Set(EditorRegistry.names))
        for m in methods {
            let x = try EditMethodSpec(json: m, layers: 2)
            let again = try EditMethodSpec(json: x.toJSON().serialized(), layers: 2)
            #expect(again.toJSON() == x.toJSON(), "\(x.toJSON().serialized())")
            #expect(try EditMethodSpec(json: "{\"method\": \"\(x.method)\"}", layers: 2).toJSON() != x.toJSON(), "the example changes fields")
        }
        // trained_tensors is output: accepted only when it matches.
        #expect(throws: EngineError.self) { try EditMethodSpec(json: #"{"method": "lora", "trained_tensors": ["x"]}"#, layers: 2) }
    }

    /// The `key` column (and the optimizer row's keys) of a table in a docs file.
    func documentedKeys(section: String, in file: String = "training-and-editing.md") throws -> (keys: [String], rows: [String: String]) {
        let here = URLlessPath.folder(of: #filePath)
        let text = try FileSystem.readText("\(here)/../../docs/\(file)")
        var inSection = false, keys: [String] = [], rows: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { if inSection && !keys.isEmpty { break }; inSection = line.hasPrefix("## \(section)"); continue }
            guard inSection, line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard cells.count >= 4 else { continue }
            for k in backticked(cells[1]) { keys.append(k); rows[k] = cells[3] }
        }
        return (keys, rows)
    }

    func backticked(_ s: String) -> [String] {
        s.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    @Test func theDocsListExactlyTheDeclaredFields() throws {
        #expect(Set(try documentedKeys(section: "Training spec").keys) == Set(TrainSpec.keys))
        #expect(Set(try documentedKeys(section: "Evaluation spec").keys) == Set(EvaluationSpec.keys))
        #expect(Set(try documentedKeys(section: "Capacity search").keys) == Set(CapacitySearchSpec.keys))
        #expect(try documentedKeys(section: "Edit spec").keys == EditSpec.keys)
        #expect(try documentedKeys(section: "DatasetSpec", in: "formats.md").keys == DatasetSpec.keys)
        #expect(try documentedKeys(section: "Model config").keys == ModelConfig.keys)
        #expect(try documentedKeys(section: "Trace spec", in: "analysis.md").keys == TraceSpec.keys)
        #expect(try documentedKeys(section: "Record spec", in: "analysis.md").keys == RecordSpec.keys)
        let (keys, rows) = try documentedKeys(section: "Edit method")
        var declared = Set(["method", "mode"] + LayerSelection.fields.map { "layers.\($0.key)" })
        for t in EditorRegistry.methods { declared.formUnion(t.keys) }
        #expect(Set(keys) == declared)
        // The optimizer row names every optimizer field (and the methods it applies to).
        let inRow = Set(backticked(rows["optimizer"] ?? "")).subtracting(EditorRegistry.names)
        #expect(inRow == Set(EditOptimizerSpec.fields.map(\.key)))
    }
}

/// The folder of a source file path (no Foundation).
enum URLlessPath {
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}
