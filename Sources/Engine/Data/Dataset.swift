/// A relation of the fact table. Base relations are 0..<R; nested data adds the subject→nested
/// relations (R..<2R) and the object→nested relations (2R..<3R).
public struct Relation: Equatable, Sendable {
    public enum Kind: Int32, Sendable {
        case base = 0, subjectNested = 1, objectNested = 2
        public var name: String {
            switch self {
            case .base: return "base"
            case .subjectNested: return "subject_nested"
            case .objectNested: return "object_nested"
            }
        }
    }
    public let name: String
    public let kind: Kind
    /// The relation word's token id.
    public let token: Int32
    /// The base relation r this one belongs to (itself for base relations).
    public let baseRelation: Int
    /// Vocabulary role indices: what the fact's head and tail ordinals count.
    public let headRole: Int
    public let tailRole: Int
}

/// One fact: head and tail are ordinals within the relation's head and tail roles (subject s,
/// object o of relation r, nested object k of relation r); alt is the dissenting minority object
/// (-1 if none).
public struct Fact: Equatable, Sendable {
    public let head: Int32, relation: Int32, tail: Int32, alt: Int32
    public init(head: Int32, relation: Int32, tail: Int32, alt: Int32 = -1) {
        self.head = head; self.relation = relation; self.tail = tail; self.alt = alt
    }
}

/// A synthetic knowledge dataset: vocabulary with roles, relations, the fact table, the training
/// token sequences (one sentence each, ending in EOS; `repeats` copies of each) and the evaluation
/// groups, plus the spec it was made from. Immutable once built; safe to share across threads.
public final class Dataset: @unchecked Sendable {
    public let spec: DatasetSpec
    /// "generated" or "imported" (from the official generator's folder).
    public let origin: String
    public let vocabulary: Vocabulary
    public let relations: [Relation]
    /// n x 4 row-major: head, relation, tail, alt. S–O facts come first at index s*R + r; for nested
    /// data the S–NO facts follow at S*R + s*R + r, then the O–NO facts.
    public let facts: [Int32]
    /// Training sentences: sequence i is tokens[offsets[i]..<offsets[i+1]].
    public let tokens: [Int32]
    public let offsets: [Int64]
    /// The fact each sequence states (its object may be the fact's alt).
    public let sequenceFacts: [Int32]
    /// Evaluation groups (PromptSet: prompts, targets, the fact and relation each asks about).
    public let evalGroups: [PromptSet]
    /// Subjects that also get question sentences (sorted), empty without questions.
    public let questionSubjects: [Int32]
    /// For nested data: R x O, the nested object of object o of relation r (-1 where no fact uses o).
    public let nestedMap: [Int32]
    /// Each relation's training and held-out templates (nil: one template, the official grammar),
    /// drawn from the spec and its seed.
    public let templatePlan: TemplatePlan?

    public init(spec: DatasetSpec, origin: String, vocabulary: Vocabulary, relations: [Relation], facts: [Int32],
                tokens: [Int32], offsets: [Int64], sequenceFacts: [Int32], evalGroups: [PromptSet],
                questionSubjects: [Int32], nestedMap: [Int32]) throws(EngineError) {
        self.spec = spec
        self.origin = origin
        self.vocabulary = vocabulary
        self.relations = relations
        self.facts = facts
        self.tokens = tokens
        self.offsets = offsets
        self.sequenceFacts = sequenceFacts
        // Each prompt's relation, from the fact it asks about (per-relation accuracy).
        let nFacts = facts.count / 4
        self.evalGroups = evalGroups.map { g in
            var g = g
            g.relations = g.facts.map { $0 >= 0 && Int($0) < nFacts ? facts[4 * Int($0) + 1] : -1 }
            return g
        }
        self.questionSubjects = questionSubjects
        self.nestedMap = nestedMap
        self.templatePlan = try TemplatePlan.make(spec, relations: relations.count)
        try validate()
    }

    // MARK: sizes

    public var vocabSize: Int { vocabulary.size }
    public var layout: VocabularyLayout { vocabulary.layout }
    public var numSubjects: Int { layout.subjects }
    /// Base relations R.
    public var numBaseRelations: Int { layout.relationships }
    public var numObjects: Int { layout.objects }
    public var numNestedObjects: Int { layout.nested }
    public var numFacts: Int { facts.count / 4 }
    public var numSequences: Int { offsets.count - 1 }
    public var numTokens: Int { tokens.count }

    // MARK: access

