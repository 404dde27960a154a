#if canImport(Glibc)
import Glibc
#endif

/// Metrics of an unlearn set (ForgetSet.swift): on the forget set and the retain groups, against
/// an oracle (a model trained without the forget set's sentences) and after a relearning attack.
/// R is the truth ratio of a prompt (GroupResult.logTruthRatio).
public enum UnlearningMetrics {
    public typealias Metric = (name: String, value: Double, definition: String)

    /// The oracle's results on the forget group, and the relearning attack's outcome.
    public struct Extras {
        public var oracle: GroupResult? = nil
        public var relearn: RelearnOutcome? = nil
        public init() {}
    }

    /// The forget group after the attack and the prompts it is measured on (those not trained on).
    public struct RelearnOutcome {
        public var forget: GroupResult
        public var measured: [Int]
        public var trained: Int
        public var spec: RelearnSpec
    }

    static func mean(_ x: [Float], _ f: (Double) -> Double = { $0 }) -> Double {
        x.isEmpty ? 0 : x.reduce(0.0) { $0 + f(Double($1)) } / Double(x.count)
    }

    /// The retain groups' results pooled into one.
    static func pooled(_ groups: [GroupResult]) -> GroupResult {
        var p = GroupResult(name: "retain")
        for g in groups {
            p.predicted += g.predicted; p.correct += g.correct; p.targetProbability += g.targetProbability
            p.targetRank += g.targetRank; p.relations += g.relations; p.relationMass += g.relationMass; p.logTruthRatio += g.logTruthRatio
        }
        return p
    }

    /// TOFU's model utility on our retain groups: the harmonic mean of {accuracy, mean target
    /// probability, mean max(0, 1 − R)} over every retain group (0 if any of them is 0).
    static func modelUtility(_ groups: [GroupResult]) -> Double? {
        var parts: [Double] = []
        for g in groups where g.count > 0 {
            parts += [g.accuracy, g.meanProbability, mean(g.logTruthRatio) { max(0, 1 - exp($0)) }]
        }
        guard !parts.isEmpty else { return nil }
        if parts.contains(where: { $0 <= 0 }) { return 0 }
        return Double(parts.count) / parts.reduce(0) { $0 + 1 / $1 }
    }

    /// Forget Quality: the exact two-sample KS p-value between two models' truth ratios on the
    /// forget set (log R: the same ranks, so the same test), and the statistic.
    public static func forgetQuality(_ a: GroupResult, _ oracle: GroupResult) throws(EngineError) -> KolmogorovSmirnov {
        try KolmogorovSmirnov(a.logTruthRatio.map(Double.init), oracle.logTruthRatio.map(Double.init), allowAsymptotic: true)
    }

    /// How a forget_quality value was computed (exact up to m·n = KolmogorovSmirnov.maxLattice).
    static func method(_ ks: KolmogorovSmirnov) -> String {
        ks.exact ? "exact, two-sided, as scipy.stats.ks_2samp(method=\"exact\")"
                 : "ASYMPTOTIC (\(ks.sizes.0) × \(ks.sizes.1) values exceed the exact test's m·n ≤ \(KolmogorovSmirnov.maxLattice)): Kolmogorov's limit with Stephens' correction, as scipy's method=\"asymp\" within about 1%"
    }

    /// Fraction of forget prompts where the two models give the same greedy next token.
    public static func agreement(_ a: GroupResult, _ b: GroupResult) -> Double {
        guard a.count == b.count, a.count > 0 else { return 0 }
        return Double(zip(a.predicted, b.predicted).filter { $0 == $1 }.count) / Double(a.count)
    }

