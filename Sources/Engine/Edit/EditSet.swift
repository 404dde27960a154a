/// What the edit-set builder needs to know about a dataset's base facts: a dense table of object
/// ordinals for every (subject, relation) and how facts are written as tokens.
public struct FactView {
    public var subjects: Int
    public var relations: Int
    public var objects: Int
    /// objects[s * relations + r] = object ordinal of subject s under base relation r.
    public var objectTable: [Int32]
    /// Fact index (into the dataset's fact table) of (s, r), same layout; -1 if none.
    public var factIndex: [Int32]
    /// The correlated pair (r0, r1) if the dataset has one.
    public var correlatedPair: (Int, Int)?
    /// Prompt tokens for (s, r): everything up to and including the object marker.
    public var prompt: (Int, Int) -> [Int32]
    /// The token of object ordinal o of relation r.
    public var objectToken: (Int, Int) -> Int32
    /// Tokens written after the object token to end a sentence ("." and EOS).
    public var sentenceEnd: [Int32]
    /// A fingerprint of the facts, so an edit spec made for one dataset is refused on another.
    public var fingerprint: UInt64
    /// Nested data: K nested values per relation and the fact indices of the subject→nested facts
    /// [s * R + r] and object→nested facts [r * O + o] (-1 where absent).
    public var nested = 0
    public var subjectNestedFact: [Int32] = []
    public var objectNestedFact: [Int32] = []
    /// Any fact's prompt, its tail ordinal, and the token of tail ordinal k of that fact's relation.
    public var promptOfFact: (Int) -> [Int32] = { _ in [] }
    public var tailOfFact: (Int) -> Int = { _ in 0 }
    public var tailToken: (Int, Int) -> Int32 = { _, _ in 0 }
    /// Subject s's word and relation r's word (for the shared-token split of the test groups).
    public var subjectTokens: (Int) -> [Int32] = { _ in [] }
    public var relationToken: (Int) -> Int32 = { _ in -1 }
    /// Fact i's prompts in its relation's held-out templates (none for one template per relation).
    public var paraphrases: (Int) -> [[Int32]] = { _ in [] }

    public func object(_ s: Int, _ r: Int) -> Int { Int(objectTable[s * relations + r]) }

    public init(subjects: Int, relations: Int, objects: Int, objectTable: [Int32], factIndex: [Int32],
                correlatedPair: (Int, Int)?, prompt: @escaping (Int, Int) -> [Int32],
                objectToken: @escaping (Int, Int) -> Int32, sentenceEnd: [Int32]) {
        self.subjects = subjects
        self.relations = relations
        self.objects = objects
        self.objectTable = objectTable
        self.factIndex = factIndex
        self.correlatedPair = correlatedPair
        self.prompt = prompt
        self.objectToken = objectToken
        self.sentenceEnd = sentenceEnd
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for x in [Int32(subjects), Int32(relations), Int32(objects)] + objectTable {
            for byte in 0..<4 { h = (h ^ UInt64((UInt32(bitPattern: x) >> (8 * byte)) & 0xFF)) &* 0x0000_0100_0000_01B3 }
        }
        fingerprint = h
    }
}

/// A JSON edit spec (docs/formats.md, "Edit spec"). Counts follow the official fine-tuning mix:
/// per edit, the new fact `repeats` times, up to `same_value_max` other subjects that already have
/// the new value, `same_relation_per_edit` other subjects of the same relation, and
/// `regularization_per_edit` facts of other relations of untouched subjects (2 : 1 : 4 + 2 at the
/// official defaults 250 / 150 / 500 / 250).
public struct EditSpec: DeclaredSpec {
    public enum Kind: String, CaseIterable, Sendable {
        case single, diverse, identical, forgetRelation = "forget_relation", correlated
        case nestedSubject = "nested_subject", nestedObject = "nested_object"
        /// A forget set and its retain set for the unlearning editors (ForgetSet.swift).
        case unlearn
    }
    /// What an unlearn set forgets: facts of one relation (`relation`, `forget_fraction` or
    /// `subjects`), every fact of some subjects (`subjects` or `count` of them), or listed facts.
    public enum Scope: String, CaseIterable, Sendable { case relation, subjects, facts }
    public var kind = Kind.single
    public var relation = 0
    public var count = 1
    public var subjects: [Int] = []
    public var newObject: Int? = nil
    public var forgetFraction = 1.0
    public var forcedObject = 0
    /// Unlearn sets only (echoed only for them, so other specs keep their digests).
    public var scope = Scope.relation
    public var facts: [FactRef] = []
    public var retainFacts: [FactRef] = []
    public var repeats = 250
    public var sameValueMax = 150
    public var sameRelationPerEdit = 500
    public var regularizationPerEdit = -1   // -1: equal to repeats
    /// false: a dataset too small for the counts above gets every part scaled by one factor (EditMix).
    public var absoluteCounts = false
    public var seed: UInt64 = 0
    public var datasetFingerprint: String = ""

