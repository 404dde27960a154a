import CBehemoth
import Engine

// Unlearning (behemoth.h, "Unlearning"): oracles, forget metrics, the KS test.

@c @implementation public func bh_edit_set_oracle(_ e: OpaquePointer?, _ oracle: OpaquePointer?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_set_oracle"
        let s = try editSession(e, fn)
        let o = try model(oracle, fn)
        guard s.result == nil else { throw .misuse("\(fn): the edit was ended by bh_edit_end; set the oracle before ending it") }
        try s.experiment.setOracle(o)
    }
}

@c @implementation public func bh_unlearn_evaluate(_ m: OpaquePointer?, _ es: OpaquePointer?, _ oracle: OpaquePointer?,
                                                   _ report_json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_unlearn_evaluate"
        if let report_json { report_json.pointee = nil }
        let mm = try model(m, fn)
        let h = try editSetHandle(es, fn)
        guard h.set.isForgetSet, let forget = h.set.group("forget") else { throw .invalid("\(fn): the edit set is not an unlearn set (kind \"unlearn\")") }
        try EditExperiment.checkCompatible(model: mm, datasetVocab: h.datasetVocab, datasetTokenizer: h.datasetTokenizer)
        func evaluate(_ lm: LanguageModel, _ g: PromptSet) throws(EngineError) -> GroupResult {
            try evaluatePrompts(g, vocab: lm.vocabSize, batchSize: 256) { (tk, rows, width, lengths, o) throws(EngineError) in
                try lm.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
            }
        }
        var oracleResult: GroupResult? = nil, oracleDigest: String? = nil
        if oracle != nil {
            let o = try model(oracle, fn)
            try EditExperiment.checkCompatible(model: o, datasetVocab: h.datasetVocab, datasetTokenizer: h.datasetTokenizer)
            oracleDigest = try UnlearningMetrics.checkOracle(o, dataset: h.dataset, editSet: h.set)
            oracleResult = try evaluate(o, forget)
        }
        var results: [GroupResult] = []
        for g in h.set.groups { results.append(try evaluate(mm, g)) }
        guard let forgetResult = results.first(where: { $0.name == forget.name }) else { throw .internalError("\(fn): the forget group was not evaluated") }
        let metrics = UnlearningMetrics.measure(editSet: h.set, results: results, oracle: oracleResult)
        var fields: [(String, JSON)] = [
            ("metrics", .object(metrics.map { ($0.name, .number($0.value)) })),
            ("definitions", .object(metrics.map { ($0.name, .string($0.definition)) })),
            ("groups", .object(results.map { ($0.name, $0.summary()) })),
            ("log_truth_ratio", .doubles(forgetResult.logTruthRatio.map(Double.init))),
        ]
        if let o = oracleResult, let digest = oracleDigest {
            fields.append(("oracle_log_truth_ratio", .doubles(o.logTruthRatio.map(Double.init))))
            fields.append(("oracle_dataset", .string(digest)))
        }
        fields.append(("model_digest", .string(mm.contentDigest)))
        fields.append(("edit_set", .string(h.digest)))
        fields.append(("library_version", .string(Version.string)))
        try returnString(JSON.object(fields).serialized(pretty: true), report_json, fn)
    }
}

@c @implementation public func bh_ks_2samp(_ a: UnsafePointer<Double>?, _ m: Int64, _ b: UnsafePointer<Double>?, _ n: Int64,
                                           _ statistic: UnsafeMutablePointer<Double>?, _ pvalue: UnsafeMutablePointer<Double>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_ks_2samp"
        if let statistic { statistic.pointee = .nan }
        if let pvalue { pvalue.pointee = .nan }
        let limit = Int64(KolmogorovSmirnov.maxLattice)
        let x = try inputBuffer(a, m, fn, "a", max: limit), y = try inputBuffer(b, n, fn, "b", max: limit)
        guard statistic != nil || pvalue != nil else { throw .invalid("\(fn): statistic and pvalue are both NULL") }
        let ks = try KolmogorovSmirnov(Array(x), Array(y))
        statistic?.pointee = ks.statistic
        pvalue?.pointee = ks.pValue
    }
}
