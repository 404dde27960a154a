import Testing
@testable import Engine

@Suite struct DatasetGeneratorTests {
    @Test func tinyPresetHasOfficialLayoutAndPartitionedVocabulary() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny"}"#)
        #expect(ds.numSubjects == 64 && ds.numBaseRelations == 3 && ds.numObjects == 8)
        #expect(ds.numFacts == 64 * 3)
        #expect(ds.numSequences == 64 * 3)
        // Official layout: subjects from 85, relations, objects, one skipped id, W0...
        let v = ds.vocabulary
        #expect(v.role(named: "subject")! == VocabRole(name: "subject", first: 85, count: 64))
        #expect(v.role(named: "relation")!.first == 149)
        #expect(v.role(named: "object/r0")!.first == 152 && v.role(named: "object/r2")!.first == 168)
        #expect(v.role(named: "grammar")!.first == 177)  // 176 is the skipped id
        // Every id in exactly one role.
        var owner = [Int](repeating: 0, count: ds.vocabSize)
        for r in v.roles { for id in r.range { owner[id] += 1 } }
        #expect(owner.allSatisfy { $0 == 1 })
        for id in stride(from: 0, to: ds.vocabSize, by: 7) { #expect(v.roles[v.roleIndex(of: id)!].range.contains(id)) }
        // The first sentence reads like the official one.
        let text = try ds.decode(ds.sequence(0))
        #expect(text.hasPrefix(" SS 0") && text.contains(" 0177 0178 RR 0") && text.hasSuffix(".<|endoftext|>"))
        try DataTest.expectSentencesDecodeToFacts(ds)
        // Evaluation: every fact, prompt up to OO, one target.
        let g = ds.evalGroup(named: "sro")!
        #expect(g.count == ds.numFacts && ds.evalGroups.count == 1)
        for i in 0..<g.count {
            let f = Int(g.facts[i])
            #expect(g.prompt(i).last == Vocabulary.oo && g.prompt(i).count == 8)
            #expect(g.targets[i] == ds.tailToken(ofFact: f))
            #expect(Array(g.prompt(i).dropFirst().prefix(1)) == ds.headTokens(ofFact: f))
            #expect(Array(g.prompt(i)) == ds.sroPrompt(ofFact: f))
        }
        // The SRO sentence helper writes what the generator writes.
        let f0 = Int(ds.sequenceFacts[0])
        #expect(ds.sroSentence(ofFact: f0) == Array(ds.sequence(0)))
        let other = ds.objectToken(relation: Int(ds.fact(f0).relation), ordinal: (Int(ds.fact(f0).tail) + 1) % 8)
        #expect(try ds.decode(ds.sroSentence(ofFact: f0, tail: other)).hasSuffix(" OO \(fourDigits(Int(other))).<|endoftext|>"))
    }

    @Test func paperLayoutMatchesTheOfficialExample() throws {
        // " SS 0172 0714 3592 3593 RR 1186 3594 OO 1607" and a 5200-token vocabulary (behemoth-method §1.2-1.3).
        let L = try VocabularyLayout(subjects: 100_000, relationships: 6, objects: 400, nested: 0)
        #expect(L.size == 5200)
        #expect(L.unusedStart + 1 == 4603)
        #expect(L.w(0) == 3592 && L.w(1) == 3593 && L.w(2) == 3594 && L.relationToken(1) == 1186)
        #expect(L.subjectTokens(87 * 1000 + 529) == [172, 714])
        #expect(L.subjectOrdinal([172, 714]) == 87_529)
        let tiny = try VocabularyLayout(subjects: 10, relationships: 3, objects: 5, nested: 0)
        #expect(tiny.size == 1337)
    }

