/// Nested remaps ("Mike works at Acme, Acme is in Springfield, so Mike lives in Springfield"):
///   nested_subject: change one subject's subject→nested fact (s, snr_r) to another nested value;
///     tests whether the subject's own object fact (s, r) is kept ("same_subject_object").
///   nested_object: change one object's object→nested fact (o, onr_r); tests whether the subjects
///     whose r-object is o follow in their subject→nested facts ("dependent_subject_nested", the new
///     value) or keep them ("dependent_subject_nested_retention", the old value).
/// The mix follows the base edits: the edited fact `repeats` times, unchanged facts of the same
/// relation (half held out), and regularisation from other relations.
extension EditSetBuilder {
    static func buildNested(_ spec: EditSpec, facts: FactView) throws(EngineError) -> EditSet {
        let S = facts.subjects, R = facts.relations, O = facts.objects, K = facts.nested
        guard K >= 2 else { throw .invalid("edit spec: kind \"\(spec.kind.rawValue)\" needs a dataset with nested objects (num_nested_objects ≥ 2)") }
        let r0 = spec.relation
        guard r0 < R else { throw .invalid("edit spec: relation = \(r0) but the dataset has \(R) relations (0...\(R - 1))") }
        if let k = spec.newObject, k >= K { throw .invalid("edit spec: new_object = \(k) but relation \(r0) has \(K) nested values") }
        var rng = RNG(seed: spec.seed, stream: "edit set")
        var set = EditSet(spec: spec)
        set.fingerprint = facts.fingerprint
        var used = Set<Int>()  // fact indices trained or tested
        var groups: [(String, [(Int, Int32, Int32)])] = []  // name, (fact, target token, alternative or -1)
        func add(_ name: String, _ f: Int, _ target: Int32, alt: Int32 = -1) {
            if let i = groups.firstIndex(where: { $0.0 == name }) { groups[i].1.append((f, target, alt)) } else { groups.append((name, [(f, target, alt)])) }
            used.insert(f)
        }
        func train(_ group: String, _ f: Int, _ tailOrdinal: Int, times: Int = 1) {
            let sentence = facts.promptOfFact(f) + [facts.tailToken(f, tailOrdinal)] + facts.sentenceEnd
            for _ in 0..<times {
                set.tokens += sentence
                set.offsets.append(Int64(set.tokens.count))
                set.sequenceGroup.append(group)
            }
            used.insert(f)
        }
        func newValue(old: Int) -> Int {
            if let k = spec.newObject { return k }
            let k = rng.below(K - 1)
            return k >= old ? k + 1 : k
        }

        /// Changes fact f (of entity `head`) to a new nested value, tested with the new value
        /// ("edited") and the old one ("edited_original"); trained below, once the mix's scale is
        /// known. Returns the old and new values.
        func editFact(_ f: Int, head: Int, what: String) throws(EngineError) -> (old: Int, new: Int) {
            let old = facts.tailOfFact(f), new = newValue(old: old)
            guard new != old else { throw .invalid("edit spec: new_object = \(new) is already the \(what)'s nested value") }
            set.edits = [Edit(subject: head, relation: r0, oldObject: old, newObject: new)]
            add("edited", f, facts.tailToken(f, new), alt: facts.tailToken(f, old))
            add("edited_original", f, facts.tailToken(f, old), alt: facts.tailToken(f, new))
            return (old, new)
        }

        let editedFact: Int, sameRelation: [Int]
        if spec.kind == .nestedSubject {
            let s = spec.subjects.first ?? rng.below(S)
            guard s < S else { throw .invalid("edit spec: subjects[0] = \(s) but the dataset has \(S) subjects") }
            editedFact = Int(facts.subjectNestedFact[s * R + r0])
            _ = try editFact(editedFact, head: s, what: "subject")
            let own = Int(facts.factIndex[s * R + r0])
            add("same_subject_object", own, facts.objectToken(r0, facts.object(s, r0)))
            for r in 0..<R where r != r0 { add("same_subject_other_rel", Int(facts.factIndex[s * R + r]), facts.objectToken(r, facts.object(s, r))) }
            var others = (0..<S).filter { $0 != s }.map { Int(facts.subjectNestedFact[$0 * R + r0]) }
            rng.shuffle(&others)
            sameRelation = others
        } else {
            let candidates = (0..<O).filter { facts.objectNestedFact[r0 * O + $0] >= 0 }
            guard !candidates.isEmpty else { throw .invalid("edit spec: relation \(r0) has no object→nested facts") }
            let o = spec.subjects.first ?? candidates[rng.below(candidates.count)]
            guard o < O, facts.objectNestedFact[r0 * O + o] >= 0 else {
                throw .invalid("edit spec: object \(o) of relation \(r0) has no object→nested fact (subjects names the object for nested_object)")
            }
            editedFact = Int(facts.objectNestedFact[r0 * O + o])
            let (old, new) = try editFact(editedFact, head: o, what: "object")
            for s in 0..<S where facts.object(s, r0) == o {
                let f = Int(facts.subjectNestedFact[s * R + r0])
                guard f >= 0 else { continue }
                add("dependent_subject_nested", f, facts.tailToken(f, new), alt: facts.tailToken(f, old))
                add("dependent_subject_nested_retention", f, facts.tailToken(f, old), alt: facts.tailToken(f, new))
            }
            var others = candidates.filter { $0 != o }.map { Int(facts.objectNestedFact[r0 * O + $0]) }
            rng.shuffle(&others)
            sameRelation = others
        }
        // Regularisation: base facts of other relations that no group uses. Its source and the same
        // relation's (the other nested facts, half trained, half held out) are independent, so
        // the mix's scale is the smaller of the two parts' own.
        var pool: [Int] = []
        for s in 0..<S { for r in 0..<R where r != r0 { let f = Int(facts.factIndex[s * R + r]); if !used.contains(f) { pool.append(f) } } }
        rng.shuffle(&pool)
        var mix = EditMix()
        if !spec.absoluteCounts {
            for (have, asked) in [(sameRelation.count / 2, spec.sameRelationPerEdit), (pool.count, spec.regularization)] where asked > 0 {
                mix.scale = min(mix.scale, Double(have) / Double(asked))
            }
        }
        let editRepeats = max(1, mix.scaled(spec.repeats))
        train("edited", editedFact, set.edits[0].newObject, times: editRepeats)
        mix.add("edited", requested: spec.repeats, scaled: editRepeats, obtained: editRepeats, limit: "")
        let n = min(sameRelation.count / 2, mix.scaled(spec.sameRelationPerEdit))
        for f in sameRelation.prefix(n) { train("with_same_rel", f, facts.tailOfFact(f)) }
        for f in sameRelation.dropFirst(n).prefix(n) { add("with_same_rel", f, facts.tailToken(f, facts.tailOfFact(f))) }
        mix.add("with_same_rel", requested: spec.sameRelationPerEdit, scaled: mix.scaled(spec.sameRelationPerEdit), obtained: n,
                limit: "only \(sameRelation.count) other facts of the edited nested relation exist, and as many as are trained are held out for testing")
        let regCount = min(pool.count, mix.scaled(spec.regularization))
        for f in pool.prefix(regCount) { train("regularization", f, facts.tailOfFact(f)) }
        mix.add("regularization", requested: spec.regularization, scaled: mix.scaled(spec.regularization), obtained: regCount,
                limit: "only \(pool.count) facts of other relations are unused")
        set.mix = mix.explained()
        // Both nested relations of r0 answer with r0's nested values.
        let nestedValues = Set((0..<K).map { facts.tailToken(editedFact, $0) })
        set.objectTokens["edited_original"] = nestedValues
        if spec.kind == .nestedObject { set.objectTokens["dependent_subject_nested"] = nestedValues }
        // Remaining: every base fact untouched.
        for s in 0..<S {
            for r in 0..<R {
                let f = Int(facts.factIndex[s * R + r])
                if !used.contains(f) { add("remaining", f, facts.objectToken(r, facts.object(s, r))) }
            }
        }
        for (name, rows) in groups {
            var prompts: [Int32] = [], offsets: [Int64] = [0], targets: [Int32] = [], idx: [Int32] = [], rels: [Int32] = [], alts: [Int32] = []
            for (f, target, alt) in rows {
                prompts += facts.promptOfFact(f)
                offsets.append(Int64(prompts.count))
                targets.append(target)
                idx.append(Int32(f))
                rels.append(Int32(r0))
                alts.append(alt)
            }
            var g = PromptSet(name: name, prompts: prompts, offsets: offsets, targets: targets, facts: idx, relations: rels)
            if alts.contains(where: { $0 >= 0 }) { g.alternatives = alts }
            set.groups.append(g)
        }
        return set
    }
}
