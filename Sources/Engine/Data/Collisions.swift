/// Intentional token collisions (issue 14): a seeded fraction of tokens shared between roles, to
/// study how polysemy affects edits. The layout keeps its contiguous canonical roles; a collision
/// re-points some canonical entity ids at a token of another role (`VocabularyLayout.tokenMap`),
/// or, for one-token subjects, writes another subject's token before a subject's own
/// (`subjectPrefix`). A re-pointed canonical id is never written ("freed"); a token is the source
/// or the target of at most one collision, so no chains form.
///
/// Kinds (fraction f, n = round(f × count)):
///   subject_parts             n of the S one-token subjects become two-token words [partner, own],
///                             the partner another subject (each partner once; needs 2n ≤ S).
///                             Two-token subjects (S ≥ 1000) already share parts by construction.
///   objects_across_relations  for every relation, n of its O objects take the token of an object
///                             of another relation (each such object shared once).
///   relation_as_object        n of the R relation words are also the token of one object of
///                             another relation.
///   grammar_as_entity         n of the 11 grammar words W0–W10 are also the token of one object
///                             (entity "object") or one one-token subject (entity "subject"; only
///                             words that the evaluation templates do not use).
public struct CollisionSpec: DeclaredSpec, Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case subjectParts = "subject_parts", objectsAcrossRelations = "objects_across_relations"
        case relationAsObject = "relation_as_object", grammarAsEntity = "grammar_as_entity"
    }
    public enum Entity: String, CaseIterable, Sendable { case object, subject }

    public var kind = Kind.objectsAcrossRelations
    public var fraction = 0.0
    /// grammar_as_entity only: which entity the grammar word becomes.
    public var entity = Entity.object

    public init() {}
    public static var specPath: String { "dataset spec.collisions[]" }

    public static let fields: [SpecField<CollisionSpec>] = [
        .choice("kind", \.kind),
        .double("fraction", \.fraction, min: 0, max: 1),
        SpecField("entity", read: { (r: inout JSONReader, s: inout CollisionSpec) throws(EngineError) in
            s.entity = Entity(rawValue: try r.string("entity", default: s.entity.rawValue, oneOf: Entity.allCases.map(\.rawValue)))!
        }, write: { $0.kind == .grammarAsEntity ? .string($0.entity.rawValue) : nil }),
    ]

    public func validate() throws(EngineError) {
        if kind != .grammarAsEntity && entity != .object {
            throw .invalid("dataset spec: collisions: entity belongs to kind \"grammar_as_entity\" (kind is \"\(kind.rawValue)\")")
        }
    }

    /// The spec field holding the list (echoed only when non-empty, so existing specs keep their digests).
    static func listField(_ key: String) -> SpecField<DatasetSpec> {
        SpecField(key, read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            guard let v = r.value(key) else { return }
            guard case let .array(items) = v else {
                throw .invalid("dataset spec: \(key) must be an array of {\"kind\": ..., \"fraction\": ...} objects, got \(v.typeName)")
            }
            var out: [CollisionSpec] = []
            for (i, item) in items.enumerated() {
                var reader = try JSONReader(item, path: "dataset spec: \(key)[\(i)]")
                out.append(try CollisionSpec(reading: &reader))
                try reader.finish()
                if out.dropLast().contains(where: { $0.kind == out.last!.kind }) {
                    throw .invalid("dataset spec: \(key)[\(i)] lists kind \"\(out.last!.kind.rawValue)\" a second time; give each kind once")
                }
            }
            s.collisions = out
        }, write: { $0.collisions.isEmpty ? nil : .array($0.collisions.map { $0.toJSON() }) })
    }
}

extension VocabularyLayout {
    /// The layout of a spec: the canonical layout with the spec's collisions applied.
    public static func of(_ spec: DatasetSpec) throws(EngineError) -> VocabularyLayout {
        let canonical = try VocabularyLayout(subjects: spec.subjects, relationships: spec.relationships,
                                             objects: spec.objects, nested: spec.numNestedObjects)
        guard !spec.collisions.isEmpty else { return canonical }
        return try canonical.colliding(spec.collisions, seed: spec.collisionSeed ?? spec.seed, evalWords: spec.evaluationGrammarWords)
    }

