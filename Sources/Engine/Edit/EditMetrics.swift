/// What a prompt was answered with, against its group's target and alternative: a group split by
/// answer (edited_original, correlated_dependent, dependent_subject_nested) names every outcome,
/// and the four fractions sum to 1.
enum Answer {
    case target, alternative
    /// Not an object of the prompt's relation (EditSet.objectTokens), e.g. the edited relation's
    /// new object given for the correlated relation.
    case leak
    /// Another object of the prompt's relation.
    case other

    static func of(_ predicted: Int32, target: Int32, alternative: Int32, objects: Set<Int32>) -> Answer {
        if predicted == target { return .target }
        if predicted == alternative { return .alternative }
        return objects.contains(predicted) ? .other : .leak
    }
}

/// Metrics of an edit experiment, each with how it is computed.
public enum EditMetrics {
    /// How a metric is read from its group's per-prompt results.
    enum Measure {
        /// Fraction of prompts answered with the group's target.
        case accuracy
        /// Fraction of prompts answered this way (the group needs alternatives and objectTokens).
        case answer(Answer)
        /// Accuracy over the prompts whose target differs from their alternative (the old object).
        case accuracyWhereChanged
        /// How many prompts have a target that differs from their alternative (not a rate: no _before).
        case changedCount
    }

    static let definitions: [(name: String, group: String, measure: Measure, definition: String)] = [
        ("edit_success", "edited", .accuracy, "exact-match accuracy on the edited prompts with the NEW object as target (greedy next token)"),
        ("paraphrase_success", "edited_paraphrase", .accuracy, "exact-match accuracy on the edited facts in their relation's held-out templates (paraphrases never trained), with the NEW object as target; absent when the dataset holds out no template"),
        ("old_value_retained", "edited_original", .accuracy, "fraction of edited prompts still answered with the OLD object"),
        ("edited_leak_rate", "edited_original", .answer(.leak), "fraction of edited prompts answered with a token that is not an object of the edited relation (e.g. another relation's object); edit_success + old_value_retained + edited_leak_rate + edited_other = 1"),
        ("edited_other", "edited_original", .answer(.other), "fraction of edited prompts answered with an object of the edited relation that is neither the old nor the new one"),
        ("remaining_accuracy", "remaining", .accuracy, "exact-match accuracy on every base fact no group trained or tested (untouched facts)"),
        ("same_subject_other_relations", "same_subject_other_rel", .accuracy, "accuracy on the edited subjects' other relations (not trained)"),
        ("same_value_neighbours", "with_same_value", .accuracy, "accuracy on held-out subjects that share the new value (not trained)"),
        ("same_relation_neighbours", "with_same_rel", .accuracy, "accuracy on held-out subjects of the edited relation (not trained)"),
        ("dependent_update_rate", "correlated_dependent", .accuracy, "fraction of edited subjects whose correlated relation now gives the object with the new value's ordinal"),
        ("correlated_retention", "correlated_retention", .accuracy, "fraction of edited subjects whose correlated relation still gives its old object"),
        ("correlated_leak_rate", "correlated_dependent", .answer(.leak), "fraction of edited subjects whose correlated relation is answered with a token that is not one of its objects, such as the edited relation's new object (the edit leaking into the dependent prompt); dependent_update_rate + correlated_retention + correlated_leak_rate + correlated_other = 1"),
        ("correlated_other", "correlated_dependent", .answer(.other), "fraction of edited subjects whose correlated relation is answered with one of its objects other than the old one and the one with the new value's ordinal"),
        ("forgetting_success", "forgotten", .accuracy, "fraction of forgotten (trained) prompts answered with the forced object"),
        ("forgetting_success_changed", "forgotten", .accuracyWhereChanged, "forgetting_success over the forgotten subjects whose object changed (old object ≠ forced object); subjects that already held the forced object are left out"),
        ("forgetting_changed_subjects", "forgotten", .changedCount, "number of forgotten subjects whose old object differs from the forced object (the prompts forgetting_success_changed is over)"),
        ("forgetting_generalization", "forgotten_heldout", .accuracy, "fraction of held-out subjects of the forgotten relation answered with the forced object"),
        ("forgetting_heldout_retention", "forgotten_heldout_original", .accuracy, "fraction of held-out subjects of the forgotten relation still answered with their own object"),
        ("same_subject_object", "same_subject_object", .accuracy, "nested_subject: accuracy on the edited subject's own object fact (kept, not trained)"),
        ("nested_dependent_update_rate", "dependent_subject_nested", .accuracy, "nested_object: fraction of subjects holding the edited object whose subject→nested fact now gives the new nested value"),
        ("nested_dependent_retention", "dependent_subject_nested_retention", .accuracy, "nested_object: fraction of those subjects still giving the old nested value"),
        ("nested_dependent_leak_rate", "dependent_subject_nested", .answer(.leak), "nested_object: fraction of those subjects whose subject→nested fact is answered with a token that is not a nested value of the relation; nested_dependent_update_rate + nested_dependent_retention + nested_dependent_leak_rate + nested_dependent_other = 1"),
        ("nested_dependent_other", "dependent_subject_nested", .answer(.other), "nested_object: fraction of those subjects answered with a nested value of the relation other than the old and the new one"),
    ]

