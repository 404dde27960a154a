import Testing
@testable import Engine

/// Several templates per relation (Templates.swift): held-out templates never trained, every
/// sentence in one training template, the seeded choice, the default grammar untouched, bad specs
/// refused, and the paraphrase group and metrics of an edit.
@Suite struct GrammarTests {
    static let spec = #"{"preset": "tiny", "templates_per_relation": 4, "heldout_templates": 1, "repeats": 8, "seed": 5}"#

    /// Fact f stated in template t of the pool ("." and EOS included).
    func sentence(_ ds: Dataset, fact f: Int, template t: Int) -> [Int32] {
        var out: [Int32] = []
        Template.fill(&out, ds.templatePlan!.pool[t].resolved(ds.layout), head: Head(ds.headTokens(ofFact: f)),
                      relation: ds.relationToken(Int(ds.fact(f).relation)), object: ds.tailToken(ofFact: f))
        return out + [Vocabulary.dot, Vocabulary.eos]
    }

    /// Where `pattern` occurs in `stream` (start positions).
    func occurrences(_ pattern: [Int32], in stream: [Int32]) -> Int {
        guard let first = pattern.first, stream.count >= pattern.count else { return 0 }
        var n = 0
        for i in 0...(stream.count - pattern.count) where stream[i] == first {
            var j = 1
            while j < pattern.count && stream[i + j] == pattern[j] { j += 1 }
            if j == pattern.count { n += 1 }
        }
        return n
    }

    /// Which pool templates each training sequence is written in (every pool template tried).
    func templatesOfSequences(_ ds: Dataset) -> [[Int]] {
        let pool = ds.templatePlan!.pool.indices
        var cache: [Int: [[Int32]]] = [:]
        return (0..<ds.numSequences).map { i in
            let f = Int(ds.sequenceFacts[i])
            let sentences = cache[f] ?? pool.map { sentence(ds, fact: f, template: $0) }
            cache[f] = sentences
            let seq = Array(ds.sequence(i))
            return pool.filter { sentences[$0] == seq }
        }
    }

    @Test func heldOutTemplatesNeverAppearInTrainingText() throws {
        let ds = try DataTest.generate(GrammarTests.spec)
        let plan = try #require(ds.templatePlan)
        #expect(plan.heldout.allSatisfy { $0.count == 1 } && plan.training.allSatisfy { $0.count == 3 })
        // Each fact's statement in a template: its words up to and including the object. Held-out
        // ones occur nowhere in the token stream; the evaluable training ones occur exactly as
        // often as sentences use them (so the scan would find a leaked one).
        let used = templatesOfSequences(ds)
        var heldoutHits = 0, trainedHits = 0, trainedUses = 0
        for f in 0..<ds.numFacts {
            let r = Int(ds.fact(f).relation)
            for t in plan.heldout[r] {
                heldoutHits += occurrences(ds.templatePrompt(ofFact: f, template: t) + [ds.tailToken(ofFact: f)], in: ds.tokens)
            }
            for t in plan.training[r] where plan.pool[t].isEvaluable {
                trainedHits += occurrences(ds.templatePrompt(ofFact: f, template: t) + [ds.tailToken(ofFact: f)], in: ds.tokens)
            }
        }
        for (i, ts) in used.enumerated() where ts.count == 1 && plan.pool[ts[0]].isEvaluable {
            trainedUses += plan.training[Int(ds.fact(Int(ds.sequenceFacts[i])).relation)].contains(ts[0]) ? 1 : 0
        }
        #expect(heldoutHits == 0)
        #expect(trainedHits == trainedUses && trainedUses >= ds.numSequences / 4)
    }

