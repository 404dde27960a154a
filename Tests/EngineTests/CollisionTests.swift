import Testing
@testable import Engine

/// Intentional token collisions (dataset spec `collisions`): recorded role sets, requested
/// fractions, refusals, files, export, and the shared-token split of edit metrics.
@Suite struct CollisionTests {
    static let all = #"{"preset": "tiny", "seed": 3, "collisions": [{"kind": "subject_parts", "fraction": 0.25}, {"kind": "objects_across_relations", "fraction": 0.25}, {"kind": "relation_as_object", "fraction": 0.67}, {"kind": "grammar_as_entity", "fraction": 0.3}]}"#
    static let grammarSubjects = #"{"preset": "tiny", "seed": 4, "inversion_frac": 0.3, "collisions": [{"kind": "grammar_as_entity", "fraction": 0.4, "entity": "subject"}, {"kind": "objects_across_relations", "fraction": 0.5}]}"#

    /// token → roles, read from what the dataset records (info JSON: contiguous roles plus token_roles).
    static func recordedRoles(_ ds: Dataset) throws -> [[String]] {
        let vocabulary = try #require(ds.infoJSON()["vocabulary"])
        guard case let .array(roles)? = vocabulary["roles"] else { throw EngineError.invalid("no roles") }
        var sets: [[String]] = []
        for role in roles {
            guard case let .string(name)? = role["name"], case let .number(count)? = role["count"] else { throw EngineError.invalid("bad role") }
            sets += [[String]](repeating: [name], count: Int(count))
        }
        if case let .object(changed)? = vocabulary["token_roles"] {
            for (id, value) in changed {
                guard case let .array(names) = value else { throw EngineError.invalid("bad token_roles") }
                sets[Int(id)!] = names.compactMap { if case let .string(s) = $0 { return s } else { return nil } }
            }
        }
        return sets
    }