    /// The metric's value on one group's results, or nil where it is not defined (a split group
    /// without alternatives, as imported from an official folder; no changed prompt).
    static func value(_ measure: Measure, _ prompts: PromptSet, _ result: GroupResult, objects: Set<Int32>?) -> Double? {
        guard result.count > 0 else { return nil }
        let alternatives = prompts.alternatives
        switch measure {
        case .accuracy:
            return result.accuracy
        case .answer(let wanted):
            guard let alternatives, let objects else { return nil }
            let n = (0..<result.count).filter {
                Answer.of(result.predicted[$0], target: prompts.targets[$0], alternative: alternatives[$0], objects: objects) == wanted
            }.count
            return Double(n) / Double(result.count)
        case .accuracyWhereChanged, .changedCount:
            guard let alternatives else { return nil }
            let changed = (0..<result.count).filter { prompts.targets[$0] != alternatives[$0] }
            if case .changedCount = measure { return Double(changed.count) }
            guard !changed.isEmpty else { return nil }
            return Double(changed.filter { result.correct[$0] != 0 }.count) / Double(changed.count)
        }
    }

    /// Every metric the edit set's groups allow, with its value before the edit, the remaining
    /// accuracy drop and the CounterFact scores. `ownRuns` (one at a time): the edited groups as
    /// measured right after each edit's own run, which replace the after results for them.
    static func all(editSet: EditSet, before: [GroupResult], after: [GroupResult],
                    ownRuns: [String: GroupResult]) -> [(name: String, value: Double, definition: String)] {
        var metrics: [(String, Double, String)] = []
        for (name, group, measure, definition) in definitions {
            guard let prompts = editSet.group(group), let a = after.first(where: { $0.name == group }),
                  var measured = self.value(measure, prompts, a, objects: editSet.objectTokens[group]) else { continue }
            var def = definition
            if let own = ownRuns[group], let v = self.value(measure, prompts, own, objects: editSet.objectTokens[group]) {
                measured = v
                def += " (one at a time: each edit applied alone to the original model, averaged)"
            }
            metrics.append((name, measured, def))
            if case .changedCount = measure { continue }
            if let b = before.first(where: { $0.name == group }), let v = self.value(measure, prompts, b, objects: editSet.objectTokens[group]) {
                metrics.append((name + "_before", v, "the same, before the edit"))
            }
        }
        if let rb = before.first(where: { $0.name == "remaining" }), let ra = after.first(where: { $0.name == "remaining" }) {
            metrics.append(("remaining_accuracy_drop", rb.accuracy - ra.accuracy, "remaining accuracy before minus after (points lost on untouched facts)"))
        }
        metrics += sharedTokenSplit(editSet: editSet, before: before, after: after)
        metrics += counterFact(edited: ownRuns["edited"] ?? after.first { $0.name == "edited" },
                               paraphrases: ownRuns["edited_paraphrase"] ?? after.first { $0.name == "edited_paraphrase" },
                               neighbours: after.first { $0.name == "with_same_rel" })
        return metrics.map { (name: $0.0, value: $0.1, definition: $0.2) }
    }

    /// The groups split by whether a prompt's fact shares a token with an edited fact
    /// (EditSet.sharedToken): prompt counts always, accuracies only for a non-empty split.
    static let sharedTokenGroups = [("remaining", "remaining_accuracy", "remaining", "untouched facts"),
                                    ("with_same_rel", "same_relation_neighbours", "same_relation_neighbours", "held-out subjects of the edited relation")]