    public func fact(_ i: Int) -> Fact {
        Fact(head: facts[4 * i], relation: facts[4 * i + 1], tail: facts[4 * i + 2], alt: facts[4 * i + 3])
    }

    /// Index of the S–O fact (s, r).
    public func factIndex(subject s: Int, relation r: Int) -> Int { s * numBaseRelations + r }

    public func sequence(_ i: Int) -> ArraySlice<Int32> { tokens[Int(offsets[i])..<Int(offsets[i + 1])] }

    public func evalGroup(named name: String) -> PromptSet? { evalGroups.first { $0.name == name } }

    public func subjectTokens(_ s: Int) -> [Int32] { layout.subjectTokens(s) }
    public func relationToken(_ r: Int) -> Int32 { relations[r].token }
    public func objectToken(relation r: Int, ordinal o: Int) -> Int32 { layout.objectToken(relation: r, ordinal: o) }

    /// How many entities a role's ordinals count (subjects, not tokens, for two-token subjects).
    public func ordinalCount(role: Int) -> Int {
        let name = vocabulary.roles[role].name
        return name == "subject" || name == "subject_first" ? numSubjects : vocabulary.roles[role].count
    }

    /// Token ids of ordinal k of a vocabulary role (a two-token subject gives two ids).
    public func entityTokens(role: Int, ordinal k: Int) -> [Int32] {
        let name = vocabulary.roles[role].name
        if name == "subject" || name == "subject_first" { return layout.subjectTokens(k) }
        return [layout.token(vocabulary.roles[role].first + k)]
    }

    /// The head word's token ids of fact i.
    public func headTokens(ofFact i: Int) -> [Int32] {
        let f = fact(i)
        return entityTokens(role: relations[Int(f.relation)].headRole, ordinal: Int(f.head))
    }

    /// The tail (target) token of fact i; `alt: true` gives the minority object instead.
    public func tailToken(ofFact i: Int, alt: Bool = false) -> Int32 {
        let f = fact(i)
        let role = vocabulary.roles[relations[Int(f.relation)].tailRole]
        return layout.token(role.first + Int(alt ? f.alt : f.tail))
    }

    public func nestedObjectToken(relation r: Int, ordinal k: Int) -> Int32 { layout.nestedObjectToken(relation: r, ordinal: k) }

    /// The default (SRO) evaluation prompt of fact i: ` SS <head> W0 W1 RR <relation> W2 OO`, the
    /// template the official fine-tuning data uses, whatever grammar the training text uses.
    public func sroPrompt(ofFact i: Int) -> [Int32] {
        let L = layout
        return [Vocabulary.ss] + headTokens(ofFact: i) + [L.w(0), L.w(1), Vocabulary.rr, relations[Int(fact(i).relation)].token, L.w(2), Vocabulary.oo]
    }

    /// The SRO training sentence of fact i (prompt, object, ".", EOS); `tail` replaces the object
    /// token (an edit's new object).
    public func sroSentence(ofFact i: Int, tail: Int32? = nil) -> [Int32] {
        sroPrompt(ofFact: i) + [tail ?? tailToken(ofFact: i), Vocabulary.dot, Vocabulary.eos]
    }

    /// Fact i's prompt in template t of the pool: its words before the object.
    public func templatePrompt(ofFact i: Int, template t: Int) -> [Int32] {
        guard let plan = templatePlan, t >= 0, t < plan.pool.count else { return sroPrompt(ofFact: i) }
        var out: [Int32] = []
        Template.fill(&out, plan.pool[t].resolved(layout), head: Head(headTokens(ofFact: i)),
                      relation: relations[Int(fact(i).relation)].token, object: nil)
        return out
    }

    /// Fact i's prompts in its relation's held-out templates (paraphrases never trained for it).
    public func paraphrasePrompts(ofFact i: Int) -> [[Int32]] {
        guard let plan = templatePlan else { return [] }
        return plan.heldout[Int(fact(i).relation)].map { templatePrompt(ofFact: i, template: $0) }
    }

    public func decode<C: Collection>(_ t: C) throws(EngineError) -> String where C.Element == Int32 { try vocabulary.decode(t) }

    // MARK: validation (every invariant a loaded file must satisfy)

