/// The dataset generator: the official Behemoth generator's semantics (behemoth-method.md §1) with
/// our own deterministic random streams (xoshiro256**, one named stream per purpose), so the same
/// spec and seed give the same dataset on every machine.
///
/// Streams: "facts" (objects), "nested" (per-relation nested maps), "minority" (dissenting edges),
/// "questions" (subjects with questions), "order" (sentence and document order), "sentences"
/// (template and minority choices while writing), "eval" (nonsense fillers of evaluation prompts),
/// and with several templates per relation "templates" (each relation's templates) and
/// "template choice" (the template of each sentence).
extension Dataset {
    public static func generate(_ spec: DatasetSpec) throws(EngineError) -> Dataset {
        try spec.validate()
        let layout = try VocabularyLayout.of(spec)
        let vocab = try Vocabulary(layout: layout)
        let relations = Dataset.makeRelations(layout, roles: vocab.roles)
        let S = spec.subjects, R = spec.relationships, O = spec.objects, K = spec.numNestedObjects
        let edges = S * R

        // 1. Objects of every (s, r), at index s*R + r.
        var rng = RNG(seed: spec.seed, stream: "facts")
        var obj = [Int32](repeating: 0, count: edges)
        if spec.correlatedPair {
            let c = spec.correlationStrength
            for s in 0..<S {
                let o1 = rng.below(spec.binarizeFirstCorrelated ? 2 : O)
                var o2: Int
                if rng.uniform() <= c {
                    o2 = o1
                } else {
                    o2 = 1 + rng.below(O - 1)
                    if o2 == o1 { o2 = O - 1 }  // the official collision rule
                }
                obj[s * R] = Int32(o1)
                obj[s * R + 1] = Int32(o2)
                for r in 2..<R { obj[s * R + r] = Int32(rng.below(O)) }
            }
        } else {
            for i in 0..<edges { obj[i] = Int32(rng.below(O)) }
        }

        // 2. Nested maps: per relation, a shuffled array holding O/K copies of each of 0..<K.
        var fullMap: [Int32] = []
        if K > 0 {
            var nrng = RNG(seed: spec.seed, stream: "nested")
            fullMap.reserveCapacity(R * O)
            for _ in 0..<R {
                var m = [Int32](repeating: 0, count: O)
                for i in 0..<O { m[i] = Int32(i / (O / K)) }
                nrng.shuffle(&m)
                fullMap += m
            }
        }

        // 3. Dissenting minority objects for int(m * edges) random edges.
        var alt = [Int32](repeating: -1, count: edges)
        if spec.minorityPositionEntityFrac > 0 {
            var mrng = RNG(seed: spec.seed, stream: "minority")
            let n = Int((spec.minorityPositionEntityFrac * Double(edges)).rounded(.towardZero))
            for e in mrng.sample(n, from: edges) {
                var a = mrng.below(O - 1)
                if a >= Int(obj[e]) { a += 1 }
                alt[e] = Int32(a)
            }
        }

        // 4. The fact table: S–O, then S–NO, then O–NO for every (r, o) some subject has (by r, o).
        var facts = [Int32]()
        var onoCount = 0
        var nestedMap: [Int32] = []
        if K > 0 {
            var seen = [Bool](repeating: false, count: R * O)
            for i in 0..<edges { seen[(i % R) * O + Int(obj[i])] = true }
            onoCount = seen.reduce(0) { $0 + ($1 ? 1 : 0) }
            nestedMap = (0..<(R * O)).map { seen[$0] ? fullMap[$0] : -1 }
            facts.reserveCapacity(4 * (2 * edges + onoCount))
            for i in 0..<edges { facts += [Int32(i / R), Int32(i % R), obj[i], alt[i]] }
            for i in 0..<edges {
                let r = i % R
                facts += [Int32(i / R), Int32(R + r), fullMap[r * O + Int(obj[i])], -1]
            }
            for r in 0..<R { for o in 0..<O where seen[r * O + o] { facts += [Int32(o), Int32(2 * R + r), fullMap[r * O + o], -1] } }
        } else {
            facts.reserveCapacity(4 * edges)
            for i in 0..<edges { facts += [Int32(i / R), Int32(i % R), obj[i], alt[i]] }
        }
        let numFacts = facts.count / 4

        // 5. Subjects with questions.
        var questionSubjects: [Int32] = []
        let qRepeats = spec.questionRepeats
        if spec.questionsFrac > 0 {
            var qrng = RNG(seed: spec.seed, stream: "questions")
            questionSubjects = qrng.sample(spec.questionSubjectCount, from: S).map { Int32($0) }.sorted()
        }

        // 6. Sentence units in their final order. A unit is a fact index, with bit 31 set for a question.
        let questionBit: UInt32 = 1 << 31
        var units: [UInt32] = []
        let perFact = spec.repeats
        let bound = try spec.sizeBound()
        units.reserveCapacity(bound.sentences)
        var orng = RNG(seed: spec.seed, stream: "order")
        let statementFacts = K > 0 ? 2 * edges : edges
        if spec.shuffle {
            for f in 0..<statementFacts { for _ in 0..<perFact { units.append(UInt32(f)) } }
            for f in statementFacts..<numFacts {
                for _ in 0..<(perFact * spec.objNestedObjEdgesUpweight) { units.append(UInt32(f)) }
            }
            for s in questionSubjects {
                for r in 0..<R { for _ in 0..<qRepeats { units.append(UInt32(Int(s) * R + r) | questionBit) } }
            }
            orng.shuffle(&units)
        } else {
            // Bio documents: every repeat of a subject is one document of all its sentences in random
            // order; O–NO sentences and questions are one-sentence documents. Documents are shuffled.
            // A document is coded as (subject + 1) << 32 or, for a single unit, the unit itself.
            var docs: [UInt64] = []
            docs.reserveCapacity(S * perFact + (numFacts - statementFacts) * perFact * spec.objNestedObjEdgesUpweight)
            for s in 0..<S { for _ in 0..<perFact { docs.append(UInt64(s + 1) << 32) } }
            for f in statementFacts..<numFacts {
                for _ in 0..<(perFact * spec.objNestedObjEdgesUpweight) { docs.append(UInt64(f)) }
            }
            for s in questionSubjects {
                for r in 0..<R { for _ in 0..<qRepeats { docs.append(UInt64(UInt32(Int(s) * R + r) | questionBit)) } }
            }
            orng.shuffle(&docs)
            var doc: [UInt32] = []
            for d in docs {
                if d >> 32 == 0 { units.append(UInt32(d)); continue }
                let s = Int(d >> 32) - 1
                doc.removeAll(keepingCapacity: true)
                for r in 0..<R { doc.append(UInt32(s * R + r)) }
                if K > 0 { for r in 0..<R { doc.append(UInt32(edges + s * R + r)) } }
                orng.shuffle(&doc)
                units += doc
            }
        }

        // 7. Write the sentences. Those of excluded facts are written too (so every other sentence
        // comes out exactly as without the filter) and then dropped.
        var excluded = [Bool](repeating: false, count: numFacts)
        for f in spec.excludeFacts {
            guard f < numFacts else {
                throw .invalid("dataset spec: exclude_facts names fact \(f), but this dataset has \(numFacts) facts (0..<\(numFacts))")
            }
            excluded[f] = true
        }
        let plan = try TemplatePlan.make(spec, relations: relations.count)
        let grammar = Grammar(layout: layout, creator: spec.phraseCreator, inversionFrac: spec.inversionFrac, templates: plan)
        var srng = RNG(seed: spec.seed, stream: "sentences")
        var trng = RNG(seed: spec.seed, stream: "template choice")
        var tokens: [Int32] = []
        tokens.reserveCapacity(min(bound.tokens, bound.sentences * (16 + layout.subjectWidth)))
        var offsets = [Int64](repeating: 0, count: units.count + 1)
        var sequenceFacts = [Int32](repeating: 0, count: units.count)
        let subjectHeads = (0..<S).map { Head(layout.subjectTokens($0)) }
        let p = spec.minorityPositionFrac
        var kept = 0
        for u in units {
            let f = Int(u & ~questionBit)
            let rel = Int(facts[4 * f + 1])
            let relation = relations[rel]
            let head: Head
            if relation.kind == .objectNested {
                head = Head(a: layout.objectToken(relation: relation.baseRelation, ordinal: Int(facts[4 * f])), b: 0, width: 1)
            } else {
                head = subjectHeads[Int(facts[4 * f])]
            }
            let tailFirst = vocab.roles[relation.tailRole].first
            var o = layout.token(tailFirst + Int(facts[4 * f + 2]))
            let a = facts[4 * f + 3]
            if a >= 0 && srng.uniform() < p { o = layout.token(tailFirst + Int(a)) }
            if u & questionBit != 0 {
                grammar.question(&tokens, head: head, relation: relation.token, object: o)
            } else if let plan {
                grammar.templated(&tokens, template: plan.training[rel][plan.pick(&trng)], head: head, relation: relation.token, object: o)
            } else {
                grammar.sentence(&tokens, head: head, relation: relation.token, object: o, rng: &srng)
            }
            if excluded[f] {
                tokens.removeSubrange(Int(offsets[kept])...)
                continue
            }
            offsets[kept + 1] = Int64(tokens.count)
            sequenceFacts[kept] = Int32(f)
            kept += 1
        }
        offsets.removeLast(units.count - kept)
        sequenceFacts.removeLast(units.count - kept)

        // 8. Evaluation groups: every fact as prompt (up to OO) -> object token.
        var erng = RNG(seed: spec.seed, stream: "eval")
        var groups: [PromptSet] = []
        func group(_ name: String, _ factRange: [Int], _ make: (inout [Int32], Int) -> Void) {
            var prompts: [Int32] = [], po: [Int64] = [0], targets: [Int32] = [], gf: [Int32] = []
            prompts.reserveCapacity(factRange.count * 12)
            po.reserveCapacity(factRange.count + 1)
            for f in factRange {
                make(&prompts, f)
                po.append(Int64(prompts.count))
                let rel = relations[Int(facts[4 * f + 1])]
                targets.append(layout.token(vocab.roles[rel.tailRole].first + Int(facts[4 * f + 2])))
                gf.append(Int32(f))
            }
            groups.append(PromptSet(name: name, prompts: prompts, offsets: po, targets: targets, facts: gf))
        }
        func headOf(_ f: Int) -> Head {
            let rel = relations[Int(facts[4 * f + 1])]
            if rel.kind == .objectNested { return Head(a: layout.objectToken(relation: rel.baseRelation, ordinal: Int(facts[4 * f])), b: 0, width: 1) }
            return subjectHeads[Int(facts[4 * f])]
        }
        for (prefix, range) in templateGroupFacts(nested: K > 0, edges: edges, numFacts: numFacts) {
            for t in grammar.evalTemplates {
                group(prefix + t, Array(range)) { out, f in
                    grammar.evalPrompt(&out, template: t, head: headOf(f), relation: relations[Int(facts[4 * f + 1])].token, rng: &erng)
                }
            }
        }
        // Several templates: each fact in its relation's held-out templates ("paraphrase") and in
        // its other evaluable training templates ("trained_paraphrase"), fact by fact.
        if let plan {
            let trainedExtra = plan.training.map { $0.dropFirst().filter { plan.pool[$0].isEvaluable } }
            for (prefix, range) in templateGroupFacts(nested: K > 0, edges: edges, numFacts: numFacts) {
                for (name, perRelation) in [("paraphrase", plan.heldout), ("trained_paraphrase", trainedExtra)] {
                    var items: [(fact: Int, template: Int)] = []
                    for f in range { for t in perRelation[Int(facts[4 * f + 1])] { items.append((f, t)) } }
                    if items.isEmpty { continue }
                    var k = 0
                    group(prefix + name, items.map(\.fact)) { out, f in
                        grammar.templatePrompt(&out, template: items[k].template, head: headOf(f), relation: relations[Int(facts[4 * f + 1])].token)
                        k += 1
                    }
                }
            }
        }
        if !questionSubjects.isEmpty {
            var has = [Bool](repeating: false, count: S)
            for s in questionSubjects { has[Int(s)] = true }
            let asked = (0..<edges).filter { has[$0 / R] }, new = (0..<edges).filter { !has[$0 / R] }
            for (name, list) in [("qa", asked), ("qa_new", new)] where !list.isEmpty {
                group(name, list) { out, f in grammar.questionPrompt(&out, head: headOf(f), relation: relations[Int(facts[4 * f + 1])].token) }
            }
        }

        let ds = try Dataset(spec: spec, origin: "generated", vocabulary: vocab, relations: relations, facts: facts,
                             tokens: tokens, offsets: offsets, sequenceFacts: sequenceFacts, evalGroups: groups,
                             questionSubjects: questionSubjects, nestedMap: nestedMap)
        try ds.checkCollisionPrompts()
        return ds
    }

    public static func generate(specJSON: String) throws(EngineError) -> Dataset {
        try generate(DatasetSpec.parse(specJSON))
    }
}