    static func sharedTokenSplit(editSet: EditSet, before: [GroupResult], after: [GroupResult]) -> [(String, Double, String)] {
        var out: [(String, Double, String)] = []
        let sharing = "share a token with an edited fact (one of their subject, relation or object tokens is one of an edited fact's subject, relation, old or new object tokens; the edited relation's word in the relation position does not count: that is the shared relation)"
        for (group, metric, countPrefix, what) in sharedTokenGroups {
            guard let mask = editSet.sharedToken[group], let a = after.first(where: { $0.name == group }), a.count == mask.count else { continue }
            let b = before.first(where: { $0.name == group }).flatMap { $0.count == mask.count ? $0 : nil }
            for (shared, suffix) in [(true, "shared_token"), (false, "no_shared_token")] {
                let idx = mask.indices.filter { mask[$0] == shared }
                let which = shared ? "that \(sharing)" : "that do not share a token with an edited fact"
                out.append(("\(countPrefix)_\(suffix)_prompts", Double(idx.count), "number of prompts of \(what) \(which)"))
                guard !idx.isEmpty else { continue }
                func accuracy(_ r: GroupResult) -> Double { Double(idx.filter { r.correct[$0] != 0 }.count) / Double(idx.count) }
                out.append(("\(metric)_\(suffix)", accuracy(a), "accuracy on \(what) \(which)"))
                if let b { out.append(("\(metric)_\(suffix)_before", accuracy(b), "the same, before the edit")) }
            }
        }
        return out
    }

    /// CounterFact-style scores (Meng et al. 2022) on our groups: each a fraction of prompts whose
    /// target beats its alternative (score) and the mean probability margin (magnitude).
    static func counterFact(edited: GroupResult?, paraphrases: GroupResult? = nil, neighbours: GroupResult?) -> [(String, Double, String)] {
        var out: [(String, Double, String)] = []
        func scores(_ g: GroupResult?, _ score: String, _ magnitude: String, _ scoreDefinition: String, _ magnitudeDefinition: String) {
            guard let g, g.count > 0, g.alternativeProbability.count == g.count else { return }
            let pairs = zip(g.targetProbability, g.alternativeProbability)
            out.append((score, Double(pairs.filter { $0 > $1 }.count) / Double(g.count), scoreDefinition))
            out.append((magnitude, pairs.reduce(0.0) { $0 + Double($1.0 - $1.1) } / Double(g.count), magnitudeDefinition))
        }
        scores(edited, "efficacy_score", "efficacy_magnitude", "CounterFact ES: fraction of edited prompts with p(new) > p(old)",
               "CounterFact EM: mean p(new) − p(old) over edited prompts")
        scores(paraphrases, "paraphrase_score", "paraphrase_magnitude",
               "CounterFact PS: fraction of the edited facts' held-out-template prompts (paraphrases) with p(new) > p(old)",
               "CounterFact PM: mean p(new) − p(old) over the edited facts' held-out-template prompts")
        scores(neighbours, "neighborhood_score", "neighborhood_magnitude", "CounterFact NS: fraction of same-relation neighbour prompts with p(true) > p(new object)",
               "CounterFact NM: mean p(true) − p(new object) over same-relation neighbours")
        return out
    }
}

/// The outcome of an edit: per-group results before and after, metrics, weight changes.
public struct EditResult {
    public var before: [GroupResult] = []
    public var after: [GroupResult] = []
    public var metrics: [(name: String, value: Double, definition: String)] = []
    /// ΔW of every trained tensor (merged LoRA deltas for LoRA).
    public var deltas: [(entry: TensorEntry, values: [Float])] = []
    public var deltaNorms: [(String, Double)] = []
    public var adapters: [LoRAAdapter] = []
    /// Each run's editor report (EditArtifacts.report) and the vectors editors left.
    public var editorRuns: [JSON] = []
    public var vectors: [(name: String, values: [Float], shape: [Int])] = []
    public var perEdit: [JSON] = []
    public var seconds = 0.0
    /// Time the "before" evaluation took in this experiment (0 when it came from BeforeResults).
    public var beforeSeconds = 0.0
    public var beforeCached = false
    public var steps = 0
    /// finish() came before the last step: the metrics describe the partly trained edit.
    public var stoppedEarly = false
    public var finalLoss: Float = 0

    public func group(_ name: String, after isAfter: Bool = true) -> GroupResult? {
        (isAfter ? after : before).first { $0.name == name }
    }

    public func metricsJSON() -> JSON {
        .object(metrics.map { ($0.name, .object([("value", .number($0.value)), ("definition", .string($0.definition))])) })
    }
}