    func validate() throws(EngineError) {
        func bad(_ m: String) -> EngineError { .format("dataset: \(m)") }
        let V = vocabulary.size
        // Roles partition 0..<V.
        var next = 0
        for r in vocabulary.roles {
            guard r.first == next, r.count >= 0 else { throw bad("vocabulary role \(r.name) starts at \(r.first), expected \(next)") }
            next += r.count
        }
        guard next == V else { throw bad("vocabulary roles cover 0..<\(next) but the vocabulary has \(V) ids") }
        // Relations.
        for (i, rel) in relations.enumerated() {
            guard rel.headRole >= 0, rel.headRole < vocabulary.roles.count, rel.tailRole >= 0, rel.tailRole < vocabulary.roles.count else {
                throw bad("relation \(i) names a role that does not exist")
            }
            guard rel.token >= 0, Int(rel.token) < V else { throw bad("relation \(i) token \(rel.token) is outside the vocabulary") }
            guard rel.baseRelation >= 0, rel.baseRelation < numBaseRelations else { throw bad("relation \(i) has base relation \(rel.baseRelation) out of range") }
        }
        // Facts.
        guard facts.count % 4 == 0 else { throw bad("facts has \(facts.count) values, not a multiple of 4") }
        for i in 0..<numFacts {
            let f = fact(i)
            guard f.relation >= 0, Int(f.relation) < relations.count else { throw bad("fact \(i) has relation \(f.relation), but there are \(relations.count) relations") }
            let rel = relations[Int(f.relation)]
            let hc = ordinalCount(role: rel.headRole)
            guard f.head >= 0, Int(f.head) < hc else { throw bad("fact \(i) has head \(f.head) outside 0..<\(hc)") }
            let tc = vocabulary.roles[rel.tailRole].count
            guard f.tail >= 0, Int(f.tail) < tc else { throw bad("fact \(i) has tail \(f.tail) outside 0..<\(tc)") }
            guard f.alt >= -1, Int(f.alt) < tc, f.alt != f.tail else { throw bad("fact \(i) has alt \(f.alt), which is not -1 or another object of 0..<\(tc)") }
        }
        // The fact order the accessors rely on: S–O at s*R + r, then S–NO at S*R + s*R + r, then O–NO.
        let S = numSubjects, R = numBaseRelations, edges = S * R
        let expected = numNestedObjects > 0 ? 2 * edges : edges
        guard numFacts >= expected else { throw bad("facts has \(numFacts) rows, fewer than the \(expected) subject facts") }
        for i in 0..<expected {
            let want = i < edges ? (Int32(i / R), Int32(i % R)) : (Int32((i - edges) / R), Int32(R + (i - edges) % R))
            guard facts[4 * i] == want.0, facts[4 * i + 1] == want.1 else {
                throw bad("fact \(i) is (subject \(facts[4 * i]), relation \(facts[4 * i + 1])), expected (\(want.0), \(want.1))")
            }
        }
        for i in expected..<numFacts where relations[Int(facts[4 * i + 1])].kind != .objectNested {
            throw bad("fact \(i) should be an object→nested fact")
        }
        // Sequences.
        try Dataset.checkOffsets(offsets, total: tokens.count, what: "offsets")
        try Dataset.checkTokens(tokens, vocab: V, what: "tokens")
        guard sequenceFacts.count == numSequences else { throw bad("sequence_facts has \(sequenceFacts.count) entries for \(numSequences) sequences") }
        for (i, f) in sequenceFacts.enumerated() where f < 0 || Int(f) >= numFacts {
            throw bad("sequence_facts[\(i)] = \(f) is not a fact index (0..<\(numFacts))")
        }
        // Evaluation groups.
        var names = Set<String>()
        for g in evalGroups {
            guard names.insert(g.name).inserted else { throw bad("two evaluation groups are named \(g.name)") }
            guard g.targets.count == g.facts.count, g.offsets.count == g.targets.count + 1 else {
                throw bad("evaluation group \(g.name): \(g.targets.count) targets, \(g.facts.count) facts and \(g.offsets.count) prompt offsets do not match")
            }
            try Dataset.checkOffsets(g.offsets, total: g.prompts.count, what: "eval/\(g.name)/prompt_offsets")
            try Dataset.checkTokens(g.prompts, vocab: V, what: "eval/\(g.name)/prompts")
            try Dataset.checkTokens(g.targets, vocab: V, what: "eval/\(g.name)/targets")
            for (i, f) in g.facts.enumerated() where f < 0 || Int(f) >= numFacts {
                throw bad("eval/\(g.name)/facts[\(i)] = \(f) is not a fact index (0..<\(numFacts))")
            }
        }
        for s in questionSubjects where s < 0 || Int(s) >= numSubjects { throw bad("question subject \(s) is out of range") }
        if numNestedObjects > 0 {
            guard nestedMap.count == numBaseRelations * numObjects else { throw bad("nested_map has \(nestedMap.count) entries, expected \(numBaseRelations * numObjects)") }
            for v in nestedMap where v < -1 || Int(v) >= numNestedObjects { throw bad("nested_map holds \(v), outside -1..<\(numNestedObjects)") }
        } else if !nestedMap.isEmpty {
            throw bad("nested_map is present but the dataset has no nested objects")
        }
    }