    /// This layout with `collisions` applied, in list order, from one seeded stream.
    /// `evalWords`: the W indices every evaluation prompt holds (not usable as subjects).
    func colliding(_ collisions: [CollisionSpec], seed: UInt64, evalWords: Set<Int>) throws(EngineError) -> VocabularyLayout {
        let w = "dataset spec: collisions"
        if nested > 0 { throw .invalid("\(w) are not supported with num_nested_objects > 0 (nested objects reuse object tokens as heads); drop one of the two") }
        var out = self
        var map = (0..<size).map { Int32($0) }
        var prefix = [Int32](repeating: -1, count: subjectWidth == 1 ? subjects : 0)
        var used = Set<Int>()   // canonical ids that are a source or a target already
        var rng = RNG(seed: seed, stream: "collisions")
        func count(_ f: Double, _ n: Int) -> Int { Int((f * Double(n)).rounded()) }
        func free(_ ids: [Int]) -> [Int] { var a = ids.filter { !used.contains($0) }; rng.shuffle(&a); return a }
        func point(_ source: Int, at target: Int) { map[source] = Int32(target); used.insert(source); used.insert(target) }
        let objectIds = { (r: Int) in Array((objectStart + r * objects)..<(objectStart + (r + 1) * objects)) }
        let wordIds = (0...10).map { Int(self.w($0)) }

        for c in collisions where c.fraction > 0 {
            let what = "\(w): \(c.kind.rawValue) fraction \(JSON.format(c.fraction))"
            switch c.kind {
            case .subjectParts:
                guard subjectWidth == 1 else {
                    throw .invalid("\(what): with \(subjects) subjects every subject is already a two-token word whose parts other subjects share; subject_parts needs fewer than 1000 subjects")
                }
                let n = count(c.fraction, subjects)
                let pool = free(Array(subjectStart..<(subjectStart + subjects)))
                guard 2 * n <= pool.count else {
                    throw .invalid("\(what) needs \(n) subjects and \(n) distinct partners but only \(pool.count) subjects are free; use a fraction of at most 0.5")
                }
                for i in 0..<n {
                    let s = pool[i], partner = pool[n + i]
                    prefix[s - subjectStart] = Int32(partner)
                    used.insert(s); used.insert(partner)
                }
            case .objectsAcrossRelations:
                guard relationships >= 2 else { throw .invalid("\(what) needs at least 2 relationships, got \(relationships)") }
                let n = count(c.fraction, objects)
                var sources: [[Int]] = []
                for r in 0..<relationships {
                    let pool = free(objectIds(r))
                    guard pool.count >= n else { throw .invalid("\(what) needs \(n) free objects of relation \(r), only \(pool.count) are left") }
                    sources.append(Array(pool.prefix(n)))
                    used.formUnion(sources[r])
                }
                for r in 0..<relationships {
                    let targets = free((0..<relationships).filter { $0 != r }.flatMap(objectIds))
                    guard targets.count >= n else {
                        throw .invalid("\(what): relation \(r) needs \(n) objects of other relations to share, only \(targets.count) are left; use a fraction of at most 0.5")
                    }
                    for (s, t) in zip(sources[r], targets) { point(s, at: t) }
                }
            case .relationAsObject:
                guard relationships >= 2 else { throw .invalid("\(what) needs at least 2 relationships, got \(relationships)") }
                for q in free((0..<relationships).map { relationStart + $0 }).prefix(count(c.fraction, relationships)) {
                    var others = (0..<relationships).filter { $0 != q - relationStart }
                    rng.shuffle(&others)
                    guard let r = others.first(where: { r in objectIds(r).contains { !used.contains($0) } }) else {
                        throw .invalid("\(what): no free object of another relation is left for relation \(q - relationStart)'s word")
                    }
                    point(free(objectIds(r))[0], at: q)
                }
            case .grammarAsEntity:
                let candidates = c.entity == .subject ? (0...10).filter { !evalWords.contains($0) }.map { wordIds[$0] } : wordIds
                let n = count(c.fraction, wordIds.count)
                let words = free(candidates)
                guard n <= words.count else {
                    throw .invalid("\(what) needs \(n) of the grammar words W0–W10 but only \(words.count) can be \(c.entity.rawValue)s\(c.entity == .subject ? " (the others appear in every evaluation prompt, where the subject could not be located)" : "")")
                }
                for word in words.prefix(n) {
                    let pool: [Int]
                    if c.entity == .subject {
                        guard subjectWidth == 1 else { throw .invalid("\(what): entity \"subject\" needs one-token subjects (fewer than 1000)") }
                        pool = free(Array(subjectStart..<(subjectStart + subjects)))
                    } else {
                        pool = free((0..<relationships).flatMap(objectIds))
                    }
                    guard let source = pool.first else { throw .invalid("\(what): no free \(c.entity.rawValue) is left for a grammar word") }
                    point(source, at: word)
                }
            }
        }
        if map.enumerated().contains(where: { $0.element != Int32($0.offset) }) { out.tokenMap = map }
        if prefix.contains(where: { $0 >= 0 }) { out.subjectPrefix = prefix }
        try out.checkDistinctWords()
        return out
    }

