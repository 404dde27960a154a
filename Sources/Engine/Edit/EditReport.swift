/// Reports and files of an edit: JSON with the full specs, metrics and per-group results; HDF5 with
/// the weight deltas, LoRA adapters and per-fact correctness before and after.
extension EditResult {
    public func reportJSON(editSet: EditSet, method: EditMethodSpec, model: JSON) -> JSON {
        func groups(_ rs: [GroupResult]) -> JSON { .object(rs.map { ($0.name, $0.summary()) }) }
        var ranks: [(String, JSON)] = []
        for (e, d) in deltas where e.shape.count == 2 {
            if let r = try? d.withUnsafeBufferPointer({ (b: UnsafeBufferPointer<Float>) throws(EngineError) in
                try analyseRank(b, rows: e.shape[0], cols: e.shape[1])
            }) { ranks.append((e.name, r.toJSON())) }
        }
        return .object([
            ("edit_set", editSet.summary()),
            ("method", method.toJSON()),
            ("model", model),
            ("metrics", metricsJSON()),
            ("before", groups(before)),
            ("after", groups(after)),
            ("per_edit", .array(perEdit)),
            ("editor", .array(editorRuns)),
            ("vectors", .object(vectors.map { ($0.name, .ints($0.shape)) })),
            ("delta_norms", .object(deltaNorms.filter { $0.1 > 0 }.map { ($0.0, .number($0.1)) })),
            ("delta_rank", .object(ranks)),
            ("steps", .int(steps)),
            ("stopped_early", .bool(stoppedEarly)),
            ("final_loss", .number(Double(finalLoss))),
            ("seconds", .number(seconds)),
            ("before_seconds", .number(beforeSeconds)),
            ("before_cached", .bool(beforeCached)),
            ("library_version", .string(Version.string)),
        ])
    }

    public func save(_ path: String, report: JSON) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(BehemothFile.editFormat, version: BehemothFile.editFormatVersion, spec: report["method"]?.serialized() ?? "{}")
            try f.setAttribute("report", string: report.serialized())
            try f.setAttribute("edit_set", string: report["edit_set"]?.serialized() ?? "{}")
            for (e, d) in deltas { try f.write("/deltas/\(e.name)", d, shape: e.shape) }
            for a in adapters {
                try f.write("/lora/\(a.target.name)/A", a.a, shape: [a.rank, a.cols])
                try f.write("/lora/\(a.target.name)/B", a.b, shape: [a.rows, a.rank])
                try f.setAttribute("alpha", string: JSON.format(a.alpha), at: "/lora/\(a.target.name)")
            }
            for v in vectors { try f.write("/editor/\(v.name)", v.values, shape: v.shape) }
            for (b, a) in zip(before, after) {
                let g = "/groups/\(a.name)"
                try f.write("\(g)/correct_before", b.correct)
                try f.write("\(g)/correct_after", a.correct)
                try f.write("\(g)/probability_before", b.targetProbability)
                try f.write("\(g)/probability_after", a.targetProbability)
                try f.write("\(g)/predicted_after", a.predicted)
                if !a.logTruthRatio.isEmpty {
                    try f.write("\(g)/log_truth_ratio_before", b.logTruthRatio)
                    try f.write("\(g)/log_truth_ratio_after", a.logTruthRatio)
                }
            }
        }
    }
}