    static func checkOffsets(_ o: [Int64], total: Int, what: String) throws(EngineError) {
        guard let first = o.first, first == 0 else { throw .format("dataset: \(what) must start at 0") }
        guard o.last! == Int64(total) else { throw .format("dataset: \(what) ends at \(o.last!), but there are \(total) tokens") }
        for i in 1..<o.count where o[i] < o[i - 1] { throw .format("dataset: \(what) decreases at \(i) (\(o[i - 1]) then \(o[i]))") }
    }

    static func checkTokens(_ t: [Int32], vocab: Int, what: String) throws(EngineError) {
        let v = Int32(vocab)
        for (i, x) in t.enumerated() where x < 0 || x >= v {
            throw .format("dataset: \(what)[\(i)] = \(x) is outside the vocabulary 0..<\(vocab)")
        }
    }

    // MARK: relations and roles for a layout

    /// The relation table for a layout: base, then subject→nested and object→nested ones.
    static func makeRelations(_ layout: VocabularyLayout, roles: [VocabRole]) -> [Relation] {
        func idx(_ n: String) -> Int { roles.firstIndex { $0.name == n }! }
        let subjectRole = idx(layout.subjectWidth == 1 ? "subject" : "subject_first")
        var out: [Relation] = []
        for r in 0..<layout.relationships {
            out.append(Relation(name: "r\(r)", kind: .base, token: layout.relationToken(r), baseRelation: r,
                                headRole: subjectRole, tailRole: idx("object/r\(r)")))
        }
        if layout.nested > 0 {
            for r in 0..<layout.relationships {
                out.append(Relation(name: "subject_nested/r\(r)", kind: .subjectNested, token: layout.subjectNestedRelationToken(r),
                                    baseRelation: r, headRole: subjectRole, tailRole: idx("nested_object/r\(r)")))
            }
            for r in 0..<layout.relationships {
                out.append(Relation(name: "object_nested/r\(r)", kind: .objectNested, token: layout.objectNestedRelationToken(r),
                                    baseRelation: r, headRole: idx("object/r\(r)"), tailRole: idx("nested_object/r\(r)")))
            }
        }
        return out
    }

    // MARK: summary (bh_dataset_info)

    /// Arrays by HDF5 path, with dtype and shape.
    public func arrayList() -> [(name: String, dtype: String, shape: [Int])] {
        var a: [(String, String, [Int])] = [
            ("facts", "int32", [numFacts, 4]),
            ("tokens", "int32", [tokens.count]),
            ("offsets", "int64", [offsets.count]),
            ("sequence_facts", "int32", [sequenceFacts.count]),
            ("vocab/role_first", "int32", [vocabulary.roles.count]),
            ("vocab/role_count", "int32", [vocabulary.roles.count]),
            ("vocab/subject_tokens", "int32", [numSubjects, layout.subjectColumns]),
            ("relations", "int32", [relations.count, 5]),
        ]
        if !layout.tokenMap.isEmpty { a.append(("vocab/token_map", "int32", [vocabSize])) }
        if !nestedMap.isEmpty { a.append(("nested_map", "int32", [numBaseRelations, numObjects])) }
        if !questionSubjects.isEmpty { a.append(("question_subjects", "int32", [questionSubjects.count])) }
        for g in evalGroups {
            a.append(("eval/\(g.name)/prompts", "int32", [g.prompts.count]))
            a.append(("eval/\(g.name)/prompt_offsets", "int64", [g.offsets.count]))
            a.append(("eval/\(g.name)/targets", "int32", [g.targets.count]))
            a.append(("eval/\(g.name)/facts", "int32", [g.facts.count]))
        }
        return a
    }

