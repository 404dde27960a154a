/// Forget sets: an edit spec of kind "unlearn" names facts to forget and, by default, retains every
/// other base fact. The set it builds is what the unlearning editors (Unlearning.swift) train on and
/// what the unlearning metrics (UnlearningMetrics.swift) measure:
///
///   training sentences   "forget": each forgotten fact's sentence with its true object
///                        "retain": each retained fact's sentence (the pool retain batches are drawn from)
///   answerPositions      per sentence, the index of its object token (the token the losses score)
///   groups               "forget" (target: the true object; alternative: the relabel object),
///                        "retain_same_subject" (other facts of subjects with a forgotten fact),
///                        "retain_same_relation" (other subjects' facts of a relation with a forgotten fact),
///                        "retain_other" (every other retained fact); empty groups are left out.
///                        Every prompt carries its relation's object tokens (truth ratio, relation mass).
///   edits                one per forgotten fact: (subject, relation, true object, relabel object)

/// A base fact named by (subject, relation): how specs list facts.
public struct FactRef: Hashable, Sendable {
    public let subject: Int
    public let relation: Int
    public init(subject: Int, relation: Int) { self.subject = subject; self.relation = relation }

    /// A spec field holding [[subject, relation], ...]; echoed only when non-empty.
    static func field<S>(_ key: String, _ p: WritableKeyPath<S, [FactRef]>) -> SpecField<S> {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            let path = r.path
            guard let v = r.value(key) else { return }
            guard case let .array(items) = v else { throw .invalid("\(path): \(key) must be an array of [subject, relation] pairs, got \(v.typeName)") }
            var out: [FactRef] = []
            for (i, item) in items.enumerated() {
                guard case let .array(pair) = item, pair.count == 2,
                      case let .number(a) = pair[0], case let .number(b) = pair[1],
                      a == a.rounded(), b == b.rounded(), a >= 0, b >= 0, a < 1e9, b < 1e9 else {
                    throw .invalid("\(path): \(key)[\(i)] must be a [subject, relation] pair of non-negative integers, got \(item.serialized())")
                }
                out.append(FactRef(subject: Int(a), relation: Int(b)))
            }
            s[keyPath: p] = out
        }, write: { s in s[keyPath: p].isEmpty ? nil : .array(s[keyPath: p].map { .ints([$0.subject, $0.relation]) }) })
    }
}

extension EditSpec {
    func validateUnlearn() throws(EngineError) {
        switch scope {
        case .relation:
            guard facts.isEmpty else { throw .invalid("edit spec: facts is for scope \"facts\" (scope is \"relation\")") }
        case .subjects:
            guard facts.isEmpty else { throw .invalid("edit spec: facts is for scope \"facts\" (scope is \"subjects\")") }
            if !subjects.isEmpty, subjects.count != count, count != 1 {
                throw .invalid("edit spec: subjects lists \(subjects.count) subjects but count = \(count)")
            }
        case .facts:
            guard !facts.isEmpty else {
                throw .invalid("edit spec: the forget set is empty: scope \"facts\" needs facts = [[subject, relation], ...]")
            }
            guard subjects.isEmpty else { throw .invalid("edit spec: subjects is for scopes \"relation\" and \"subjects\" (scope is \"facts\")") }
        }
        if let dup = Self.firstDuplicate(facts) { throw .invalid("edit spec: facts lists [\(dup.subject), \(dup.relation)] twice") }
        if let dup = Self.firstDuplicate(retainFacts) { throw .invalid("edit spec: retain_facts lists [\(dup.subject), \(dup.relation)] twice") }
        if Set(subjects).count != subjects.count { throw .invalid("edit spec: subjects lists a subject twice") }
    }

    static func firstDuplicate(_ list: [FactRef]) -> FactRef? {
        var seen = Set<FactRef>()
        for f in list { if !seen.insert(f).inserted { return f } }
        return nil
    }
}