    public init() {}

    public static var specPath: String { "edit spec" }

    /// Declared once: decode, echo and the docs table (docs/formats.md, "Edit spec") follow this list.
    public static let fields: [SpecField<EditSpec>] = [
        .choice("kind", \.kind),
        .int("relation", \.relation, min: 0, max: 100_000),
        // Read after kind: diverse and identical make 10 edits unless told otherwise.
        SpecField("count", read: { (r: inout JSONReader, s: inout EditSpec) throws(EngineError) in
            s.count = try r.int("count", default: [.diverse, .identical].contains(s.kind) ? 10 : 1, min: 1, max: 10_000_000)
        }, write: { .int($0.count) }),
        .ints("subjects", \.subjects, min: 0),
        SpecField("new_object", read: { (r: inout JSONReader, s: inout EditSpec) throws(EngineError) in
            s.newObject = try r.optionalInt("new_object", min: 0)
        }, write: { $0.newObject.map { .int($0) } ?? .null }),
        .double("forget_fraction", \.forgetFraction, min: 0, max: 1, exclusiveMin: true),
        .int("forced_object", \.forcedObject, min: 0),
        SpecField("scope", read: { (r: inout JSONReader, s: inout EditSpec) throws(EngineError) in
            s.scope = Scope(rawValue: try r.string("scope", default: s.scope.rawValue, oneOf: Scope.allCases.map(\.rawValue)))!
        }, write: { $0.kind == .unlearn ? .string($0.scope.rawValue) : nil }),
        FactRef.field("facts", \.facts),
        FactRef.field("retain_facts", \.retainFacts),
        .int("repeats", \.repeats, min: 1, max: 1_000_000),
        .int("same_value_max", \.sameValueMax, min: 0, max: 10_000_000),
        .int("same_relation_per_edit", \.sameRelationPerEdit, min: 0, max: 10_000_000),
        // Echoed resolved (-1 becomes `repeats`), so the echo decodes to the same mix.
        SpecField("regularization_per_edit", read: { (r: inout JSONReader, s: inout EditSpec) throws(EngineError) in
            s.regularizationPerEdit = try r.int("regularization_per_edit", default: s.regularizationPerEdit, min: -1, max: 10_000_000)
        }, write: { .int($0.regularization) }),
        .bool("absolute_counts", \.absoluteCounts),
        .seed("seed", \.seed),
        .string("dataset_fingerprint", \.datasetFingerprint),
    ]

    public func validate() throws(EngineError) {
        if kind == .unlearn { return try validateUnlearn() }
        if !facts.isEmpty || !retainFacts.isEmpty || scope != .relation {
            throw .invalid("edit spec: scope, facts and retain_facts belong to kind \"unlearn\" (kind is \"\(kind.rawValue)\")")
        }
        if ![.diverse, .identical, .forgetRelation].contains(kind), count != 1 {
            throw .invalid("edit spec: kind \"\(kind.rawValue)\" makes exactly one edit (count = \(count))")
        }
        if !subjects.isEmpty, kind != .forgetRelation, subjects.count != count {
            throw .invalid("edit spec: subjects lists \(subjects.count) subjects but count = \(count)")
        }
    }

    public var regularization: Int { regularizationPerEdit < 0 ? repeats : regularizationPerEdit }

}