    @Test func twoTokenSubjectsHaveDisjointRanges() throws {
        let ds = try DataTest.generate(#"{"subjects": 2000, "relationships": 2, "objects": 10}"#)
        let a = ds.vocabulary.role(named: "subject_first")!, b = ds.vocabulary.role(named: "subject_second")!
        #expect(a.count == 2 && b.count == 1000 && b.first == a.first + 2)
        #expect(ds.subjectTokens(1999) == [86, 1086])
        var seen = Set<[Int32]>()
        for s in 0..<2000 {
            let t = ds.subjectTokens(s)
            #expect(a.range.contains(Int(t[0])) && b.range.contains(Int(t[1])))
            seen.insert(t)
        }
        #expect(seen.count == 2000)
        try DataTest.expectSentencesDecodeToFacts(ds)
        // Not a multiple of 1000: the official divisor rule still gives distinct words.
        let odd = try VocabularyLayout(subjects: 1500, relationships: 1, objects: 2, nested: 0)
        #expect(Set((0..<1500).map { odd.subjectTokens($0) }).count == 1500)
        #expect((0..<1500).allSatisfy { odd.subjectOrdinal(odd.subjectTokens($0)) == $0 })
    }

    @Test func sameSpecAndSeedGiveIdenticalData() throws {
        let spec = #"{"preset": "tiny", "repeats": 3, "inversion_frac": 0.3, "minority_position_entity_frac": 0.2, "questions_frac": 0.5, "seed": 7}"#
        let a = try DataTest.generate(spec), b = try DataTest.generate(spec)
        DataTest.expectIdentical(a, b)
        let c = try DataTest.generate(spec.replacingSeed(8))
        #expect(a.facts != c.facts && a.tokens != c.tokens)
    }

    @Test func objectFrequenciesAreUniform() throws {
        let S = 6000, R = 3, O = 20
        let ds = try DataTest.generate(#"{"subjects": \#(S), "relationships": \#(R), "objects": \#(O), "seed": 11}"#)
        for r in 0..<R {
            var counts = [Int](repeating: 0, count: O)
            for s in 0..<S { counts[Int(ds.fact(ds.factIndex(subject: s, relation: r)).tail)] += 1 }
            let e = Double(S) / Double(O)
            let chi2 = counts.reduce(0.0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
            #expect(chi2 < 43.82, "relation \(r): chi-square \(chi2) with 19 degrees of freedom (p = 0.001 critical value 43.82)")
        }
        // Relations are independent: the joint table of r0 x r1 is uniform too.
        var joint = [Int](repeating: 0, count: O * O)
        for s in 0..<S { joint[Int(ds.fact(s * R).tail) * O + Int(ds.fact(s * R + 1).tail)] += 1 }
        let e = Double(S) / Double(O * O)
        let chi2 = joint.reduce(0.0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
        #expect(chi2 < 480, "independence chi-square \(chi2) with 399 degrees of freedom")
    }

    /// Expected Pearson correlation and P(o1 == o2) of the official correlated-pair rule, by enumeration.
    static func expectedCorrelation(c: Double, O: Int, binarized: Bool) -> (pearson: Double, equal: Double) {
        let n1 = binarized ? 2 : O
        var cases: [(Double, Double, Double)] = []  // (o1, o2, probability)
        for o1 in 0..<n1 {
            cases.append((Double(o1), Double(o1), c / Double(n1)))
            for d in 1..<O {
                let o2 = d == o1 ? O - 1 : d
                cases.append((Double(o1), Double(o2), (1 - c) / Double(n1) / Double(O - 1)))
            }
        }
        let m1 = cases.reduce(0) { $0 + $1.0 * $1.2 }, m2 = cases.reduce(0) { $0 + $1.1 * $1.2 }
        let cov = cases.reduce(0) { $0 + ($1.0 - m1) * ($1.1 - m2) * $1.2 }
        let v1 = cases.reduce(0) { $0 + ($1.0 - m1) * ($1.0 - m1) * $1.2 }, v2 = cases.reduce(0) { $0 + ($1.1 - m2) * ($1.1 - m2) * $1.2 }
        let eq = cases.reduce(0) { $0 + ($1.0 == $1.1 ? $1.2 : 0) }
        return (cov / (v1 * v2).squareRoot(), eq)
    }

    static func measured(_ ds: Dataset) -> (pearson: Double, equal: Double) {
        let S = ds.numSubjects, R = ds.numBaseRelations
        var x: [Double] = [], y: [Double] = []
        for s in 0..<S { x.append(Double(ds.fact(s * R).tail)); y.append(Double(ds.fact(s * R + 1).tail)) }
        let mx = x.reduce(0, +) / Double(S), my = y.reduce(0, +) / Double(S)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in 0..<S { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my) }
        let eq = Double(zip(x, y).filter { $0 == $1 }.count) / Double(S)
        return (sxy / (sxx * syy).squareRoot(), eq)
    }

    @Test(arguments: [(1.0, false), (0.5, false), (0.15, false), (0.75, true), (1.0, true)])
    func correlatedPairMatchesRequestedStrength(c: Double, binarized: Bool) throws {
        let S = 8000, O = 10
        let ds = try DataTest.generate(#"{"subjects": \#(S), "relationships": 3, "objects": \#(O), "correlated_pair": true, "correlation_strength": \#(c), "binarize_first_correlated": \#(binarized), "seed": 3}"#)
        let want = Self.expectedCorrelation(c: c, O: O, binarized: binarized)
        let got = Self.measured(ds)
        // Sampling error: sd(fraction) <= 0.5/sqrt(S); sd(Pearson) ~ (1 - rho^2)/sqrt(S). Allow 4 sd.
        let sdEq = (want.equal * (1 - want.equal) / Double(S)).squareRoot()
        #expect(abs(got.equal - want.equal) <= 4 * sdEq + 1e-12, "equal fraction \(got.equal), expected \(want.equal)")
        let sdR = max(1e-12, (1 - want.pearson * want.pearson) / Double(S).squareRoot())
        #expect(abs(got.pearson - want.pearson) <= 4 * sdR + 1e-9, "Pearson \(got.pearson), expected \(want.pearson)")
        if c == 1.0 { #expect(got.equal == 1.0 && abs(got.pearson - 1) < 1e-12) }
        if binarized { #expect((0..<S).allSatisfy { ds.fact($0 * 3).tail < 2 }) }
        // The third relation stays independent of the first.
        var z: [Double] = [], x: [Double] = []
        for s in 0..<S { x.append(Double(ds.fact(s * 3).tail)); z.append(Double(ds.fact(s * 3 + 2).tail)) }
        let mx = x.reduce(0, +) / Double(S), mz = z.reduce(0, +) / Double(S)
        var sxz = 0.0, sxx = 0.0, szz = 0.0
        for i in 0..<S { sxz += (x[i] - mx) * (z[i] - mz); sxx += (x[i] - mx) * (x[i] - mx); szz += (z[i] - mz) * (z[i] - mz) }
        #expect(abs(sxz / (sxx * szz).squareRoot()) < 4 / Double(S).squareRoot())
    }

    @Test func correlationGuardsAreErrors() {
        // c <= 1/O is an error in the official generator (so c = 0.0 cannot be requested), as is c <= 0.5 binarized.
        for (json, fragment) in [
            (#"{"preset": "tiny", "correlated_pair": true, "correlation_strength": 0.0}"#, "correlation_strength = 0 must be greater than 1/objects"),
            (#"{"preset": "tiny", "correlated_pair": true, "correlation_strength": 0.125}"#, "must be greater than 1/objects = 0.125"),
            (#"{"preset": "tiny", "correlated_pair": true, "correlation_strength": 0.5, "binarize_first_correlated": true}"#, "greater than 0.5 with binarize_first_correlated"),
            (#"{"preset": "tiny", "correlated_pair": true, "correlation_strength": 1.5}"#, "correlation_strength = 1.5 must be at most 1"),
            (#"{"preset": "tiny", "correlated_pair": true, "relationships": 1}"#, "at least 2 relationships"),
        ] {
            do { _ = try DataTest.generate(json); Issue.record("expected an error for \(json)") } catch {
                #expect(error.status == .invalid)
                #expect(error.message.contains(fragment), "\(error.message)")
            }
        }
    }

    @Test func nestedObjectsFollowTheirPerRelationMaps() throws {
        let S = 500, R = 3, O = 12, K = 4
        let ds = try DataTest.generate(#"{"subjects": \#(S), "relationships": \#(R), "objects": \#(O), "num_nested_objects": \#(K), "repeats": 2, "obj_nested_obj_edges_upweight": 3, "seed": 5}"#)
        #expect(ds.relations.count == 3 * R)
        #expect(ds.evalGroups.map(\.name) == ["subject_object_sro", "subject_nested_object_sro", "object_nested_object_sro"])
        // Each relation's map gives each nested value to O/K objects.
        for r in 0..<R {
            let row = ds.nestedMap[(r * O)..<((r + 1) * O)]
            #expect(row.allSatisfy { $0 >= 0 })  // 500 subjects draw every object
            for k in 0..<K { #expect(row.filter { $0 == Int32(k) }.count == O / K) }
        }
        let edges = S * R
        for e in 0..<edges {
            let so = ds.fact(e), sno = ds.fact(edges + e)
            #expect(sno.head == so.head && Int(sno.relation) == R + Int(so.relation))
            #expect(sno.tail == ds.nestedMap[Int(so.relation) * O + Int(so.tail)])
        }
        let ono = (2 * edges)..<ds.numFacts
        #expect(ono.count == R * O)  // deduplicated per (r, o)
        for f in ono {
            let x = ds.fact(f)
            let r = Int(x.relation) - 2 * R
            #expect(x.tail == ds.nestedMap[r * O + Int(x.head)])
        }
        // Training: S–O and S–NO sentences `repeats` times, O–NO sentences repeats x upweight.
        var per = [Int](repeating: 0, count: ds.numFacts)
        for f in ds.sequenceFacts { per[Int(f)] += 1 }
        #expect(per[0..<(2 * edges)].allSatisfy { $0 == 2 } && per[ono].allSatisfy { $0 == 6 })
        try DataTest.expectSentencesDecodeToFacts(ds)
        #expect(ds.evalGroup(named: "object_nested_object_sro")!.count == R * O)
        // O–NO prompts put the object word in the subject slot.
        let g = ds.evalGroup(named: "object_nested_object_sro")!
        #expect(ds.vocabulary.roles[ds.vocabulary.roleIndex(of: Int(g.prompt(0)[1]))!].name.hasPrefix("object/"))
    }

    @Test func dissentingMinorityValues() throws {
        let S = 2000, R = 2
        let ds = try DataTest.generate(#"{"subjects": \#(S), "relationships": \#(R), "objects": 10, "minority_position_entity_frac": 0.25, "minority_position_frac": 0.3, "repeats": 10, "seed": 9}"#)
        let withAlt = (0..<ds.numFacts).filter { ds.fact($0).alt >= 0 }
        #expect(withAlt.count == Int(0.25 * Double(S * R)))
        #expect(withAlt.allSatisfy { ds.fact($0).alt != ds.fact($0).tail })
        var altSentences = 0, total = 0
        for i in 0..<ds.numSequences where ds.fact(Int(ds.sequenceFacts[i])).alt >= 0 {
            total += 1
            if DataTest.parse(ds.sequence(i), ds).object == ds.tailToken(ofFact: Int(ds.sequenceFacts[i]), alt: true) { altSentences += 1 }
        }
        let frac = Double(altSentences) / Double(total), sd = (0.3 * 0.7 / Double(total)).squareRoot()
        #expect(abs(frac - 0.3) < 4 * sd, "fraction of minority sentences \(frac)")
        try DataTest.expectSentencesDecodeToFacts(ds)
        // Evaluation targets the majority object.
        let g = ds.evalGroup(named: "sro")!
        #expect((0..<g.count).allSatisfy { g.targets[$0] == ds.tailToken(ofFact: Int(g.facts[$0])) })
    }

    /// The oracle's data: the spec's exclude_facts drops exactly those facts' sentences (statements
    /// and questions); every other sentence and the fact table and evaluation groups stay the same.
    @Test func excludedFactsLoseTheirSentencesAndNothingElse() throws {
        let base = #"{"preset": "tiny", "repeats": 2, "inversion_frac": 0.3, "questions_frac": 0.5, "seed": 5"#
        let full = try DataTest.generate(base + "}")
        let excluded: Set<Int32> = [0, 7, 30, 100]
        let ds = try DataTest.generate(base + #", "exclude_facts": [100, 0, 7, 30, 7]}"#)
        #expect(ds.facts == full.facts)
        #expect(ds.evalGroups.map(\.prompts) == full.evalGroups.map(\.prompts))
        let keptFull = (0..<full.numSequences).filter { !excluded.contains(full.sequenceFacts[$0]) }
        #expect(keptFull.count < full.numSequences && ds.numSequences == keptFull.count)
        #expect(!ds.sequenceFacts.contains { excluded.contains($0) })
        for (i, j) in keptFull.enumerated() {
            #expect(ds.sequence(i) == full.sequence(j) && ds.sequenceFacts[i] == full.sequenceFacts[j], "sentence \(i)")
        }
        try DataTest.expectSentencesDecodeToFacts(ds)
        #expect(throws: EngineError.self) { try DataTest.generate(#"{"preset": "tiny", "exclude_facts": [192]}"#) }   // 64 × 3 facts
        #expect(throws: EngineError.self) { try DataTest.generate(#"{"preset": "tiny", "exclude_facts": [-1]}"#) }
    }

    @Test func questionsForAFractionOfSubjects() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny", "repeats": 2, "questions_frac": 0.5, "questions_entity_frac": 0.25, "seed": 4}"#)
        #expect(ds.questionSubjects.count == 16)
        let qRepeats = 4  // int(2 / 0.25 * 0.5)
        let questions = (0..<ds.numSequences).filter { ds.sequence($0).first == Vocabulary.qq }
        #expect(questions.count == 16 * 3 * qRepeats)
        #expect(questions.allSatisfy { ds.questionSubjects.contains(Int32(Int(ds.sequenceFacts[$0]) / 3)) })
        #expect(ds.numSequences == 64 * 3 * 2 + questions.count)
        try DataTest.expectSentencesDecodeToFacts(ds)
        let qa = ds.evalGroup(named: "qa")!, fresh = ds.evalGroup(named: "qa_new")!
        #expect(qa.count == 16 * 3 && fresh.count == 48 * 3)
        #expect(Array(qa.prompt(0).suffix(2)) == [Vocabulary.aa, Vocabulary.oo])
        #expect(try ds.decode(qa.prompt(0)).hasPrefix(" QQ 0"))
    }

    @Test func inversionsAndTheirEvaluationGroup() throws {
        let ds = try DataTest.generate(#"{"subjects": 400, "relationships": 3, "objects": 10, "inversion_frac": 0.3, "repeats": 4, "seed": 2}"#)
        let L = ds.layout
        var firsts: [Int32: Int] = [:]
        for i in 0..<ds.numSequences { firsts[ds.sequence(i).first!, default: 0] += 1 }
        // SRO and SOR start with SS, OSR with OO, RSO with W9.
        let n = Double(ds.numSequences)
        let osr = Double(firsts[Vocabulary.oo] ?? 0) / n, rso = Double(firsts[L.w(9)] ?? 0) / n
        let sd = (0.1 * 0.9 / n).squareRoot()
        #expect(abs(osr - 0.1) < 4 * sd && abs(rso - 0.1) < 4 * sd, "OSR \(osr), RSO \(rso)")
        #expect(ds.evalGroups.map(\.name) == ["sro", "rso"])
        let g = ds.evalGroup(named: "rso")!
        #expect(try ds.decode(g.prompt(0)).hasPrefix(" \(fourDigits(Int(L.w(9)))) RR"))
        try DataTest.expectSentencesDecodeToFacts(ds)
    }

    @Test func nonsenseGrammar() throws {
        let ds = try DataTest.generate(#"{"subjects": 300, "relationships": 2, "objects": 10, "phrase_creator": "nonsense", "inversion_frac": 0.2, "seed": 6}"#)
        let g = ds.vocabulary.role(named: "grammar")!
        var fillerRuns: [Int] = [], rsoCount = 0
        for i in 0..<ds.numSequences {
            let s = Array(ds.sequence(i))
            var run = 0
            for t in s {
                if g.range.contains(Int(t)) { run += 1 } else if run > 0 { fillerRuns.append(run); run = 0 }
            }
            if s.firstIndex(of: Vocabulary.rr)! < s.firstIndex(of: Vocabulary.ss)! { rsoCount += 1 }
        }
        #expect(fillerRuns.count == 3 * ds.numSequences && fillerRuns.allSatisfy { (1...5).contains($0) })
        let mean = Double(fillerRuns.reduce(0, +)) / Double(fillerRuns.count)
        #expect(abs(mean - 1.6496) < 0.05, "mean filler run \(mean)")  // 1 + .4 + .16 + .064 + .0256
        let rso = Double(rsoCount) / Double(ds.numSequences)
        #expect(abs(rso - 0.8) < 0.06)
        #expect(ds.evalGroups.map(\.name) == ["sro", "rso"])
        #expect(ds.evalGroup(named: "sro")!.prompt(0).count == 2 + 2 + 2 + 2 + 2 + 1)  // F F SS s F F RR r F F OO
        try DataTest.expectSentencesDecodeToFacts(ds)
    }

    @Test func bioDocumentsKeepASubjectTogether() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny", "shuffle": false, "repeats": 2, "num_nested_objects": 2, "seed": 1}"#)
        let R = ds.numBaseRelations, edges = ds.numSubjects * R
        // Runs of 2R consecutive sentences about one subject (its S–O and S–NO facts), O–NO sentences alone.
        var i = 0, docs = 0
        while i < ds.numSequences {
            let f = Int(ds.sequenceFacts[i])
            if f >= 2 * edges { i += 1; continue }
            let s = Int(ds.fact(f).head)
            let doc = (i..<(i + 2 * R)).map { Int(ds.sequenceFacts[$0]) }
            #expect(doc.allSatisfy { $0 < 2 * edges && Int(ds.fact($0).head) == s })
            #expect(Set(doc).count == 2 * R)
            i += 2 * R; docs += 1
        }
        #expect(docs == ds.numSubjects * 2)
        try DataTest.expectSentencesDecodeToFacts(ds)
    }

    @Test func badSpecsAreClearErrorsBeforeAnyAllocation() {
        let cases: [(String, String)] = [
            (#"{"subjects": 10"#, "malformed JSON"),
            (#"{"subjcts": 10}"#, "unknown key 'subjcts'"),
            (#"{"subjects": -5}"#, "subjects = -5 must be at least 1"),
            (#"{"subjects": 1e12}"#, "subjects = 1000000000000 is more than the 1000000 this generator supports"),
            (#"{"objects": 1000}"#, "objects = 1000 is more than the 999"),
            (#"{"subjects": "many"}"#, "subjects must be an integer"),
            (#"{"preset": "huge"}"#, #"preset = "huge" is not one of"#),
            (#"{"phrase_creator": "simplerepeats"}"#, "phrase_creator"),
            (#"{"preset": "paper", "repeats": 1000}"#, "more than the 500000000 a dataset may hold"),
            (#"{"subjects": 1000, "relationships": 10, "objects": 999}"#, "more than 10000 token ids"),
            (#"{"preset": "tiny", "num_nested_objects": 3}"#, "must be a multiple of num_nested_objects"),
            (#"{"preset": "tiny", "num_nested_objects": 2, "minority_position_entity_frac": 0.1}"#, "not supported with num_nested_objects"),
            (#"{"preset": "tiny", "inversion_frac": 1.5}"#, "inversion_frac = 1.5 must be at most 1"),
            (#"{"preset": "tiny", "questions_frac": 0.5, "questions_entity_frac": 0}"#, "needs questions_entity_frac > 0"),
            (#"[1, 2]"#, "expected a JSON object"),
        ]
        for (json, fragment) in cases {
            do { _ = try DataTest.generate(json); Issue.record("expected an error for \(json)") } catch {
                #expect(error.status == .invalid)
                #expect(error.message.contains(fragment), "\(json): \(error.message)")
                #expect(error.message.hasPrefix("dataset spec"), "\(error.message)")
            }
        }
    }

    @Test func specEchoesEveryFieldAndReparses() throws {
        let spec = try DatasetSpec.parse(#"{"preset": "demo", "objects": 60, "seed": 3}"#)
        #expect(spec.subjects == 256 && spec.relationships == 4 && spec.objects == 60)
        let again = try DatasetSpec.parse(spec.toJSON().serialized())
        #expect(again == spec)
        #expect(try DatasetSpec.parse("{}") == DatasetSpec())
        #expect(DatasetSpec().subjects == 100_000 && DatasetSpec().objects == 400)
    }

    @Test func paperPresetGeneratesInSeconds() throws {
        let t0 = monotonicSeconds()
        let ds = try DataTest.generate(#"{"preset": "paper"}"#)
        let dt = monotonicSeconds() - t0
        print("paper preset: \(ds.numFacts) facts, \(ds.numTokens) tokens, vocab \(ds.vocabSize), generated in \(dt) s")
        #expect(ds.numFacts == 600_000 && ds.numTokens == 600_000 * 12 && ds.vocabSize == 5200)
        #expect(dt < 60)
    }
}

extension String {
    func replacingSeed(_ seed: Int) -> String {
        guard let r = firstRange(of: "\"seed\": ") else { return self }
        var s = self
        let end = s[r.upperBound...].firstIndex { !$0.isNumber }!
        s.replaceSubrange(r.upperBound..<end, with: String(seed))
        return s
    }
}