    /// An int32 array by its HDF5 path, or nil.
    public func int32Array(_ name: String) -> [Int32]? {
        switch name {
        case "facts": return facts
        case "tokens": return tokens
        case "sequence_facts": return sequenceFacts
        case "vocab/role_first": return vocabulary.roles.map { Int32($0.first) }
        case "vocab/role_count": return vocabulary.roles.map { Int32($0.count) }
        case "vocab/subject_tokens":
            var out: [Int32] = []
            out.reserveCapacity(numSubjects * layout.subjectColumns)
            for s in 0..<numSubjects {
                let t = layout.subjectTokens(s)
                out += t + [Int32](repeating: -1, count: layout.subjectColumns - t.count)
            }
            return out
        case "vocab/token_map": return layout.tokenMap.isEmpty ? nil : layout.tokenMap
        case "relations": return relationTable()
        case "nested_map": return nestedMap.isEmpty ? nil : nestedMap
        case "question_subjects": return questionSubjects.isEmpty ? nil : questionSubjects
        default:
            guard name.hasPrefix("eval/") else { return nil }
            for g in evalGroups {
                let p = "eval/\(g.name)/"
                guard name.hasPrefix(p) else { continue }
                switch String(name.dropFirst(p.count)) {
                case "prompts": return g.prompts
                case "targets": return g.targets
                case "facts": return g.facts
                default: continue
                }
            }
            return nil
        }
    }

    /// An int64 array by its HDF5 path, or nil.
    public func int64Array(_ name: String) -> [Int64]? {
        if name == "offsets" { return offsets }
        for g in evalGroups where name == "eval/\(g.name)/prompt_offsets" { return g.offsets }
        return nil
    }

    /// relations as n x 5: kind, token, base_relation, head_role, tail_role.
    public func relationTable() -> [Int32] {
        relations.flatMap { [$0.kind.rawValue, $0.token, Int32($0.baseRelation), Int32($0.headRole), Int32($0.tailRole)] }
    }

    /// With collisions: {"<token id>": [roles]} for every token whose role set is not just its
    /// contiguous role (shared tokens, and freed ids with []); every other token has its one role.
    public func tokenRolesJSON() -> JSON {
        .object(layout.changedTokenRoles().map { (String($0.token), .strings($0.roles)) })
    }

    public func infoJSON() -> JSON {
        let counts: JSON = .object([
            ("subjects", .int(numSubjects)),
            ("relations", .int(numBaseRelations)),
            ("relations_total", .int(relations.count)),
            ("objects", .int(numObjects)),
            ("nested_objects", .int(numNestedObjects)),
            ("facts", .int(numFacts)),
            ("sequences", .int(numSequences)),
            ("tokens", .int(numTokens)),
            ("vocab_size", .int(vocabSize)),
            ("subject_width", .int(layout.subjectWidth)),
        ])
        let roles: JSON = .array(vocabulary.roles.map { .object([("name", .string($0.name)), ("first", .int($0.first)), ("count", .int($0.count))]) })
        let rels: JSON = .array(relations.map {
            .object([("name", .string($0.name)), ("kind", .string($0.kind.name)), ("token", .int(Int($0.token))),
                     ("base_relation", .int($0.baseRelation)), ("head_role", .string(vocabulary.roles[$0.headRole].name)),
                     ("tail_role", .string(vocabulary.roles[$0.tailRole].name))])
        })
        let groups: JSON = .array(evalGroups.map {
            .object([("name", .string($0.name)), ("prompts", .int($0.count)), ("prompt_tokens", .int($0.prompts.count))])
        })
        let arrays: JSON = .object(arrayList().map { ($0.name, .object([("dtype", .string($0.dtype)), ("shape", .ints($0.shape))])) })
        let markers: JSON = .object([("eos", .int(0)), ("padding", .int(1)), ("dot", .int(2)), ("SS", .int(3)), ("RR", .int(4)),
                                     ("OO", .int(5)), ("QQ", .int(6)), ("AA", .int(7))])
        var vocabularyInfo: [(String, JSON)] = [("size", .int(vocabSize)), ("roles", roles), ("markers", markers)]
        if layout.hasCollisions { vocabularyInfo.append(("token_roles", tokenRolesJSON())) }
        var fields: [(String, JSON)] = [
            ("format", .string("behemoth.dataset")),
            ("origin", .string(origin)),
            ("counts", counts),
            ("vocabulary", .object(vocabularyInfo)),
            ("relations", rels),
            ("eval_groups", groups),
            ("arrays", arrays),
            ("spec", spec.toJSON()),
        ]
        if let templatePlan { fields.append(("templates", templatePlan.infoJSON(relations))) }
        fields.append(("digest", .string(contentDigest())))
        return .object(fields)
    }
}