    @Test func defaultSpecsKeepTheirDigestsAndSpecs() throws {
        // Digests of the main branch before collisions existed.
        for (spec, digest) in [(#"{"preset": "tiny"}"#, "xxh64:15b542193b7985a8"),
                               (#"{"preset": "tiny", "seed": 3, "inversion_frac": 0.3}"#, "xxh64:4f1f63a39ae9657a"),
                               (#"{"preset": "demo"}"#, "xxh64:b6943f0a1cf84c36")] {
            let ds = try DataTest.generate(spec)
            #expect(ds.contentDigest() == digest)
            #expect(ds.spec.toJSON()["collisions"] == nil && ds.spec.toJSON()["collision_seed"] == nil)
            #expect(!ds.layout.hasCollisions && ds.infoJSON()["vocabulary"]?["token_roles"] == nil)
            #expect(!ds.arrayList().contains { $0.name == "vocab/token_map" })
        }
        // An empty list is the default, too.
        #expect(try DataTest.generate(#"{"preset": "tiny", "collisions": []}"#).contentDigest() == "xxh64:15b542193b7985a8")
    }

    /// Every token of every training sentence and evaluation prompt has, in its recorded role set,
    /// the role of the position it stands in (SRO grammar: SS subject W0 W1 RR relation W2 OO object . EOS).
    @Test(arguments: [all, grammarSubjects])
    func recordedRolesHoldForEverySentence(_ spec: String) throws {
        let ds = try DataTest.generate(spec)
        #expect(ds.layout.hasCollisions)
        let roles = try Self.recordedRoles(ds)
        #expect(roles == ds.layout.tokenRoles())
        func has(_ t: Int32, _ role: String, _ at: String) {
            #expect(roles[Int(t)].contains(role), "\(at): token \(t) has roles \(roles[Int(t)]), expected \(role)")
        }
        func subjectRoles(_ word: [Int32], _ at: String) {
            if word.count == 1 { has(word[0], "subject", at) } else { has(word[0], "subject_first", at); has(word[1], "subject_second", at) }
        }
        var sro = 0
        for i in 0..<ds.numSequences {
            let s = Array(ds.sequence(i)), f = ds.fact(Int(ds.sequenceFacts[i]))
            let word = ds.subjectTokens(Int(f.head))
            let at = "sequence \(i)"
            // SRO only (SOR has the same length: told apart by RR after W0 W1)
            guard s[0] == Vocabulary.ss, s.count == 10 + word.count, s[word.count + 3] == Vocabulary.rr else { continue }
            sro += 1
            #expect(Array(s[1...word.count]) == word, "\(at)")
            subjectRoles(word, at)
            let w = word.count
            for p in [w + 1, w + 2, w + 5] { has(s[p], "grammar", at) }
            #expect(s[w + 3] == Vocabulary.rr && s[w + 6] == Vocabulary.oo)
            has(s[w + 4], "relation", at)
            has(s[w + 7], "object/r\(f.relation)", at)
            #expect(s[w + 7] == ds.tailToken(ofFact: Int(ds.sequenceFacts[i])) && s[w + 8] == Vocabulary.dot && s[w + 9] == Vocabulary.eos)
        }
        #expect(sro > ds.numSequences / 2)
        for g in ds.evalGroups {
            for i in 0..<g.count {
                let f = Int(g.facts[i]), fact = ds.fact(f)
                has(g.targets[i], "object/r\(fact.relation)", "\(g.name) #\(i)")
                subjectRoles(ds.headTokens(ofFact: f), "\(g.name) #\(i)")
                #expect(g.prompt(i).filter { $0 == ds.relationToken(Int(fact.relation)) }.count == 1)
            }
        }
    }

    /// Each kind occurs as often as requested, counted from the dataset's words by the canonical
    /// ranges they land in.
    @Test func everyKindOccursAtItsFraction() throws {
        let ds = try DataTest.generate(Self.all)
        let L = ds.layout, S = ds.numSubjects, R = ds.numBaseRelations, O = ds.numObjects
        func round(_ f: Double, _ n: Int) -> Int { Int((f * Double(n)).rounded()) }
        #expect((0..<S).filter { ds.subjectTokens($0).count == 2 }.count == round(0.25, S))
        var fromRelations = 0, fromGrammar = 0
        for r in 0..<R {
            let own = (L.objectStart + r * O)..<(L.objectStart + (r + 1) * O)
            var otherRelations = 0
            for o in 0..<O {
                let t = Int(ds.objectToken(relation: r, ordinal: o))
                if t >= L.objectStart, t < L.objectStart + R * O, !own.contains(t) { otherRelations += 1 }
                if t >= L.relationStart, t < L.relationStart + R { fromRelations += 1 }
                if (0...10).contains(where: { Int(L.w($0)) == t }) { fromGrammar += 1 }
            }
            #expect(otherRelations == round(0.25, O), "relation \(r)")
            // every shared object token is an object of both relations in the sentences
            #expect(Set((0..<O).map { ds.objectToken(relation: r, ordinal: $0) }).count == O)
        }
        #expect(fromRelations == round(0.67, R))
        #expect(fromGrammar == round(0.3, 11))
        // The same spec and seed give the same collisions; another collision_seed others.
        #expect(try DataTest.generate(Self.all).contentDigest() == ds.contentDigest())
        var respec = ds.spec
        respec.collisionSeed = 9
        let reseeded = try Dataset.generate(respec)
        #expect(reseeded.layout.tokenMap != L.tokenMap && reseeded.facts == ds.facts)
        // grammar subjects: W-words not in the evaluation templates
        let g = try DataTest.generate(Self.grammarSubjects)
        let words = (0..<g.numSubjects).compactMap { s in (0...10).first { g.subjectTokens(s) == [g.layout.w($0)] } }
        #expect(words.count == round(0.4, 11) && Set(words).isDisjoint(with: [0, 1, 2, 5, 7, 9]))
    }

    @Test func impossibleOrAmbiguousCollisionsAreRefused() throws {
        func refused(_ collisions: String, _ extra: String = "", _ words: [String]) {
            do {
                _ = try DatasetSpec.parse(#"{"preset": "tiny"\#(extra), "collisions": \#(collisions)}"#)
                Issue.record("accepted \(collisions)")
            } catch {
                for w in words { #expect(error.message.contains(w), "\(error.message) should say \(w)") }
            }
        }
        refused(#"[{"kind": "objects_across_relations", "fraction": 1.5}]"#, "", ["fraction = 1.5", "at most 1"])
        refused(#"[{"kind": "subject_parts", "fraction": -0.1}]"#, "", ["fraction = -0.1", "at least 0"])
        refused(#"[{"kind": "objects_across_relations", "fraction": 0.8}]"#, "", ["objects of other relations", "at most 0.5"])
        refused(#"[{"kind": "subject_parts", "fraction": 0.6}]"#, "", ["partners", "at most 0.5"])
        refused(#"[{"kind": "subject_parts", "fraction": 0.1}]"#, #", "subjects": 2000"#, ["already a two-token word"])
        refused(#"[{"kind": "relation_as_object", "fraction": 0.5}]"#, #", "relationships": 1"#, ["at least 2 relationships"])
        refused(#"[{"kind": "objects_across_relations", "fraction": 0.1}]"#, #", "num_nested_objects": 4"#, ["num_nested_objects"])
        refused(#"[{"kind": "subject_parts", "fraction": 0.1}, {"kind": "subject_parts", "fraction": 0.2}]"#, "", ["collisions[1]", "second time"])
        refused(#"[{"kind": "subject_parts", "fraction": 0.1, "entity": "subject"}]"#, "", ["grammar_as_entity"])
        refused(#"[{"kind": "subject_parts", "fractoin": 0.1}]"#, "", ["unknown key 'fractoin'"])
        refused(#"[{"kind": "homonyms", "fraction": 0.1}]"#, "", ["homonyms", "objects_across_relations"])
        refused(#"[{"kind": "grammar_as_entity", "fraction": 1, "entity": "subject"}]"#, "", ["only 8", "evaluation prompt"])
        #expect(throws: EngineError.self) { try DatasetSpec.parse(#"{"preset": "tiny", "collision_seed": 3}"#) }

        // Collisions that would make facts indistinguishable, made by hand on the layout.
        var L = try VocabularyLayout(subjects: 8, relationships: 2, objects: 4, nested: 0)
        var map = (0..<L.size).map { Int32($0) }
        map[Int(L.objectToken(relation: 1, ordinal: 3))] = L.objectToken(relation: 1, ordinal: 0)
        L.tokenMap = map
        #expect { try L.checkDistinctWords() } throws: { ($0 as! EngineError).message.contains("objects 0 and 3 of relation 1 the same token") }
        map = (0..<L.size).map { Int32($0) }
        map[L.subjectStart + 5] = Int32(L.subjectStart + 2)
        L.tokenMap = map
        #expect { try L.checkDistinctWords() } throws: { ($0 as! EngineError).message.contains("subjects 2 and 5 the same tokens") }

        // A grammar subject that a nonsense prompt's random fillers also write: refused, naming the fact.
        var refusals = 0
        for seed in 0..<12 {
            do {
                let ds = try DataTest.generate(#"{"preset": "tiny", "phrase_creator": "nonsense", "seed": \#(seed), "collisions": [{"kind": "grammar_as_entity", "fraction": 1, "entity": "subject"}]}"#)
                for g in ds.evalGroups { for i in 0..<g.count { #expect(ds.factPositions(in: Array(g.prompt(i)), fact: Int(g.facts[i])) != nil) } }
            } catch {
                refusals += 1
                #expect(error.message.contains("ambiguous") && error.message.contains("fact ") && error.message.contains("grammar"))
            }
        }
        #expect(refusals > 0 && refusals < 12)
    }

    @Test func filesKeepTheCollisionsAndExportRefusesThem() throws {
        let ds = try DataTest.generate(Self.all)
        let dir = DataTest.tempDir("collide")
        defer { DataTest.removeTree(dir) }
        try ds.save(dir + "/ds.h5")
        let back = try Dataset.load(dir + "/ds.h5")
        #expect(back.contentDigest() == ds.contentDigest() && back.layout == ds.layout && back.tokens == ds.tokens)
        #expect(ds.arrayList().contains { $0.name == "vocab/token_map" && $0.shape == [ds.vocabSize] })
        #expect(ds.arrayList().contains { $0.name == "vocab/subject_tokens" && $0.shape == [ds.numSubjects, 2] })
        let f = try H5File.open(dir + "/ds.h5")
        let stored = try JSON.parse(try f.stringAttribute("token_roles", at: "/vocab"), what: "token_roles")
        f.close()
        #expect(stored == ds.tokenRolesJSON())
        #expect { try ds.exportReference(dir + "/official") } throws: { ($0 as! EngineError).message.contains("token collisions") }
        #expect(!FileSystem.exists(dir + "/official"))
    }

    /// A correlated edit's new object must not share its token with an object of the dependent
    /// relation: a leak would look like a dependent answer.
    @Test func correlatedEditsAvoidObjectsSharedWithTheDependentRelation() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny", "correlated_pair": true, "collisions": [{"kind": "objects_across_relations", "fraction": 0.5}]}"#)
        let r1 = Set((0..<ds.numObjects).map { ds.objectToken(relation: 1, ordinal: $0) })
        let shared = (0..<ds.numObjects).filter { r1.contains(ds.objectToken(relation: 0, ordinal: $0)) }
        try #require(!shared.isEmpty)
        for seed in 0..<8 {
            let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "correlated", "seed": \#(seed)}"#), facts: ds.factView())
            #expect(!shared.contains(set.edits[0].newObject))
        }
        let s = (0..<ds.numSubjects).first { ds.fact(ds.factIndex(subject: $0, relation: 0)).tail != Int32(shared[0]) && ds.fact(ds.factIndex(subject: $0, relation: 1)).tail != Int32(shared[0]) }!
        #expect { try EditSetBuilder.build(try EditSpec(json: #"{"kind": "correlated", "subjects": [\#(s)], "new_object": \#(shared[0])}"#), facts: ds.factView()) } throws: {
            ($0 as! EngineError).message.contains("also make an object of the correlated relation 1")
        }
    }

    /// The shared-token split of remaining and same-relation accuracies, recomputed from the
    /// prompts' own tokens on a small edit with made-up per-prompt results.
    @Test func sharedTokenSplitIsExact() throws {
        let ds = try DataTest.generate(Self.all)
        let spec = try EditSpec(json: #"{"repeats": 4, "same_value_max": 2, "same_relation_per_edit": 10, "regularization_per_edit": 4, "seed": 2}"#)
        let set = try EditSetBuilder.build(spec, facts: ds.factView())
        let e = set.edits[0]
        // The leak classification sees every object token of the edited relation, wherever it lies.
        #expect(set.objectTokens["edited_original"] == Set((0..<ds.numObjects).map { ds.objectToken(relation: e.relation, ordinal: $0) }))
        let edited = ds.subjectTokens(e.subject) + [ds.objectToken(relation: e.relation, ordinal: e.oldObject),
                                                      ds.objectToken(relation: e.relation, ordinal: e.newObject)]
        let editedRelation = ds.relationToken(e.relation)
        var rng = RNG(seed: 5)
        var before: [GroupResult] = [], after: [GroupResult] = []
        for g in set.groups {
            before.append(GroupResult(name: g.name, predicted: g.targets, correct: (0..<g.count).map { _ in UInt8(rng.below(2)) }))
            after.append(GroupResult(name: g.name, predicted: g.targets, correct: (0..<g.count).map { _ in UInt8(rng.below(2)) }))
        }
        let metrics = Dictionary(uniqueKeysWithValues: EditMetrics.all(editSet: set, before: before, after: after, ownRuns: [:]).map { ($0.name, $0.value) })
        var sawShared = false
        for (group, name, counts) in [("remaining", "remaining_accuracy", "remaining"), ("with_same_rel", "same_relation_neighbours", "same_relation_neighbours")] {
            let g = try #require(set.group(group)), a = after.first { $0.name == group }!, b = before.first { $0.name == group }!
            var shared: [Int] = [], other: [Int] = []
            for i in 0..<g.count {
                // The prompt is SS subject W0 W1 RR relation W2 OO; the target is the object.
                let p = Array(g.prompt(i)), subject = Array(p[1..<(p.count - 6)]), relation = p[p.count - 3]
                let tokens = subject + [g.targets[i]]
                let shares = tokens.contains { edited.contains($0) || $0 == editedRelation } || edited.contains(relation)
                if shares { shared.append(i) } else { other.append(i) }
            }
            sawShared = sawShared || !shared.isEmpty
            for (idx, suffix) in [(shared, "shared_token"), (other, "no_shared_token")] {
                #expect(metrics["\(counts)_\(suffix)_prompts"] == Double(idx.count))
                if idx.isEmpty {
                    #expect(metrics["\(name)_\(suffix)"] == nil)
                } else {
                    #expect(metrics["\(name)_\(suffix)"] == Double(idx.filter { a.correct[$0] != 0 }.count) / Double(idx.count))
                    #expect(metrics["\(name)_\(suffix)_before"] == Double(idx.filter { b.correct[$0] != 0 }.count) / Double(idx.count))
                }
            }
        }
        #expect(sawShared)
    }
}