    /// Refuses collisions that make two facts' evaluation indistinguishable: two subjects written
    /// as the same tokens (their prompts would be identical), or two objects of one relation
    /// written as the same token (exact match could not tell them apart).
    func checkDistinctWords() throws(EngineError) {
        var subjectOf: [[Int32]: Int] = [:]
        for s in 0..<subjects {
            let t = subjectTokens(s)
            if let other = subjectOf.updateValue(s, forKey: t) {
                throw .invalid("dataset spec: collisions make subjects \(other) and \(s) the same tokens \(t): their facts could not be told apart")
            }
        }
        for r in 0..<relationships {
            var objectOf: [Int32: Int] = [:]
            for o in 0..<objects {
                if let other = objectOf.updateValue(o, forKey: objectToken(relation: r, ordinal: o)) {
                    throw .invalid("dataset spec: collisions make objects \(other) and \(o) of relation \(r) the same token \(objectToken(relation: r, ordinal: o)): exact match could not tell them apart")
                }
            }
        }
    }

    /// Every token's set of roles (role names; sorted). Without collisions each token has its one
    /// contiguous role. A collision adds the source's role to its target token and leaves the
    /// freed source id with no role (it is never written); a subject_parts partner's token is also
    /// "subject_first", a collided subject's own token is "subject_second" instead of "subject".
    public func tokenRoles() -> [[String]] {
        var sets: [[String]] = []
        sets.reserveCapacity(size)
        for role in roles() { for _ in role.range { sets.append([role.name]) } }
        for (id, t) in tokenMap.enumerated() where Int(t) != id {
            sets[Int(t)].append(sets[id][0])
            sets[id] = []
        }
        for (s, p) in subjectPrefix.enumerated() where p >= 0 {
            sets[Int(p)].append("subject_first")
            let own = Int(token(subjectStart + s))
            sets[own] = sets[own].map { $0 == "subject" ? "subject_second" : $0 }
        }
        return sets.map { Array(Set($0)).sorted() }
    }

    /// The tokens whose role set is not just their contiguous role (shared or freed), by id.
    public func changedTokenRoles() -> [(token: Int, roles: [String])] {
        guard hasCollisions else { return [] }
        let sets = tokenRoles()
        var out: [(Int, [String])] = []
        for role in roles() { for id in role.range where sets[id] != [role.name] { out.append((id, sets[id])) } }
        return out.sorted { $0.0 < $1.0 }
    }
}

extension DatasetSpec {
    /// The W indices the evaluation templates always write (the nonsense grammar's fillers are
    /// random: a grammar subject there is checked prompt by prompt instead).
    var evaluationGrammarWords: Set<Int> {
        guard phraseCreator == .inverted else { return [] }
        return inversionFrac > 0 ? [0, 1, 2, 5, 7, 9] : [0, 1, 2]
    }
}

extension Dataset {
    /// Refuses a collided dataset in which an evaluation prompt's subject or relation word also
    /// stands elsewhere in the prompt: its position could not be told (tracing, ROME's subject
    /// token, factPositions would find the wrong one).
    func checkCollisionPrompts() throws(EngineError) {
        guard layout.hasCollisions else { return }
        for g in evalGroups {
            for i in 0..<g.count {
                let f = Int(g.facts[i])
                let prompt = g.prompt(i), head = headTokens(ofFact: f), rel = relations[Int(fact(f).relation)].token
                for t in Set(head + [rel]) {
                    let want = head.filter { $0 == t }.count + (t == rel ? 1 : 0)
                    let n = prompt.filter { $0 == t }.count
                    if n != want {
                        throw .invalid("dataset spec: collisions make fact \(f) ambiguous: token \(t) (\(layout.tokenRoles()[Int(t)].joined(separator: ", "))) stands \(n) times in its evaluation prompt \"\(g.name)\" #\(i) \(Array(prompt)), so its subject or relation word cannot be located; use another collision_seed or fraction")
                    }
                }
            }
        }
    }
}