    /// The forget group's own measures of one model's results (suffix "" or "_before").
    static func forgetMeasures(_ prompts: PromptSet, _ g: GroupResult, suffix: String) -> [Metric] {
        let ranges = prompts.objectRanges ?? []
        var other = 0, leak = 0, relabelled = 0
        for i in 0..<g.count where g.correct[i] == 0 {
            if i < ranges.count, ranges[i].contains(g.predicted[i]) { other += 1 } else { leak += 1 }
            if let alts = prompts.alternatives, g.predicted[i] == alts[i] { relabelled += 1 }
        }
        let n = Double(max(1, g.count))
        let when = suffix.isEmpty ? "" : " (before the edit)"
        return [
            ("forget_accuracy" + suffix, g.accuracy, "exact-match accuracy on the forget set with the TRUE object as target" + when),
            ("forget_other_object" + suffix, Double(other) / n, "fraction of forget prompts answered with another object of their relation" + when),
            ("forget_leak" + suffix, Double(leak) / n, "fraction of forget prompts answered with a token that is not an object of their relation; forget_accuracy + forget_other_object + forget_leak = 1" + when),
            ("forget_relabelled" + suffix, Double(relabelled) / n, "fraction of forget prompts answered wrongly with the relabel object (forced_object of their relation; a part of forget_other_object; a prompt whose true object is the relabel object counts in forget_accuracy instead)" + when),
            ("forget_target_probability" + suffix, g.meanProbability, "mean probability of the true object on the forget prompts" + when),
            ("forget_relation_mass" + suffix, mean(g.relationMass), "mean probability mass on any object of the prompt's relation, forget prompts" + when),
            ("forget_truth_ratio" + suffix, mean(g.logTruthRatio) { exp(-abs($0)) }, "mean of min(R, 1/R) on the forget set, R = geometric-mean probability of the relation's other objects / probability of the true object (TOFU's forget-split truth ratio)" + when),
        ].map { (name: $0.0, value: $0.1, definition: $0.2) }
    }

    static func retainMeasures(_ groups: [GroupResult], suffix: String) -> [Metric] {
        let when = suffix.isEmpty ? "" : " (before the edit)"
        let all = pooled(groups)
        var out: [Metric] = [
            ("retain_accuracy" + suffix, all.accuracy, "exact-match accuracy on every retained fact (the retain groups pooled)" + when),
            ("retain_target_probability" + suffix, all.meanProbability, "mean probability of the true object on the retained facts" + when),
            ("retain_truth_ratio" + suffix, mean(all.logTruthRatio) { max(0, 1 - exp($0)) }, "mean of max(0, 1 − R) on the retained facts (TOFU's truth ratio for the other splits)" + when),
        ]
        for g in groups { out.append(("\(g.name)_accuracy" + suffix, g.accuracy, "exact-match accuracy on the \(g.name) group" + when)) }
        if let u = modelUtility(groups) {
            out.append(("model_utility" + suffix, u, "harmonic mean of {accuracy, mean target probability, mean max(0, 1 − R)} over every retain group (TOFU's model utility on our retain groups)" + when))
        }
        return out
    }

    /// One model's measures on an unlearn set's groups (`results`, one per group), and against the
    /// oracle's forget-group results when given.
    public static func measure(editSet: EditSet, results: [GroupResult], oracle: GroupResult?) -> [Metric] {
        guard let prompts = editSet.group("forget"), let f = results.first(where: { $0.name == "forget" }) else { return [] }
        let names = editSet.retainGroupNames
        var out = forgetMeasures(prompts, f, suffix: "") + retainMeasures(results.filter { names.contains($0.name) }, suffix: "")
        if let o = oracle {
            out.append(("oracle_forget_accuracy", o.accuracy, "the oracle's exact-match accuracy on the forget set (what a model that never saw these facts guesses right)"))
            out.append(("oracle_agreement", agreement(f, o), "fraction of forget prompts where the model and the oracle give the same greedy next token"))
            if let ks = try? forgetQuality(f, o) {
                out.append(("forget_quality", ks.pValue, "Forget Quality: two-sample Kolmogorov–Smirnov p-value (\(method(ks))) between the model's and the oracle's truth ratios on the forget set"))
                out.append(("forget_quality_statistic", ks.statistic, "the KS statistic D behind forget_quality"))
            }
        }
        return out
    }

