import Testing
@testable import Engine

/// A synthetic fact view: S subjects, R relations, O objects; prompt = [s+100, r+50, 5], object token = 1000 + r*O + o.
func syntheticFacts(S: Int = 200, R: Int = 3, O: Int = 10, seed: UInt64 = 1, correlated: Bool = false) -> FactView {
    var rng = RNG(seed: seed)
    var table = [Int32](repeating: 0, count: S * R)
    for s in 0..<S { for r in 0..<R { table[s * R + r] = Int32(rng.below(O)) } }
    if correlated { for s in 0..<S { table[s * R + 1] = table[s * R + 0] } }
    return FactView(subjects: S, relations: R, objects: O, objectTable: table, factIndex: (0..<(S * R)).map(Int32.init),
                    correlatedPair: correlated ? (0, 1) : nil,
                    prompt: { s, r in [Int32(s + 100), Int32(r + 50), 5] },
                    objectToken: { r, o in Int32(1000 + r * O + o) }, sentenceEnd: [2, 0])
}

@Suite struct EditSetTests {
    @Test func singleEditFollowsTheOfficialMix() throws {
        let facts = syntheticFacts(S: 2000, R: 3, O: 8)
        var spec = EditSpec()
        spec.repeats = 20; spec.sameValueMax = 10; spec.sameRelationPerEdit = 40
        let set = try EditSetBuilder.build(spec, facts: facts)
        let e = set.edits[0]
        #expect(e.oldObject != e.newObject)
        #expect(facts.object(e.subject, 0) == e.oldObject)
        let counts = Dictionary(uniqueKeysWithValues: set.trainingCounts())
        #expect(counts["edited"] == 20)
        #expect(counts["with_same_value"] == 10)
        #expect(counts["with_same_rel"] == 40)
        #expect(counts["regularization"] == 20)
        // edited test targets the new object; the edited subject's other relations are tested, not trained
        #expect(set.group("edited")!.targets == [facts.objectToken(0, e.newObject)])
        #expect(set.group("same_subject_other_rel")!.count == 2)
        // no fact is both trained and tested, and no training sentence uses the edited subject except the edit
        let trainedPrompts = Set((0..<set.sequenceGroup.count).map { i in Array(set.tokens[Int(set.offsets[i])..<Int(set.offsets[i]) + 3]) })
        for g in set.groups where g.name != "edited" && g.name != "edited_original" {
            for i in 0..<g.count { #expect(!trainedPrompts.contains(Array(g.prompts[Int(g.offsets[i])..<Int(g.offsets[i + 1])]))) }
        }
        // every base fact appears in exactly one test group or in training
        let tested = set.groups.filter { $0.name != "edited_original" }.reduce(0) { $0 + $1.count }
        #expect(tested + trainedPrompts.count - 1 == 2000 * 3)  // the edited fact is both trained and tested
        // determinism
        let again = try EditSetBuilder.build(spec, facts: facts)
        #expect(again.tokens == set.tokens)
        // A dataset large enough for the counts: nothing scaled, nothing to warn about.
        let mix = try #require(set.mix)
        #expect(mix.scale == 1 && mix.warnings.isEmpty)
        #expect(mix.parts.map(\.name) == ["edited", "with_same_value", "with_same_rel", "regularization"])
        #expect(mix.parts.allSatisfy { $0.requested == $0.obtained && counts[$0.name] == $0.obtained })
    }

    /// A spec with the official 2 : 1 : 4 + 2 ratio on a dataset too small for its absolute counts.
    static let smallMix = #"{"repeats": 40, "same_value_max": 20, "same_relation_per_edit": 80, "regularization_per_edit": 40, "seed": 4}"#

    @Test func aTooSmallDatasetScalesEveryPartAndSaysSo() throws {
        // 2 objects: about half the subjects hold the new value, so the same-value part is not short.
        let facts = syntheticFacts(S: 120, R: 3, O: 2)
        let set = try EditSetBuilder.build(try EditSpec(json: Self.smallMix), facts: facts)
        let e = set.edits[0]
        let mix = try #require(set.mix)
        // The scale, recomputed: same relation (2 subjects a sentence) and regularisation (2 other
        // relations a subject) share the subjects neither edited nor holding the new value.
        let sameValue = (0..<120).filter { $0 != e.subject && facts.object($0, 0) == e.newObject }.count
        let free = 120 - 1 - sameValue
        #expect(mix.scale == Double(free) / (2 * 80 + 40 / 2))
        #expect(mix.scale < 1)
        let counts = Dictionary(uniqueKeysWithValues: set.trainingCounts())
        let requested = ["edited": 40, "with_same_value": 20, "with_same_rel": 80, "regularization": 40]
        for p in mix.parts {
            #expect(p.requested == requested[p.name])
            #expect(p.scaled == Int((mix.scale * Double(p.requested)).rounded(.down)), "\(p.name)")
            #expect(p.obtained == p.scaled, "\(p.name): the scaled mix fits the dataset")
            #expect(counts[p.name] == p.obtained, "\(p.name): the reported count is the trained count")
        }
        // The ratio holds: each part is its requested share of the edited part, within rounding.
        let unit = Double(counts["edited"]!) / 40
        for (name, asked) in requested { #expect(abs(Double(counts[name]!) - unit * Double(asked)) <= 2.5, "\(name)") }
        #expect(counts["edited"]! < 40 && counts["regularization"]! > 0)
        #expect(mix.warnings.count == 1)
        #expect(mix.warnings[0].contains("scaled by") && mix.warnings[0].contains("absolute_counts"))
        // The edit set info (and so every edit report, which embeds it) states all of this.
        let info = set.summary()["mix"]
        #expect(info?["scale"] == .number(mix.scale))
        #expect(info?["parts"]?["regularization"]?["requested"] == .int(40))
        #expect(info?["parts"]?["regularization"]?["obtained"] == .int(counts["regularization"]!))
        #expect(info?["warnings"] == .strings(mix.warnings))
    }

    @Test func absoluteCountsKeepTheRequestedCountsAndReportTheShortfall() throws {
        let facts = syntheticFacts(S: 120, R: 3, O: 2)
        var spec = try EditSpec(json: Self.smallMix)
        spec.absoluteCounts = true
        #expect(try EditSpec(json: spec.toJSON().serialized()).absoluteCounts)   // echoed, and read back
        let set = try EditSetBuilder.build(spec, facts: facts)
        let mix = try #require(set.mix)
        let counts = Dictionary(uniqueKeysWithValues: set.trainingCounts())
        #expect(mix.scale == 1)
        #expect(counts["edited"] == 40)
        #expect(counts["with_same_value"] == 20)
        // Same relation takes half the free subjects (the rest are held out), leaving too few for
        // regularisation: both come out short and are named.
        let sr = try #require(mix.parts.first { $0.name == "with_same_rel" })
        let reg = try #require(mix.parts.first { $0.name == "regularization" })
        #expect(sr.scaled == 80 && sr.obtained < 80 && sr.obtained == counts["with_same_rel"])
        #expect(reg.scaled == 40 && reg.obtained < 40 && reg.obtained == counts["regularization", default: 0])
        #expect(mix.warnings.count == 2)
        #expect(mix.warnings.contains { $0.hasPrefix("with_same_rel: \(sr.obtained) of the 80 ") })
        #expect(mix.warnings.contains { $0.hasPrefix("regularization: \(reg.obtained) of the 40 ") })
        #expect(!mix.warnings.contains { $0.contains("scaled by") })
    }

    @Test func diverseAndIdenticalEdits() throws {
        let facts = syntheticFacts(S: 500, R: 3, O: 10)
        var d = EditSpec(); d.kind = .diverse; d.count = 4; d.repeats = 5
        let ds = try EditSetBuilder.build(d, facts: facts)
        #expect(Set(ds.edits.map(\.subject)).count == 4)
        #expect(Set(ds.edits.map(\.oldObject)).count == 4)
        #expect(Set(ds.edits.map(\.newObject)).isDisjoint(with: Set(ds.edits.map(\.oldObject))))
        var i = EditSpec(); i.kind = .identical; i.count = 5; i.repeats = 5
        let iset = try EditSetBuilder.build(i, facts: facts)
        #expect(Set(iset.edits.map(\.oldObject)).count == 1)
        #expect(Set(iset.edits.map(\.newObject)).count == 1)
    }

    @Test func forgettingAndCorrelatedGroups() throws {
        let facts = syntheticFacts(S: 100, R: 3, O: 6, correlated: true)
        var f = EditSpec(); f.kind = .forgetRelation; f.relation = 2; f.forgetFraction = 0.5
        let fs = try EditSetBuilder.build(f, facts: facts)
        #expect(fs.edits.count == 50)
        #expect(fs.group("forgotten")!.targets.allSatisfy { $0 == facts.objectToken(2, 0) })
        #expect(fs.group("forgotten_heldout")!.count == 50)
        var c = EditSpec(); c.kind = .correlated; c.repeats = 3
        let cs = try EditSetBuilder.build(c, facts: facts)
        let e = cs.edits[0]
        #expect(cs.group("correlated_dependent")!.targets == [facts.objectToken(1, e.newObject)])
        #expect(cs.group("correlated_retention")!.targets == [facts.objectToken(1, e.oldObject)])
    }

    @Test func theSpecEchoDecodesToTheSameSpec() throws {
        let text = #"{"kind": "diverse", "relation": 2, "count": 3, "subjects": [4, 5, 6], "repeats": 7, "same_value_max": 8, "same_relation_per_edit": 9, "regularization_per_edit": 10, "seed": 11, "forced_object": 1, "forget_fraction": 0.5}"#
        let spec = try EditSpec(json: text)
        let echo = spec.toJSON()
        #expect(try EditSpec(json: echo.serialized()).toJSON() == echo)
        #expect(echo["count"] == .int(3) && echo["repeats"] == .int(7) && echo["seed"] == .int(11))
        // Defaults are echoed filled in: regularization_per_edit = repeats, count 10 for diverse.
        let defaults = try EditSpec(json: #"{"kind": "identical"}"#).toJSON()
        #expect(defaults["regularization_per_edit"] == .int(250) && defaults["count"] == .int(10))
        #expect(defaults["new_object"] == .null)
    }

    @Test func aCorrelatedEditsNewValueDiffersFromTheDependentsOwnObject() throws {
        // Correlation below 1: the second relation's object may differ from the first's. A new
        // value equal to it would make the dependent update and retention the same answer.
        var facts = syntheticFacts(S: 100, R: 3, O: 3)
        facts.correlatedPair = (0, 1)
        for seed in 0..<30 {
            let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "correlated", "seed": \#(seed)}"#), facts: facts)
            let e = set.edits[0]
            #expect(e.newObject != e.oldObject && e.newObject != facts.object(e.subject, 1))
            #expect(set.group("correlated_dependent")!.targets != set.group("correlated_retention")!.targets)
        }
        let s = (0..<100).first { facts.object($0, 0) != facts.object($0, 1) }!
        do {
            _ = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "correlated", "subjects": [\#(s)], "new_object": \#(facts.object(s, 1))}"#), facts: facts)
            Issue.record("expected an error")
        } catch { #expect(error.message.contains("could not be told from retention"), "\(error.message)") }
    }

    /// Each prompt of a split group has exactly one answer: the target, the alternative, another
    /// object of its relation, or a leak (a token that is not an object of its relation).
    @Test func everyAnswerIsNamedOnce() throws {
        var prompts = PromptSet(name: "g", prompts: [1, 1, 1, 1, 1, 1], offsets: [0, 1, 2, 3, 4, 5, 6], targets: [10, 10, 10, 10, 10, 12])
        prompts.alternatives = [11, 11, 11, 11, 11, 12]   // the last prompt's object did not change
        var g = GroupResult(name: "g")
        g.predicted = [10, 11, 15, 25, 3, 12]
        g.correct = [1, 0, 0, 0, 0, 1]
        let objects = Set<Int32>(10..<20)
        func value(_ m: EditMetrics.Measure) -> Double? { EditMetrics.value(m, prompts, g, objects: objects) }
        #expect(value(.accuracy) == 2.0 / 6)
        #expect(value(.answer(.alternative)) == 1.0 / 6)
        #expect(value(.answer(.other)) == 1.0 / 6)
        #expect(value(.answer(.leak)) == 2.0 / 6)
        #expect(value(.answer(.target)) == 2.0 / 6)
        #expect(value(.accuracyWhereChanged) == 1.0 / 5)
        #expect(value(.changedCount) == 5)
        // Undefined, not zero: no objects range (an imported folder) or no changed prompt.
        #expect(EditMetrics.value(.answer(.leak), prompts, g, objects: nil) == nil)
        prompts.alternatives = prompts.targets
        #expect(value(.accuracyWhereChanged) == nil)
        // Every metric says how it is computed.
        #expect(EditMetrics.definitions.allSatisfy { !$0.definition.isEmpty })
        #expect(Set(EditMetrics.definitions.map(\.name)).count == EditMetrics.definitions.count)
    }

    @Test func badSpecsAreClearErrors() throws {
        let facts = syntheticFacts(S: 20, R: 3, O: 6)
        func fails(_ json: String, _ needle: String) {
            do { _ = try EditSetBuilder.build(try EditSpec(json: json), facts: facts); Issue.record("expected failure for \(json)") } catch {
                #expect(error.status == .invalid)
                #expect(error.message.contains(needle), "\(error.message)")
            }
        }
        fails(#"{"relation": 7}"#, "relation = 7")
        fails(#"{"kind": "diverse", "count": 5}"#, "distinct objects")
        fails(#"{"kind": "diverse", "count": 50}"#, "only 20 subjects")
        fails(#"{"kind": "identical", "count": 500}"#, "500")
        fails(#"{"dataset_fingerprint": "abc"}"#, "different dataset")
        fails(#"{"subjects": [99]}"#, "subjects[0] = 99")
        fails(#"{"kind": "correlated"}"#, "correlated pair")
        fails(#"{"kind": "renmae"}"#, "kind")
        fails(#"{"repeat": 3}"#, "unknown key 'repeat'")
    }
}

@Suite struct NestedEditSetTests {
    @Test func nestedRemapsTestTheDependentFacts() throws {
        let ds = try Dataset.generate(specJSON: #"{"preset": "tiny", "num_nested_objects": 4, "seed": 5}"#)
        let facts = ds.factView()
        #expect(facts.nested == 4)
        let sub = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "nested_subject", "repeats": 5, "absolute_counts": true}"#), facts: facts)
        let e = sub.edits[0]
        #expect(e.oldObject != e.newObject)
        let edited = sub.group("edited")!
        #expect(edited.count == 1)
        #expect(ds.fact(Int(edited.facts[0])).tail == Int32(e.oldObject))           // the original nested value
        #expect(edited.targets[0] == ds.nestedObjectToken(relation: 0, ordinal: e.newObject))
        #expect(sub.group("same_subject_object")!.count == 1)
        #expect(Dictionary(uniqueKeysWithValues: sub.trainingCounts())["edited"] == 5)

        let obj = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "nested_object", "relation": 1, "repeats": 5}"#), facts: facts)
        let o = obj.edits[0]
        let dependent = obj.group("dependent_subject_nested")!
        let holders = (0..<ds.numSubjects).filter { facts.object($0, 1) == o.subject }
        #expect(dependent.count == holders.count)
        #expect(dependent.targets.allSatisfy { $0 == ds.nestedObjectToken(relation: 1, ordinal: o.newObject) })
        #expect(obj.group("dependent_subject_nested_retention")!.targets.allSatisfy { $0 == ds.nestedObjectToken(relation: 1, ordinal: o.oldObject) })
        // A dependent answered with anything but one of relation 1's nested values is a leak.
        let nested1 = Set((0..<4).map { ds.nestedObjectToken(relation: 1, ordinal: $0) })
        #expect(obj.objectTokens["dependent_subject_nested"] == nested1 && obj.objectTokens["edited_original"] == nested1)
        // Scaled by default: the same relation has only the other 7 objects' nested facts (3 trained,
        // 3 held out) of the 500 asked for, so every part is scaled by 3 / 500: 5 repeats become the
        // one copy every edit keeps, 5 regularisation facts none.
        let mix = try #require(obj.mix)
        #expect(mix.scale == 3.0 / 500)
        #expect(mix.parts.allSatisfy { $0.obtained == $0.scaled })
        #expect(Dictionary(uniqueKeysWithValues: obj.trainingCounts()) == ["edited": 1, "with_same_rel": 3])

        let plain = try Dataset.generate(specJSON: #"{"preset": "tiny"}"#)
        #expect(throws: EngineError.self) { _ = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "nested_subject"}"#), facts: plain.factView()) }
    }
}