/// One changed fact.
public struct Edit: Equatable {
    public let subject: Int
    public let relation: Int
    public let oldObject: Int
    public let newObject: Int
}

/// The fine-tuning data and the test groups of an edit experiment.
public struct EditSet {
    public var spec: EditSpec
    public var edits: [Edit] = []
    /// Training sentences (flat tokens + offsets) and the training group of each.
    public var tokens: [Int32] = []
    public var offsets: [Int64] = [0]
    public var sequenceGroup: [String] = []
    /// Test groups, each a prompt set with one target token per prompt.
    public var groups: [PromptSet] = []
    public var fingerprint: UInt64 = 0
    /// The official fine-tuning folder it was imported from ("" if built here).
    public var source = ""
    /// For the groups whose prompts share one relation and are split by answer (edited_original,
    /// correlated_dependent, dependent_subject_nested): the tokens of that relation's objects (a
    /// set: with token collisions they need not be contiguous), so an answer outside it (a leak)
    /// can be told from a wrong object of the right relation.
    public var objectTokens: [String: Set<Int32>] = [:]
    /// For the remaining and with_same_rel groups, per prompt: whether its fact shares a token
    /// with an edited fact (sharesToken), so collateral damage through shared tokens can be told
    /// from damage through the shared relation.
    public var sharedToken: [String: [Bool]] = [:]
    /// Requested vs obtained training sentences per part (nil for an imported folder: its mix is
    /// whatever the official generator wrote).
    public var mix: EditMix? = nil
    /// Unlearn sets: per training sentence, the index of its answer (object) token, which the
    /// unlearning objectives score; empty for other kinds.
    public var answerPositions: [Int32] = []
    /// Unlearn sets: the forgotten facts' indices in the dataset's fact table, sorted (what an
    /// oracle's dataset spec excludes).
    public var forgetFacts: [Int] = []

    public func group(_ name: String) -> PromptSet? { groups.first { $0.name == name } }

    /// Counts of training sentences per group (in order of first appearance).
    public func trainingCounts() -> [(String, Int)] {
        var order: [String] = [], n: [String: Int] = [:]
        for g in sequenceGroup { if n[g] == nil { order.append(g) }; n[g, default: 0] += 1 }
        return order.map { ($0, n[$0]!) }
    }

    public func summary() -> JSON {
        .object([
            ("spec", spec.toJSON()),
            ("edits", .array(edits.map {
                .object([("subject", .int($0.subject)), ("relation", .int($0.relation)),
                         ("old_object", .int($0.oldObject)), ("new_object", .int($0.newObject))])
            })),
            ("training", .object(trainingCounts().map { ($0.0, .int($0.1)) })),
            ("training_sequences", .int(sequenceGroup.count)),
            ("mix", mix?.toJSON() ?? .null),
            ("groups", .object(groups.map { ($0.name, .int($0.count)) })),
            ("dataset_fingerprint", .string(String(fingerprint, radix: 16))),
            ("source", .string(source)),
        ])
    }
}

