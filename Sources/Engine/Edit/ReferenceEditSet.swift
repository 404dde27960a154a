/// Imports a fine-tuning folder written by the official generator's create_finetuning_data.py
/// (finetuning_data/<group>_data.txt, ft_validations/<group>_sro.txt) as an EditSet on the dataset
/// imported from its parent folder, so the official edit sets run through our editors and metrics.
/// Official group names map to ours: same_edges_diff_rel → same_subject_other_rel, reg_data →
/// remaining (tests) / regularization (training), same_subject_second_rel → correlated_retention,
/// same_subject_second_rel_converted → correlated_dependent; the rest keep their names.
extension EditSetBuilder {
    static let officialTestNames = [
        "edited": "edited", "with_same_value": "with_same_value", "with_same_rel": "with_same_rel",
        "same_edges_diff_rel": "same_subject_other_rel", "reg_data": "remaining",
        "same_subject_second_rel": "correlated_retention", "same_subject_second_rel_converted": "correlated_dependent",
    ]
    static let officialTrainingNames = [
        ("edited", "edited"), ("with_same_value", "with_same_value"), ("with_same_rel", "with_same_rel"), ("reg_data", "regularization"),
    ]

    public static func importReference(_ dir: String, dataset ds: Dataset) throws(EngineError) -> EditSet {
        guard FileSystem.isDirectory(dir + "/ft_validations"), FileSystem.isDirectory(dir + "/finetuning_data") else {
            throw .io("import: \(dir) is not an official fine-tuning folder (it needs ft_validations/ and finetuning_data/)")
        }
        let layout = ds.layout
        var set = EditSet(spec: EditSpec())
        set.fingerprint = ds.factView().fingerprint

        // Training sentences, one per line, by group.
        for (file, group) in officialTrainingNames {
            let path = "\(dir)/finetuning_data/\(file)_data.txt"
            guard FileSystem.exists(path) else { continue }
            var lineNo = 0
            for line in try FileSystem.readText(path).split(separator: "\n", omittingEmptySubsequences: true) {
                lineNo += 1
                var tokens: [Int32] = []
                try OfficialText.tokenize(Array(line.utf8), layout: layout, into: &tokens, what: "\(path) line \(lineNo)")
                guard tokens.count >= 2, tokens.last == Vocabulary.eos else {
                    throw .format("import: \(path) line \(lineNo): a training sentence must end with <|endoftext|>")
                }
                for t in tokens where Int(t) >= ds.vocabSize {
                    throw .format("import: \(path) line \(lineNo): token \(t) is outside the dataset's vocabulary; is this folder inside the dataset's folder?")
                }
                set.tokens += tokens
                set.offsets.append(Int64(set.tokens.count))
                set.sequenceGroup.append(group)
            }
        }
        guard !set.sequenceGroup.isEmpty else { throw .format("import: \(dir)/finetuning_data has no *_data.txt training files") }

        // Test groups: prompt<TAB>target; the fact is the prompt's (subject, relation).
        let relationByToken = Dictionary(uniqueKeysWithValues: ds.relations.enumerated().map { ($0.element.token, $0.offset) })
        for file in try FileSystem.listDirectory(dir + "/ft_validations") where file.hasSuffix("_sro.txt") {
            let official = String(file.dropLast("_sro.txt".count))
            let name = officialTestNames[official] ?? official
            let path = "\(dir)/ft_validations/\(file)"
            var prompts: [Int32] = [], offsets: [Int64] = [0], targets: [Int32] = [], facts: [Int32] = [], rels: [Int32] = []
            var lineNo = 0
            for line in try FileSystem.readText(path).split(separator: "\n", omittingEmptySubsequences: true) {
                lineNo += 1
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw .format("import: \(path) line \(lineNo): expected 'prompt<TAB>target'") }
                var p: [Int32] = [], t: [Int32] = []
                try OfficialText.tokenize(Array(parts[0].utf8), layout: layout, into: &p, what: "\(path) line \(lineNo)")
                var tb = Array(parts[1].utf8)
                if tb.first != 32 { tb.insert(32, at: 0) }
                try OfficialText.tokenize(tb, layout: layout, into: &t, what: "\(path) line \(lineNo) target")
                guard t.count == 1, p.count >= 4, p.first == Vocabulary.ss, p.last == Vocabulary.oo,
                      let w0 = p.firstIndex(of: layout.w(0)), let rr = p.firstIndex(of: Vocabulary.rr), rr + 1 < p.count,
                      let s = layout.subjectOrdinal(Array(p[1..<w0])), let r = relationByToken[p[rr + 1]] else {
                    throw .format("import: \(path) line \(lineNo): expected ' SS <subject> W0 W1 RR <relation> W2 OO' and one target token")
                }
                let f = r < ds.numBaseRelations ? ds.factIndex(subject: s, relation: r) : -1
                prompts += p
                offsets.append(Int64(prompts.count))
                targets.append(t[0])
                facts.append(Int32(f))
                rels.append(Int32(r))
            }
            set.groups.append(PromptSet(name: name, prompts: prompts, offsets: offsets, targets: targets, facts: facts, relations: rels))
        }

        // The edits: the edited prompts' facts, old object from the dataset, new from the target.
        if let edited = set.group("edited") {
            var seen = Set<Int32>()
            for i in 0..<edited.count where edited.facts[i] >= 0 && seen.insert(edited.facts[i]).inserted {
                let fact = ds.fact(Int(edited.facts[i]))
                let r = Int(fact.relation)
                let newObject = Int(edited.targets[i]) - Int(ds.objectToken(relation: r, ordinal: 0))
                set.edits.append(Edit(subject: Int(fact.head), relation: r, oldObject: Int(fact.tail), newObject: newObject))
            }
        }
        set.spec.kind = set.edits.count == 1 ? .single : .diverse
        set.spec.count = max(1, set.edits.count)
        set.spec.relation = set.edits.first?.relation ?? 0
        set.spec.repeats = set.sequenceGroup.filter { $0 == "edited" }.count / max(1, set.edits.count)
        set.source = dir
        return set
    }
}