    @Test func everySentenceIsInExactlyOneOfItsRelationsTrainingTemplates() throws {
        // Nested data: the nested relations draw templates too (an object→nested fact's head is an object).
        let nested = try DataTest.generate(#"{"preset": "tiny", "num_nested_objects": 4, "templates_per_relation": 3, "heldout_templates": 1, "repeats": 2}"#)
        #expect(nested.templatePlan?.training.count == 9)
        for prefix in ["subject_object_", "subject_nested_object_", "object_nested_object_"] {
            #expect(nested.evalGroup(named: prefix + "paraphrase")?.count == nested.evalGroup(named: prefix + "sro")?.count)
        }
        let ds = try DataTest.generate(GrammarTests.spec)
        let plan = try #require(ds.templatePlan)
        for d in [ds, nested] {
            for (i, ts) in templatesOfSequences(d).enumerated() {
                let r = Int(d.fact(Int(d.sequenceFacts[i])).relation)
                #expect(ts.count == 1 && d.templatePlan!.training[r].contains(ts[0]), "sequence \(i) matches templates \(ts)")
            }
        }
        // The assignment: the official sentence first, held-out templates evaluable and apart from
        // the training ones, listed as text in the dataset's info.
        for r in plan.training.indices {
            #expect(plan.training[r][0] == 0 && plan.pool[0] == Template.official)
            #expect(plan.heldout[r].allSatisfy { plan.pool[$0].isEvaluable && !plan.training[r].contains($0) })
        }
        guard case let .array(rows)? = ds.infoJSON()["templates"] else { Issue.record("info lists no templates"); return }
        #expect(rows.count == ds.relations.count)
        #expect(rows[0]["training"] == .strings(plan.training[0].map { plan.pool[$0].text }))
        #expect(rows[0]["heldout"] == .strings(plan.heldout[0].map { plan.pool[$0].text }))
        #expect(plan.pool[plan.training[0][0]].text == "SS {s} W0 W1 RR {r} W2 OO {o}")
    }

    @Test func templatesAreChosenAsSeeded() throws {
        let spec = #"{"preset": "tiny", "templates_per_relation": 5, "heldout_templates": 1, "template_weights": [4, 2, 1, 1], "repeats": 30, "seed": 2}"#
        let ds = try DataTest.generate(spec)
        let plan = try #require(ds.templatePlan)
        var counts = [Double](repeating: 0, count: 4)
        for (i, ts) in templatesOfSequences(ds).enumerated() {
            let r = Int(ds.fact(Int(ds.sequenceFacts[i])).relation)
            guard ts.count == 1, let slot = plan.training[r].firstIndex(of: ts[0]) else { Issue.record("sequence \(i)"); return }
            counts[slot] += 1
        }
        // Chi-square against the weights (3 degrees of freedom; 16.27 is the 0.1% critical value).
        let n = Double(ds.numSequences), p = [0.5, 0.25, 0.125, 0.125]
        let chi2 = zip(counts, p).reduce(0.0) { $0 + ($1.0 - n * $1.1) * ($1.0 - n * $1.1) / (n * $1.1) }
        #expect(chi2 < 16.27, "counts \(counts) of \(n)")
        // Seeded: the same spec gives the same data; another seed other assignments.
        DataTest.expectIdentical(ds, try DataTest.generate(spec))
        let other = try #require(try DataTest.generate(spec.replacingSeed(3)).templatePlan)
        #expect(other.training != plan.training || other.heldout != plan.heldout)
        #expect(Set(plan.heldout.map { $0[0] }).count > 1 || Set(plan.training).count > 1, "relations draw their own templates")
    }

    @Test func oneTemplatePerRelationIsTheOfficialGrammarBitForBit() throws {
        let plain = try DataTest.generate(#"{"preset": "tiny", "repeats": 2, "seed": 4}"#)
        let explicit = try DataTest.generate(#"{"preset": "tiny", "repeats": 2, "seed": 4, "templates_per_relation": 1, "heldout_templates": 0, "templates": [], "template_weights": []}"#)
        DataTest.expectIdentical(plain, explicit)
        #expect(plain.contentDigest() == explicit.contentDigest())
        #expect(explicit.spec.toJSON() == plain.spec.toJSON())
        for key in ["templates_per_relation", "heldout_templates", "template_weights", "templates"] {
            #expect(!plain.spec.toJSON().serialized().contains(key))
        }
        #expect(plain.templatePlan == nil && plain.infoJSON()["templates"] == nil)
        #expect(plain.evalGroups.map(\.name) == ["sro"])
        #expect(try plain.decode(plain.sequence(0)).hasPrefix(" SS "))
    }

    @Test func badTemplateSpecsAreRefusedWithTheReason() throws {
        let cases: [(String, String)] = [
            (#""templates_per_relation": 3, "templates": ["SS {s} W0 RR {r} OO"]"#, "has no {o} slot"),
            (#""templates_per_relation": 3, "templates": ["SS {s} W0 RR OO {o}"]"#, "has no {r} slot"),
            (#""templates_per_relation": 2, "templates": ["SS {s} {s} RR {r} OO {o}"]"#, "the {s} slot 2 times"),
            (#""templates_per_relation": 2, "templates": ["SS {s} W1000 RR {r} OO {o}"]"#, "\"W1000\" is not a token name"),
            (#""templates_per_relation": 2, "templates": ["SS {s} is RR {r} OO {o}."]"#, "\"is\" is not a token name"),
            (#""templates_per_relation": 2, "templates": ["SS {s} WQ5 RR {r} OO {o}"]"#, "\"WQ5\" is not a token name"),
            (#""templates_per_relation": 2, "templates": [""]"#, "is empty"),
            (#""templates_per_relation": 2, "templates": ["SS {s} W0 W1 RR {r} W2 OO {o}"]"#, "repeats the official sentence"),
            (#""templates_per_relation": 3, "templates": ["RR {r} SS {s} OO {o}", "RR {r} SS {s} OO {o}"]"#, "repeats templates[0]"),
            (#""templates_per_relation": 3, "heldout_templates": 3"#, "must be less than templates_per_relation"),
            (#""templates_per_relation": 29"#, "the generated family has only 27 templates"),
            (#""templates_per_relation": 25, "heldout_templates": 20"#, "only 19 evaluable templates"),
            (#""templates_per_relation": 3, "templates": ["RR {r} SS {s} OO {o}"]"#, "templates lists only 1 templates"),
            (#""templates_per_relation": 2, "heldout_templates": 1, "templates": ["OO {o} W5 SS {s} W8 RR {r}"]"#, "only 0 evaluable templates"),
            (#""heldout_templates": 1"#, "need templates_per_relation > 1"),
            (#""templates": ["RR {r} SS {s} OO {o}"]"#, "need templates_per_relation > 1"),
            (#""templates_per_relation": 3, "template_weights": [1, 2]"#, "template_weights has 2 weights but each relation has 3"),
            (#""templates_per_relation": 3, "template_weights": [1, -2, 1]"#, "template_weights[1] = -2 must be a positive number"),
            (#""templates_per_relation": 3, "template_weights": "even""#, "template_weights must be an array of numbers"),
            (#""templates_per_relation": 2, "phrase_creator": "nonsense""#, "phrase_creator \"inverted\" and inversion_frac 0"),
            (#""templates_per_relation": 2, "inversion_frac": 0.3"#, "phrase_creator \"inverted\" and inversion_frac 0"),
            (#""templates_per_relation": 0"#, "must be at least 1"),
            ("\"templates_per_relation\": 2, \"templates\": [\"SS {s} RR {r} OO {o}" + String(repeating: " W40", count: 62) + "\"]", "has 68 tokens and slots; at most 64"),
            ("\"templates_per_relation\": 2, \"templates\": [" + (0..<1001).map { "\"W\($0 % 999) SS {s} RR {r} OO {o}\"" }.joined(separator: ", ") + "]", "templates lists 1001 templates; at most 1000"),
            (#""templates_per_relation": 3, "templates": ["RR {r} SS {s} OO {o}", "W40 RR {r} SS {s} OO {o} W41"]"#, "templates[1] \"W40 RR {r} SS {s} OO {o} W41\" holds templates[0]"),
            (#""templates_per_relation": 2, "templates": ["W40 SS {s} W0 W1 RR {r} W2 OO {o}"]"#, "holds the official sentence"),
        ]
        for (fields, message) in cases {
            do {
                _ = try Dataset.generate(specJSON: "{\"preset\": \"tiny\", \(fields)}")
                Issue.record("accepted: \(fields)")
            } catch {
                #expect(error.message.contains(message), "\(fields): \(error.message)")
            }
        }
        // The official folder format cannot describe several templates: export refuses.
        let ds = try DataTest.generate(GrammarTests.spec)
        let dir = DataTest.tempDir("templates-export")
        defer { DataTest.removeTree(dir) }
        refused("export", "templates_per_relation") { () throws(EngineError) in try ds.exportReference(dir) }
        // Asking for a paraphrase group of a dataset without one says what it needs.
        let plain = try TinyRun.dataset()
        refused("paraphrase group", "heldout_templates > 0") { () throws(EngineError) in _ = try plain.promptSet("paraphrase") }
    }

    func refused(_ what: String, _ message: String, _ body: () throws(EngineError) -> Void) {
        do {
            try body()
            Issue.record("\(what) was accepted")
        } catch {
            #expect(error.message.contains(message), "\(what): \(error.message)")
        }
    }

    @Test func explicitTemplatesLongerSentencesAndTheFileRoundTrip() throws {
        let spec = #"{"preset": "tiny", "templates_per_relation": 3, "heldout_templates": 1, "templates": ["W40 W41 W42 W43 W44 W45 SS {s} W46 RR {r} W47 W48 OO {o} W49 W50", "OO {o} W5 SS {s} W8 RR {r}"]}"#
        let ds = try DataTest.generate(spec)
        let plan = try #require(ds.templatePlan)
        // The only evaluable extra is held out everywhere; the other trains.
        #expect(plan.heldout.allSatisfy { $0 == [1] } && plan.training.allSatisfy { $0 == [0, 2] })
        #expect(ds.evalGroup(named: "trained_paraphrase") == nil)
        // Its prompt stops before the object (words after the object are not part of it).
        let g = try ds.promptSet("paraphrase")
        #expect(g.count == ds.numFacts)
        for i in 0..<g.count {
            let f = Int(g.facts[i])
            #expect(Array(g.prompt(i)) == ds.templatePrompt(ofFact: f, template: 1) && g.targets[i] == ds.tailToken(ofFact: f))
            #expect(g.prompt(i).last == Vocabulary.oo && g.length(i) == 14)
        }
        // The size bound prices the longest template (17 items with a one-token subject, ".", EOS).
        let bound = try ds.spec.sizeBound()
        #expect(bound.tokens >= ds.numTokens && bound.tokens == ds.numSequences * 19)
        // Saved and loaded: the same spec, plan and groups.
        let dir = DataTest.tempDir("templates-file")
        defer { DataTest.removeTree(dir) }
        try ds.save(dir + "/d.h5")
        let back = try Dataset.load(dir + "/d.h5")
        DataTest.expectIdentical(ds, back)
        #expect(back.templatePlan?.heldout == plan.heldout && back.evalGroups == ds.evalGroups)
        let file = try H5File.open(dir + "/d.h5")
        defer { file.close() }
        #expect(try file.stringAttribute("templates", at: "/relations") == plan.infoJSON(ds.relations).serialized())
    }

    @Test func paraphraseGroupsOfTheDatasetAndOfAnEdit() throws {
        let ds = try DataTest.generate(GrammarTests.spec)
        let plan = try #require(ds.templatePlan)
        // The dataset's paraphrase group: every fact in its held-out template, fact by fact.
        let g = try ds.promptSet("paraphrase")
        #expect(g.count == ds.numFacts && g.facts == (0..<ds.numFacts).map { Int32($0) })
        for i in 0..<g.count {
            let f = Int(g.facts[i])
            #expect(Array(g.prompt(i)) == ds.templatePrompt(ofFact: f, template: plan.heldout[Int(ds.fact(f).relation)][0]))
        }
        let trained = try ds.promptSet("trained_paraphrase")
        #expect(trained.count == (0..<ds.numFacts).reduce(0) { n, f in
            n + plan.training[Int(ds.fact(f).relation)].dropFirst().filter { plan.pool[$0].isEvaluable }.count })

        // An edit: the edited fact in its held-out template, new object as target, old as alternative.
        let m = try TinyRun.model(ds)
        let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "seed": 3}"#), facts: ds.factView())
        let e = set.edits[0]
        let p = try #require(set.group("edited_paraphrase"))
        let fact = ds.factIndex(subject: e.subject, relation: e.relation)
        #expect(p.count == 1 && Array(p.prompt(0)) == ds.paraphrasePrompts(ofFact: fact)[0])
        #expect(p.targets == [ds.objectToken(relation: e.relation, ordinal: e.newObject)])
        #expect(p.alternatives == [ds.objectToken(relation: e.relation, ordinal: e.oldObject)])
        #expect(!set.sequenceGroup.isEmpty && occurrences(p.prompts, in: set.tokens) == 0, "paraphrases are not trained")
        let method = try EditMethodSpec(json: #"{"method": "full", "optimizer": {"epochs": 2, "learning_rate": 0.003}}"#, layers: m.config.layers)
        let experiment = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method)
        while try experiment.step() != nil {}
        let r = try experiment.finish()
        func metric(_ name: String) -> Double? { r.metrics.first { $0.name == name }?.value }
        // Recomputed from the group's per-prompt results.
        let after = try #require(r.group("edited_paraphrase"))
        let pairs = zip(after.targetProbability, after.alternativeProbability)
        #expect(metric("paraphrase_success") == after.accuracy)
        #expect(metric("paraphrase_score") == Double(pairs.filter { $0 > $1 }.count) / Double(after.count))
        #expect(metric("paraphrase_magnitude") == pairs.reduce(0.0) { $0 + Double($1.0 - $1.1) } / Double(after.count))
        #expect(metric("paraphrase_success_before") == r.group("edited_paraphrase", after: false)?.accuracy)
        #expect(metric("efficacy_score") != nil && metric("neighborhood_score") != nil)

        // Without held-out templates the metrics are absent, not zero.
        let plainSet = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "seed": 3}"#), facts: try TinyRun.dataset().factView())
        #expect(plainSet.group("edited_paraphrase") == nil)
        let none = EditMetrics.all(editSet: plainSet, before: [], after: [], ownRuns: [:])
        #expect(!none.contains { $0.name.hasPrefix("paraphrase") })
    }

    @Test func oneAtATimeEditsKeepEachEditsOwnParaphraseRows() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny", "templates_per_relation": 4, "heldout_templates": 2, "seed": 6}"#)
        let m = try TinyRun.model(ds)
        let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "diverse", "count": 2, "seed": 1}"#), facts: ds.factView())
        let p = try #require(set.group("edited_paraphrase"))
        #expect(p.count == 4)
        for (i, e) in set.edits.enumerated() {
            let prompts = ds.paraphrasePrompts(ofFact: ds.factIndex(subject: e.subject, relation: e.relation))
            #expect(Array(p.prompt(2 * i)) == prompts[0] && Array(p.prompt(2 * i + 1)) == prompts[1])
        }
        let method = try EditMethodSpec(json: #"{"method": "full", "mode": "one_at_a_time", "optimizer": {"epochs": 1}}"#, layers: m.config.layers)
        let experiment = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method)
        while try experiment.step() != nil {}
        let r = try experiment.finish()
        for name in ["paraphrase_success", "paraphrase_score", "paraphrase_magnitude"] {
            let v = try #require(r.metrics.first { $0.name == name })
            #expect(v.value.isFinite && v.value >= -1 && v.value <= 1)
        }
        #expect(r.metrics.first { $0.name == "paraphrase_success" }?.definition.contains("one at a time") == true)
    }
}