public enum EditSetBuilder {
    /// Builds an edit set; every choice comes from `spec.seed`.
    public static func build(_ spec: EditSpec, facts: FactView) throws(EngineError) -> EditSet {
        let fp = String(facts.fingerprint, radix: 16)
        if !spec.datasetFingerprint.isEmpty, spec.datasetFingerprint != fp {
            throw .invalid("edit spec: dataset_fingerprint = \(spec.datasetFingerprint) but this dataset's is \(fp): the spec was made for a different dataset")
        }
        let S = facts.subjects, R = facts.relations, O = facts.objects
        let r0 = spec.relation
        guard r0 < R else { throw .invalid("edit spec: relation = \(r0) but the dataset has \(R) relations (0...\(R - 1))") }
        for (i, s) in spec.subjects.enumerated() where s >= S {
            throw .invalid("edit spec: subjects[\(i)] = \(s) but the dataset has \(S) subjects")
        }
        if let o = spec.newObject, o >= O { throw .invalid("edit spec: new_object = \(o) but relation \(r0) has \(O) objects") }
        guard spec.forcedObject < O else { throw .invalid("edit spec: forced_object = \(spec.forcedObject) but relation \(r0) has \(O) objects") }
        guard O >= 2 else { throw .invalid("edit spec: relation \(r0) has \(O) object; an edit needs at least 2") }
        if spec.kind == .unlearn { return try buildForgetSet(spec, facts: facts) }
        if spec.kind != .forgetRelation, spec.count > S {
            throw .invalid("edit spec: count = \(spec.count) edits but the dataset has only \(S) subjects")
        }
        if spec.kind == .nestedSubject || spec.kind == .nestedObject { return try buildNested(spec, facts: facts) }
        var rng = RNG(seed: spec.seed, stream: "edit set")
        var set = EditSet(spec: spec)
        set.fingerprint = facts.fingerprint

        // 1. Choose the edits.
        var edited: [Int] = []
        switch spec.kind {
        case .single, .correlated:
            if spec.kind == .correlated {
                guard let pair = facts.correlatedPair else { throw .invalid("edit spec: kind \"correlated\" needs a dataset with a correlated pair") }
                guard pair.0 == r0 else { throw .invalid("edit spec: the correlated pair is (\(pair.0), \(pair.1)); set relation = \(pair.0)") }
            }
            let s = spec.subjects.first ?? rng.below(S)
            let old = facts.object(s, r0)
            // A correlated edit's new value must also differ from the dependent relation's own
            // object (possible below strength 1), or its update could not be told from retention.
            let dependentOld = spec.kind == .correlated ? facts.object(s, facts.correlatedPair!.1) : old
            // With token collisions, a new object whose token is also an object of the dependent
            // relation would make the edit leaking into that relation look like a dependent answer.
            let dependentTokens = spec.kind == .correlated ? Set((0..<O).map { facts.objectToken(facts.correlatedPair!.1, $0) }) : []
            let free = (0..<O).filter { $0 != old && $0 != dependentOld && !dependentTokens.contains(facts.objectToken(r0, $0)) }
            guard !free.isEmpty else { throw .invalid("edit spec: relation \(r0) has no object left for subject \(s) (\(O) objects)") }
            let new = spec.newObject ?? free[rng.below(free.count)]
            guard new != old else { throw .invalid("edit spec: new_object = \(new) is already subject \(s)'s object") }
            guard new != dependentOld else {
                throw .invalid("edit spec: new_object = \(new) is already subject \(s)'s object of the correlated relation: its update could not be told from retention")
            }
            guard !dependentTokens.contains(facts.objectToken(r0, new)) else {
                throw .invalid("edit spec: new_object = \(new) of relation \(r0) is token \(facts.objectToken(r0, new)), which token collisions also make an object of the correlated relation \(facts.correlatedPair!.1): a leak into that relation could not be told from its answers; choose another new_object")
            }
            set.edits = [Edit(subject: s, relation: r0, oldObject: old, newObject: new)]
        case .diverse:
            // Distinct subjects with distinct original objects, each to its own unused new object.
            guard 2 * spec.count <= O else {
                throw .invalid("edit spec: \(spec.count) diverse edits need \(2 * spec.count) distinct objects but relation \(r0) has \(O)")
            }
            var order = spec.subjects.isEmpty ? Array(0..<S) : spec.subjects
            if spec.subjects.isEmpty { rng.shuffle(&order) }
            var usedOld = Set<Int>(), chosen: [Int] = []
            for s in order where !usedOld.contains(facts.object(s, r0)) {
                usedOld.insert(facts.object(s, r0)); chosen.append(s)
                if chosen.count == spec.count { break }
            }
            guard chosen.count == spec.count else {
                throw .invalid("edit spec: only \(chosen.count) subjects have distinct objects under relation \(r0); count = \(spec.count)")
            }
            var free = (0..<O).filter { !usedOld.contains($0) }
            rng.shuffle(&free)
            set.edits = chosen.enumerated().map { Edit(subject: $1, relation: r0, oldObject: facts.object($1, r0), newObject: free[$0]) }
        case .identical:
            // n subjects sharing value v, all remapped to one new value v'.
            var byValue = [[Int]](repeating: [], count: O)
            for s in 0..<S { byValue[facts.object(s, r0)].append(s) }
            let candidates = (0..<O).filter { byValue[$0].count >= spec.count }
            guard !candidates.isEmpty else {
                throw .invalid("edit spec: no object of relation \(r0) is shared by \(spec.count) subjects (the most is \(byValue.map(\.count).max() ?? 0))")
            }
            let v = candidates[rng.below(candidates.count)]
            var members = byValue[v]
            rng.shuffle(&members)
            var new = spec.newObject ?? rng.below(O - 1)
            if spec.newObject == nil, new >= v { new += 1 }
            guard new != v else { throw .invalid("edit spec: new_object = \(new) is the shared value itself") }
            set.edits = members.prefix(spec.count).map { Edit(subject: $0, relation: r0, oldObject: v, newObject: new) }
        case .nestedSubject, .nestedObject, .unlearn:
            fatalError("handled by buildNested and buildForgetSet")
        case .forgetRelation:
            var order = spec.subjects.isEmpty ? Array(0..<S) : spec.subjects
            if spec.subjects.isEmpty { rng.shuffle(&order) }
            let n = spec.subjects.isEmpty ? max(1, Int((spec.forgetFraction * Double(S)).rounded())) : order.count
            set.edits = order.prefix(n).map { Edit(subject: $0, relation: r0, oldObject: facts.object($0, r0), newObject: spec.forcedObject) }
        }
        edited = set.edits.map(\.subject)
        let editedSet = Set(edited)
        var touched = editedSet  // subjects used by any group so far

        func sentence(_ s: Int, _ r: Int, _ o: Int) -> [Int32] { facts.prompt(s, r) + [facts.objectToken(r, o)] + facts.sentenceEnd }
        func addTraining(_ group: String, _ s: Int, _ r: Int, _ o: Int) {
            set.tokens += sentence(s, r, o)
            set.offsets.append(Int64(set.tokens.count))
            set.sequenceGroup.append(group)
        }
        // name → (s, r, target object, alternative or -1, held-out template k of (s, r) or -1 for the SRO prompt)
        var testGroups: [String: [(Int, Int, Int, Int, Int)]] = [:]
        var groupOrder: [String] = []
        func addTest(_ name: String, _ s: Int, _ r: Int, _ o: Int, alt: Int = -1, paraphrase: Int = -1) {
            if testGroups[name] == nil { groupOrder.append(name); testGroups[name] = [] }
            testGroups[name]!.append((s, r, o, alt, paraphrase))
        }
        var usedFacts = Set<Int>()  // s * R + r of every fact trained or tested so far

        let forgetting = spec.kind == .forgetRelation
        let n = set.edits.count
        let reps = spec.kind == .identical ? n : 1   // identical edits train each same-value subject n times

        // The scale of the mix, known before anything is drawn. Same value: other subjects whose r0
        // object equals the new value (identical edits: the original shared value). Same relation
        // and regularisation then share the subjects left: each same-relation sentence takes two
        // (one trained, one held out), each left subject gives R - 1 regularisation facts.
        var sameValue: [Int] = []
        var mix = EditMix()
        if !forgetting {
            let sameValueValue: Set<Int> = spec.kind == .identical ? [set.edits[0].oldObject] : Set(set.edits.map(\.newObject))
            sameValue = (0..<S).filter { !editedSet.contains($0) && sameValueValue.contains(facts.object($0, r0)) }
            rng.shuffle(&sameValue)
            if !spec.absoluteCounts {
                mix.scale = EditMix.subjectScale(free: S - editedSet.count - sameValue.count, otherRelations: R - 1,
                                                 sameRelation: spec.sameRelationPerEdit * n, regularization: spec.regularization * n)
            }
        }

        // 2. The edited facts themselves.
        let editRepeats = forgetting ? 1 : max(1, mix.scaled(spec.repeats))
        for e in set.edits {
            for _ in 0..<editRepeats { addTraining(forgetting ? "forgotten" : "edited", e.subject, r0, e.newObject) }
            addTest(forgetting ? "forgotten" : "edited", e.subject, r0, e.newObject, alt: e.oldObject)
            if !forgetting {
                addTest("edited_original", e.subject, r0, e.oldObject, alt: e.newObject)
                // The edited fact in its relation's held-out templates: never trained, so the edit must generalise.
                for k in facts.paraphrases(Int(facts.factIndex[e.subject * R + r0])).indices {
                    addTest("edited_paraphrase", e.subject, r0, e.newObject, alt: e.oldObject, paraphrase: k)
                }
            }
            usedFacts.insert(e.subject * R + r0)
        }
        mix.add(forgetting ? "forgotten" : "edited", requested: (forgetting ? 1 : spec.repeats) * n, scaled: editRepeats * n,
                obtained: editRepeats * n, limit: "")

        if forgetting {
            // Held-out subjects: the forced value should generalise to them (or not).
            let heldOut = (0..<S).filter { !editedSet.contains($0) }
            for s in heldOut {
                addTest("forgotten_heldout", s, r0, spec.forcedObject)
                addTest("forgotten_heldout_original", s, r0, facts.object(s, r0))
                usedFacts.insert(s * R + r0)
            }
            // Regularisation: other relations of half of the held-out subjects, as many as were forgotten.
            var pool: [(Int, Int)] = []
            for s in heldOut.prefix(heldOut.count / 2) { for r in 0..<R where r != r0 { pool.append((s, r)) } }
            rng.shuffle(&pool)
            for (s, r) in pool.prefix(n) { addTraining("regularization", s, r, facts.object(s, r)); usedFacts.insert(s * R + r) }
            mix.add("regularization", requested: n, scaled: n, obtained: min(n, pool.count),
                    limit: "only \(pool.count) facts of other relations belong to half of the \(heldOut.count) subjects not forgotten")
        } else {
            // 3. Same value: half trained, half held out.
            let svTrain = min(sameValue.count / 2, mix.scaled(spec.sameValueMax))
            for s in sameValue.prefix(svTrain) {
                for _ in 0..<reps { addTraining("with_same_value", s, r0, facts.object(s, r0)) }
                usedFacts.insert(s * R + r0)
            }
            for s in sameValue.dropFirst(svTrain).prefix(max(svTrain, sameValue.count - svTrain)) {
                addTest("with_same_value", s, r0, facts.object(s, r0), alt: set.edits[0].newObject); usedFacts.insert(s * R + r0)
            }
            touched.formUnion(sameValue)
            mix.add("with_same_value", requested: spec.sameValueMax * reps, scaled: mix.scaled(spec.sameValueMax) * reps, obtained: svTrain * reps,
                    limit: "only \(sameValue.count) other subjects hold the \(spec.kind == .identical ? "shared" : "new") value, and half of them are held out for testing")

            // 4. Same relation: other subjects' r0 facts, unchanged; the next block held out.
            var sameRel = (0..<S).filter { !touched.contains($0) }
            rng.shuffle(&sameRel)
            let srCount = min(sameRel.count / 2, mix.scaled(spec.sameRelationPerEdit * n))
            for s in sameRel.prefix(srCount) { addTraining("with_same_rel", s, r0, facts.object(s, r0)); usedFacts.insert(s * R + r0) }
            for s in sameRel.dropFirst(srCount).prefix(srCount) { addTest("with_same_rel", s, r0, facts.object(s, r0), alt: set.edits[0].newObject); usedFacts.insert(s * R + r0) }
            touched.formUnion(sameRel.prefix(2 * srCount))
            mix.add("with_same_rel", requested: spec.sameRelationPerEdit * n, scaled: mix.scaled(spec.sameRelationPerEdit * n), obtained: srCount,
                    limit: "only \(sameRel.count) subjects are left for it, and as many as are trained are held out for testing")

            // 5. The edited subjects' other relations: not trained, tested for locality. With a
            //    correlated pair, the second relation has two tests: retention and dependent update.
            for e in set.edits {
                for r in 0..<R where r != r0 {
                    usedFacts.insert(e.subject * R + r)
                    if let pair = facts.correlatedPair, spec.kind == .correlated, r == pair.1 {
                        addTest("correlated_retention", e.subject, r, facts.object(e.subject, r), alt: e.newObject)
                        addTest("correlated_dependent", e.subject, r, e.newObject, alt: facts.object(e.subject, r))
                    } else {
                        addTest("same_subject_other_rel", e.subject, r, facts.object(e.subject, r))
                    }
                }
            }

            // 6. Regularisation: other relations of subjects no group touched.
            var pool: [(Int, Int)] = []
            for s in 0..<S where !touched.contains(s) { for r in 0..<R where r != r0 { pool.append((s, r)) } }
            rng.shuffle(&pool)
            let regCount = min(pool.count, mix.scaled(spec.regularization * n))
            for (s, r) in pool.prefix(regCount) {
                addTraining("regularization", s, r, facts.object(s, r)); usedFacts.insert(s * R + r)
            }
            mix.add("regularization", requested: spec.regularization * n, scaled: mix.scaled(spec.regularization * n), obtained: regCount,
                    limit: R < 2 ? "the dataset has no other relation" : "only \(pool.count) facts of other relations belong to subjects no other part uses")
        }
        set.mix = mix.explained()
        let objectsOf = { (r: Int) in Set((0..<O).map { facts.objectToken(r, $0) }) }
        if !forgetting { set.objectTokens["edited_original"] = objectsOf(r0) }
        if let pair = facts.correlatedPair, spec.kind == .correlated { set.objectTokens["correlated_dependent"] = objectsOf(pair.1) }

        // 7. Remaining: every base fact no group trained or tested.
        for s in 0..<S { for r in 0..<R where !usedFacts.contains(s * R + r) { addTest("remaining", s, r, facts.object(s, r)) } }

        let editedTokens = EditedTokens(facts, set.edits)
        for name in groupOrder {
            var prompts: [Int32] = [], offsets: [Int64] = [0], targets: [Int32] = [], idx: [Int32] = [], rels: [Int32] = []
            var alts: [Int32] = []
            for (s, r, o, alt, k) in testGroups[name]! {
                prompts += k < 0 ? facts.prompt(s, r) : facts.paraphrases(Int(facts.factIndex[s * R + r]))[k]
                offsets.append(Int64(prompts.count))
                targets.append(facts.objectToken(r, o))
                idx.append(facts.factIndex[s * R + r])
                rels.append(Int32(r))
                alts.append(alt >= 0 ? facts.objectToken(r, alt) : -1)
            }
            var group = PromptSet(name: name, prompts: prompts, offsets: offsets, targets: targets, facts: idx, relations: rels)
            if alts.contains(where: { $0 >= 0 }) { group.alternatives = alts }
            set.groups.append(group)
            if !forgetting, ["remaining", "with_same_rel"].contains(name) {
                set.sharedToken[name] = testGroups[name]!.map { editedTokens.shares(facts, s: $0.0, r: $0.1, object: $0.2) }
            }
        }
        return set
    }

}

/// The tokens of the edited facts, to tell which test facts share one (EditSet.sharedToken).
struct EditedTokens {
    /// Every edit's subject tokens and old and new object tokens.
    let entities: Set<Int32>
    /// The edited relations' words.
    let relations: Set<Int32>

    init(_ facts: FactView, _ edits: [Edit]) {
        entities = Set(edits.flatMap { facts.subjectTokens($0.subject) + [facts.objectToken($0.relation, $0.oldObject), facts.objectToken($0.relation, $0.newObject)] })
        relations = Set(edits.map { facts.relationToken($0.relation) })
    }

    /// Whether fact (s, r) with object ordinal `object` shares a token with an edited fact: one of
    /// its subject, relation or object tokens is one of an edit's subject, relation, old or new
    /// object tokens. Its relation word matching an edited relation's word is not counted: that
    /// is the shared relation, which the groups themselves already tell apart.
    func shares(_ facts: FactView, s: Int, r: Int, object: Int) -> Bool {
        if entities.contains(facts.relationToken(r)) { return true }
        for t in facts.subjectTokens(s) + [facts.objectToken(r, object)] where entities.contains(t) || relations.contains(t) { return true }
        return false
    }
}
