extension Dataset {
    /// The base facts as the edit-set builder sees them: object ordinals per (subject, relation),
    /// prompts and object tokens in the dataset's own SRO grammar.
    public func factView() -> FactView {
        let S = numSubjects, R = numBaseRelations
        var table = [Int32](repeating: 0, count: S * R), index = [Int32](repeating: -1, count: S * R)
        for s in 0..<S {
            for r in 0..<R {
                let i = factIndex(subject: s, relation: r)
                table[s * R + r] = fact(i).tail
                index[s * R + r] = Int32(i)
            }
        }
        var view = FactView(subjects: S, relations: R, objects: numObjects, objectTable: table, factIndex: index,
                            correlatedPair: spec.correlatedPair && R >= 2 ? (0, 1) : nil,
                            prompt: { [self] s, r in sroPrompt(ofFact: factIndex(subject: s, relation: r)) },
                            objectToken: { [self] r, o in objectToken(relation: r, ordinal: o) },
                            sentenceEnd: [Vocabulary.dot, Vocabulary.eos])
        view.promptOfFact = { [self] i in sroPrompt(ofFact: i) }
        view.tailOfFact = { [self] i in Int(fact(i).tail) }
        view.paraphrases = { [self] i in i >= 0 ? paraphrasePrompts(ofFact: i) : [] }
        view.tailToken = { [self] i, k in layout.token(vocabulary.roles[relations[Int(fact(i).relation)].tailRole].first + k) }
        view.subjectTokens = { [self] s in subjectTokens(s) }
        view.relationToken = { [self] r in relationToken(r) }
        if numNestedObjects > 0 {
            view.nested = numNestedObjects
            view.subjectNestedFact = [Int32](repeating: -1, count: S * R)
            view.objectNestedFact = [Int32](repeating: -1, count: R * numObjects)
            for i in 0..<numFacts {
                let f = fact(i), rel = relations[Int(f.relation)]
                switch rel.kind {
                case .subjectNested: view.subjectNestedFact[Int(f.head) * R + rel.baseRelation] = Int32(i)
                case .objectNested: view.objectNestedFact[rel.baseRelation * numObjects + Int(f.head)] = Int32(i)
                case .base: break
                }
            }
        }
        return view
    }

    /// An evaluation group by name (an error naming the groups there are).
    public func promptSet(_ name: String) throws(EngineError) -> PromptSet {
        guard let g = evalGroup(named: name) else {
            let why = name.hasSuffix("paraphrase") && templatePlan?.heldout.first?.isEmpty != false
                ? "; paraphrase groups need a dataset spec with templates_per_relation > 1 and heldout_templates > 0" : ""
            throw .invalid("evaluation: the dataset has no group \"\(name)\" (it has \(evalGroups.map(\.name).joined(separator: ", "))\(why))")
        }
        return g
    }

    /// Whether a model's vocabulary can hold this dataset's tokens.
    public func checkFits(vocabSize: Int, what: String) throws(EngineError) {
        guard vocabSize >= self.vocabSize else {
            throw .invalid("\(what): the model's vocabulary has \(vocabSize) tokens but the dataset uses \(self.vocabSize)")
        }
    }
}

extension Dataset {
    /// What a model keeps about the vocabulary it was trained on: size and role ranges.
    public func tokenizerJSON() -> JSON {
        .object([
            ("vocab_size", .int(vocabSize)),
            ("roles", .array(vocabulary.roles.map { .object([("name", .string($0.name)), ("first", .int($0.first)), ("count", .int($0.count))]) })),
        ])
    }

    /// Where fact f's head word (its subject) and relation word stand in a prompt: the first span
    /// equal to the head's tokens, and every relation-word position after it; nil if the head is not there.
    public func factPositions(in prompt: [Int32], fact f: Int) -> (subject: Range<Int>, relations: [Int])? {
        guard f >= 0, f < numFacts else { return nil }
        let head = headTokens(ofFact: f)
        guard !head.isEmpty, prompt.count >= head.count,
              let b = (0...(prompt.count - head.count)).first(where: { Array(prompt[$0..<($0 + head.count)]) == head }) else { return nil }
        let rel = relations[Int(fact(f).relation)].token
        return (b..<(b + head.count), prompt.indices.filter { $0 >= b + head.count && prompt[$0] == rel })
    }
}