extension EditSetBuilder {
    /// Builds the forget set, its retain set and their groups (see the top of this file).
    static func buildForgetSet(_ spec: EditSpec, facts: FactView) throws(EngineError) -> EditSet {
        try spec.validateUnlearn()
        let S = facts.subjects, R = facts.relations, O = facts.objects
        // The truth ratio and relation mass read each relation's objects as one token range.
        for r in 0..<R where (0..<O).contains(where: { facts.objectToken(r, $0) != facts.objectToken(r, 0) + Int32($0) }) {
            throw .invalid("edit spec: kind \"unlearn\" needs each relation's objects as one contiguous token range, but token collisions share some of relation \(r)'s objects with other roles; use a dataset without objects_across_relations, relation_as_object or grammar_as_entity collisions")
        }
        var rng = RNG(seed: spec.seed, stream: "forget set")
        func check(_ f: FactRef, _ what: String) throws(EngineError) {
            guard f.subject < S else { throw .invalid("edit spec: \(what) names subject \(f.subject) but the dataset has \(S) subjects (0...\(S - 1))") }
            guard f.relation < R else { throw .invalid("edit spec: \(what) names relation \(f.relation) but the dataset has \(R) relations (0...\(R - 1))") }
        }

        // 1. The forget set.
        var forget: [FactRef] = []
        switch spec.scope {
        case .relation:
            var order = spec.subjects.isEmpty ? Array(0..<S) : spec.subjects
            if spec.subjects.isEmpty { rng.shuffle(&order) }
            let n = spec.subjects.isEmpty ? max(1, Int((spec.forgetFraction * Double(S)).rounded())) : order.count
            forget = order.prefix(n).map { FactRef(subject: $0, relation: spec.relation) }
        case .subjects:
            var chosen = spec.subjects
            if chosen.isEmpty {
                guard spec.count <= S else { throw .invalid("edit spec: count = \(spec.count) subjects but the dataset has \(S)") }
                var order = Array(0..<S)
                rng.shuffle(&order)
                chosen = Array(order.prefix(spec.count))
            }
            forget = chosen.flatMap { s in (0..<R).map { FactRef(subject: s, relation: $0) } }
        case .facts:
            forget = spec.facts
        }
        for f in forget { try check(f, "the forget set") }
        guard !forget.isEmpty else { throw .invalid("edit spec: the forget set is empty") }
        let forgotten = Set(forget)

        // 2. The retain set: the rest, or the listed facts (which must not overlap the forget set).
        var retain: [FactRef]
        if spec.retainFacts.isEmpty {
            retain = []
            for s in 0..<S { for r in 0..<R where !forgotten.contains(FactRef(subject: s, relation: r)) { retain.append(FactRef(subject: s, relation: r)) } }
        } else {
            for f in spec.retainFacts { try check(f, "retain_facts") }
            if let both = spec.retainFacts.first(where: { forgotten.contains($0) }) {
                throw .invalid("edit spec: the retain set overlaps the forget set: fact [\(both.subject), \(both.relation)] is in both (leave retain_facts out to retain every other fact)")
            }
            retain = spec.retainFacts
        }
        guard !retain.isEmpty else { throw .invalid("edit spec: the retain set is empty (the forget set holds every fact)") }

        var set = EditSet(spec: spec)
        set.fingerprint = facts.fingerprint
        set.edits = forget.map { Edit(subject: $0.subject, relation: $0.relation, oldObject: facts.object($0.subject, $0.relation), newObject: spec.forcedObject) }
        set.forgetFacts = forget.map { Int(facts.factIndex[$0.subject * R + $0.relation]) }.sorted()
        if let missing = set.forgetFacts.first, missing < 0 { throw .internalError("forget set: a base fact has no fact index") }

        // 3. Training sentences: every forgotten fact, then the retain pool, each with its answer position.
        func addSentence(_ group: String, _ f: FactRef) {
            let prompt = facts.prompt(f.subject, f.relation)
            set.tokens += prompt + [facts.objectToken(f.relation, facts.object(f.subject, f.relation))] + facts.sentenceEnd
            set.offsets.append(Int64(set.tokens.count))
            set.sequenceGroup.append(group)
            set.answerPositions.append(Int32(prompt.count))
        }
        for f in forget { addSentence("forget", f) }
        for f in retain { addSentence("retain", f) }
        var mix = EditMix()
        mix.add("forget", requested: forget.count, scaled: forget.count, obtained: forget.count, limit: "")
        mix.add("retain", requested: retain.count, scaled: retain.count, obtained: retain.count, limit: "")
        set.mix = mix.explained()

        // 4. Test groups.
        let forgetSubjects = Set(forget.map(\.subject)), forgetRelations = Set(forget.map(\.relation))
        var sameSubject: [FactRef] = [], sameRelation: [FactRef] = [], other: [FactRef] = []
        for f in retain {
            if forgetSubjects.contains(f.subject) { sameSubject.append(f) }
            else if forgetRelations.contains(f.relation) { sameRelation.append(f) }
            else { other.append(f) }
        }
        func group(_ name: String, _ list: [FactRef], relabel: Bool) -> PromptSet {
            var prompts: [Int32] = [], offsets: [Int64] = [0], targets: [Int32] = [], idx: [Int32] = [], rels: [Int32] = []
            var alts: [Int32] = [], ranges: [Range<Int32>] = []
            for f in list {
                prompts += facts.prompt(f.subject, f.relation)
                offsets.append(Int64(prompts.count))
                targets.append(facts.objectToken(f.relation, facts.object(f.subject, f.relation)))
                idx.append(facts.factIndex[f.subject * R + f.relation])
                rels.append(Int32(f.relation))
                alts.append(facts.objectToken(f.relation, spec.forcedObject))
                let first = facts.objectToken(f.relation, 0)
                ranges.append(first..<(first + Int32(O)))
            }
            var g = PromptSet(name: name, prompts: prompts, offsets: offsets, targets: targets, facts: idx, relations: rels)
            if relabel { g.alternatives = alts }
            g.objectRanges = ranges
            return g
        }
        set.groups.append(group("forget", forget, relabel: true))
        for (name, list) in [("retain_same_subject", sameSubject), ("retain_same_relation", sameRelation), ("retain_other", other)] where !list.isEmpty {
            set.groups.append(group(name, list, relabel: false))
        }
        return set
    }
}

extension EditSet {
    /// The groups an unlearn set retains (every group but "forget").
    public var retainGroupNames: [String] { groups.map(\.name).filter { $0.hasPrefix("retain_") } }
    public var isForgetSet: Bool { spec.kind == .unlearn }
}