    public static func all(editSet: EditSet, before: [GroupResult], after: [GroupResult], extras: Extras) -> [Metric] {
        guard let prompts = editSet.group("forget"), let fa = after.first(where: { $0.name == "forget" }),
              let fb = before.first(where: { $0.name == "forget" }) else { return [] }
        let names = editSet.retainGroupNames
        var out = measure(editSet: editSet, results: after, oracle: extras.oracle)
        out += forgetMeasures(prompts, fb, suffix: "_before") + retainMeasures(before.filter { names.contains($0.name) }, suffix: "_before")
        if let o = extras.oracle {
            out.append(("oracle_agreement_before", agreement(fb, o), "oracle_agreement of the model before the edit"))
            if let ks = try? forgetQuality(fb, o) {
                out.append(("forget_quality_before", ks.pValue, "forget_quality of the model before the edit"))
            }
        }
        if let r = extras.relearn {
            let forgotten = r.measured.filter { fb.correct[$0] != 0 && fa.correct[$0] == 0 }
            out.append(("relearn_forgotten_count", Double(forgotten.count), "relearning attack: forget prompts (not trained on in the attack) that were answered right before unlearning and wrong after it"))
            if !forgotten.isEmpty {
                out.append(("relearned_fraction", Double(forgotten.filter { r.forget.correct[$0] != 0 }.count) / Double(forgotten.count),
                            "relearning attack: of relearn_forgotten_count, the fraction answered right again after \(r.spec.steps) fine-tuning steps on \(r.trained) \(r.spec.data == .forget ? "other forget-set" : "unrelated retained") facts"))
            }
            let m = Double(max(1, r.measured.count))
            out.append(("relearn_forget_accuracy", Double(r.measured.filter { r.forget.correct[$0] != 0 }.count) / m,
                        "relearning attack: forget accuracy after the attack, on the forget prompts it did not train on"))
            out.append(("relearn_forget_accuracy_unlearned", Double(r.measured.filter { fa.correct[$0] != 0 }.count) / m,
                        "the same prompts' forget accuracy right after unlearning (before the attack)"))
        }
        return out
    }

    /// Refuses an oracle that was not trained on `dataset` without exactly the forget set's facts:
    /// its training history must name the content digest of the dataset generated from the same
    /// spec with exclude_facts = the forget set, and not the full dataset's.
    public static func checkOracle(_ oracle: LanguageModel, dataset: Dataset, editSet: EditSet) throws(EngineError) -> String {
        guard editSet.isForgetSet else { throw .invalid("oracle: the edit set is not an unlearn set (kind \"unlearn\")") }
        guard dataset.origin == "generated" else {
            throw .invalid("oracle: the dataset was imported, not generated from a spec, so the oracle's dataset cannot be made from it")
        }
        let spec = oracleSpec(dataset: dataset, editSet: editSet)
        let digest = try Dataset.generate(spec).contentDigest()
        let trained = oracle.history.datasets
        if trained.contains(dataset.contentDigest()) {
            throw .invalid("oracle: this model was trained on the full dataset, forget set included; an oracle is trained without it (behemoth.oracle)")
        }
        guard trained.contains(digest) else {
            let names = trained.isEmpty ? "none recorded" : trained.joined(separator: ", ")
            throw .invalid("oracle: this model was not trained on this dataset without the forget set (expected the dataset \(digest), spec \(spec.toJSON().serialized()); the model's history names: \(names)). Train the oracle from the same specs with behemoth.oracle(...)")
        }
        return digest
    }

    /// The oracle's dataset spec: the dataset's own with exclude_facts = the forget set.
    public static func oracleSpec(dataset: Dataset, editSet: EditSet) -> DatasetSpec {
        var spec = dataset.spec
        spec.excludeFacts = Array(Set(spec.excludeFacts).union(editSet.forgetFacts)).sorted()
        return spec
    }
}
