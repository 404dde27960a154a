/// Imports a fine-tuning folder written by the official generator's create_finetuning_data.py
/// (finetuning_data/<group>_data.txt, ft_validations/<group>_sro.txt) as an EditSet on the dataset
/// imported from its parent folder, so the official edit sets run through our editors and metrics.
/// Official group names map to ours: same_edges_diff_rel → same_subject_other_rel, reg_data →
/// remaining (tests) / regularization (training), same_subject_second_rel → correlated_retention,
/// same_subject_second_rel_converted → correlated_dependent; the rest keep their names.
///
/// Import is strict, as for the dataset folder: the folder's own records of its training data
/// (metadata/<group>_relationship_graph_tokenized.txt, finetuning_data/<group>_sro.jsonl and
/// train/val/test.jsonl) must agree with the training files line by line, and the counts the
/// official generator fixes must hold (each edit repeated equally often, as many with_same_rel
/// test prompts as training ones, one same_edges_diff_rel prompt per other relationship of each
/// edited subject, no prompt twice in a test file).
extension EditSetBuilder {
    static let officialTestNames = [
        "edited": "edited", "with_same_value": "with_same_value", "with_same_rel": "with_same_rel",
        "same_edges_diff_rel": "same_subject_other_rel", "reg_data": "remaining",
        "same_subject_second_rel": "correlated_retention", "same_subject_second_rel_converted": "correlated_dependent",
    ]
    static let officialTrainingNames = [
        ("edited", "edited"), ("with_same_value", "with_same_value"), ("with_same_rel", "with_same_rel"), ("reg_data", "regularization"),
    ]
    static let litgptFiles = ["train.jsonl", "val.jsonl", "test.jsonl"]

    public static func importReference(_ dir: String, dataset ds: Dataset) throws(EngineError) -> EditSet {
        guard FileSystem.isDirectory(dir + "/ft_validations"), FileSystem.isDirectory(dir + "/finetuning_data") else {
            throw .io("import: \(dir) is not an official fine-tuning folder (it needs ft_validations/ and finetuning_data/)")
        }
        guard !ds.layout.hasCollisions else {
            throw .invalid("import: the dataset has token collisions; official fine-tuning folders give every token one role, so they cannot be read against it (build the edit set with bh_edit_set_build instead)")
        }
        let layout = ds.layout
        let dataDir = dir + "/finetuning_data", metaDir = dir + "/metadata"
        var set = EditSet(spec: EditSpec())
        set.fingerprint = ds.factView().fingerprint
        let relationByToken = Dictionary(uniqueKeysWithValues: ds.relations.enumerated().map { ($0.element.token, $0.offset) })

        // Every training file must be one we import: leaving one out would change the training data.
        let dataFiles = try FileSystem.listDirectory(dataDir)
        for name in dataFiles where name.hasSuffix("_data.txt") {
            let group = String(name.dropLast("_data.txt".count))
            guard officialTrainingNames.contains(where: { $0.0 == group }) else {
                throw .format("import: \(dataDir)/\(name): training group '\(group)' is not supported (it would be left out of the training data)")
            }
        }
        for name in dataFiles where name.hasSuffix(".jsonl") && !litgptFiles.contains(name) {
            guard name.hasSuffix("_sro.jsonl"), dataFiles.contains(String(name.dropLast("_sro.jsonl".count)) + "_data.txt") else {
                throw .format("import: \(dataDir)/\(name) has no training file (<group>_data.txt) beside it")
            }
        }

        // Training sentences, one per line, by group; each line also in the group's tokenized
        // graph and LitGPT file.
        var litgptLines: [Substring] = []
        var trainingLines: [String: Int] = [:]
        var editedTraining: [(line: Int, fact: Int, object: Int32)] = []
        for (file, group) in officialTrainingNames {
            let path = "\(dataDir)/\(file)_data.txt"
            guard FileSystem.exists(path) else { continue }
            let graphPath = "\(metaDir)/\(file)_relationship_graph_tokenized.txt", jsonlPath = "\(dataDir)/\(file)_sro.jsonl"
            let lines = try Self.lines(path), graph = try Self.lines(graphPath), jsonl = try Self.lines(jsonlPath)
            for (other, n) in [(graphPath, graph.count), (jsonlPath, jsonl.count)] where n != lines.count {
                throw .format("import: \(other) has \(n) lines, but \(path) has \(lines.count) (one per training sentence)")
            }
            for (i, line) in lines.enumerated() {
                let what = "\(path) line \(i + 1)"
                var tokens: [Int32] = []
                try OfficialText.tokenize(Array(line.utf8), layout: layout, into: &tokens, what: what)
                for t in tokens where Int(t) >= ds.vocabSize {
                    throw .format("import: \(what): token \(t) is outside the dataset's vocabulary; is this folder inside the dataset's folder?")
                }
                let n = tokens.count
                guard n >= 4, tokens[n - 1] == Vocabulary.eos, tokens[n - 2] == Vocabulary.dot,
                      case let (subject, s, r)? = promptParts(tokens[..<(n - 3)], layout: layout, relations: relationByToken) else {
                    throw .format("import: \(what): expected ' SS <subject> W0 W1 RR <relation> W2 OO <object>.<|endoftext|>'")
                }
                let object = tokens[n - 3]
                let record = subject.map { fourDigits(Int($0)) }.joined(separator: ",") + "\t" + fourDigits(Int(ds.relations[r].token))
                    + "\t" + fourDigits(Int(object)) + "\t"
                guard graph[i] == record else { throw .format("import: \(what) does not match \(graphPath) line \(i + 1)") }
                guard let json = try? JSON.parse(String(jsonl[i]), what: jsonlPath), json["input"] == .string(""),
                      case let .string(instruction)? = json["instruction"], case let .string(output)? = json["output"],
                      instruction + output + ".<|endoftext|>" == line else {
                    throw .format("import: \(what) does not match \(jsonlPath) line \(i + 1)")
                }
                if file == "edited" { editedTraining.append((i + 1, r < ds.numBaseRelations ? ds.factIndex(subject: s, relation: r) : -1, object)) }
                set.tokens += tokens
                set.offsets.append(Int64(set.tokens.count))
                set.sequenceGroup.append(group)
            }
            litgptLines += jsonl
            trainingLines[file] = lines.count
        }
        guard !set.sequenceGroup.isEmpty else { throw .format("import: \(dir)/finetuning_data has no *_data.txt training files") }
        // train/val/test.jsonl: the lines of every <group>_sro.jsonl (concatenated in glob order).
        litgptLines.sort()
        for name in litgptFiles {
            let path = "\(dataDir)/\(name)"
            let lines = try Self.lines(path)
            guard lines.count == litgptLines.count else {
                throw .format("import: \(path) has \(lines.count) lines, expected \(litgptLines.count) (the lines of every <group>_sro.jsonl)")
            }
            guard lines.sorted() == litgptLines else { throw .format("import: \(path) does not hold the lines of the <group>_sro.jsonl files") }
        }

        // Test groups: prompt<TAB>target; the fact is the prompt's (subject, relation).
        for file in try FileSystem.listDirectory(dir + "/ft_validations") where file.hasSuffix("_sro.txt") {
            let official = String(file.dropLast("_sro.txt".count))
            let name = officialTestNames[official] ?? official
            let path = "\(dir)/ft_validations/\(file)"
            var prompts: [Int32] = [], offsets: [Int64] = [0], targets: [Int32] = [], facts: [Int32] = [], rels: [Int32] = []
            var lineOf: [Substring: Int] = [:]
            for (i, line) in try Self.lines(path).enumerated() {
                let lineNo = i + 1
                // The official groups are sets of distinct facts (the nested ones may repeat one).
                if officialTestNames[official] != nil, let first = lineOf.updateValue(lineNo, forKey: line) {
                    throw .format("import: \(path) line \(lineNo) duplicates line \(first)")
                }
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw .format("import: \(path) line \(lineNo): expected 'prompt<TAB>target'") }
                var p: [Int32] = [], t: [Int32] = []
                try OfficialText.tokenize(Array(parts[0].utf8), layout: layout, into: &p, what: "\(path) line \(lineNo)")
                var tb = Array(parts[1].utf8)
                if tb.first != 32 { tb.insert(32, at: 0) }
                try OfficialText.tokenize(tb, layout: layout, into: &t, what: "\(path) line \(lineNo) target")
                guard t.count == 1, case let (_, s, r)? = promptParts(p[...], layout: layout, relations: relationByToken) else {
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
        try checkOfficialCounts(set, dir: dir, ds: ds, trainingLines: trainingLines, editedTraining: editedTraining)
        set.spec.kind = set.edits.count == 1 ? .single : .diverse
        set.spec.count = max(1, set.edits.count)
        set.spec.relation = set.edits.first?.relation ?? 0
        set.spec.repeats = set.sequenceGroup.filter { $0 == "edited" }.count / max(1, set.edits.count)
        set.source = dir
        return set
    }

    /// The counts create_finetuning_data.py fixes for a remapping of base facts (behemoth-method.md
    /// §3.2): every edit trained num_repeats_per_override times; with_same_rel tested on as many
    /// held-out prompts as it trains on; each edited subject's other relationships tested once;
    /// one correlated prompt of each kind per edit.
    static func checkOfficialCounts(_ set: EditSet, dir: String, ds: Dataset, trainingLines: [String: Int],
                                    editedTraining: [(line: Int, fact: Int, object: Int32)]) throws(EngineError) {
        let tests = dir + "/ft_validations/", training = dir + "/finetuning_data/"
        let hasEditedTraining = trainingLines["edited"] != nil
        guard let edited = set.group("edited") else {
            if hasEditedTraining { throw .format("import: \(tests)edited_sro.txt is missing, but \(training)edited_data.txt trains edits") }
            return
        }
        guard hasEditedTraining else { throw .format("import: \(training)edited_data.txt is missing, but \(tests)edited_sro.txt tests edits") }
        guard edited.facts.allSatisfy({ $0 >= 0 }) else { return }  // nested remaps: no fixed counts
        let n = set.edits.count
        // Each edit trained equally often, and nothing else in edited_data.txt.
        var newObject: [Int: Int32] = [:], repeats: [Int: Int] = [:]
        for i in 0..<edited.count { newObject[Int(edited.facts[i])] = edited.targets[i] }
        for e in editedTraining {
            guard newObject[e.fact] == e.object else {
                throw .format("import: \(training)edited_data.txt line \(e.line) is not one of the edits in \(tests)edited_sro.txt")
            }
            repeats[e.fact, default: 0] += 1
        }
        let R = ds.numBaseRelations
        func name(_ f: Int) -> String { "subject \(f / R), relationship \(f % R)" }
        let first = Int(edited.facts[0])
        for f in edited.facts.map({ Int($0) }) where repeats[f, default: 0] != repeats[first, default: 0] {
            throw .format("import: \(training)edited_data.txt has \(repeats[f, default: 0]) lines for \(name(f)) but \(repeats[first, default: 0]) for \(name(first)) (every edit is repeated num_repeats_per_override times)")
        }
        for f in edited.facts.map({ Int($0) }) where repeats[f, default: 0] == 0 {
            throw .format("import: \(training)edited_data.txt does not train the edit of \(name(f))")
        }
        // Test groups whose size the training data or the edits fix.
        var want: [(String, Int, String)] = [("same_subject_other_rel", n * (R - 1), "the edited subjects' other relationships"),
                                               ("correlated_retention", n, "one per edit"), ("correlated_dependent", n, "one per edit")]
        if let trained = trainingLines["with_same_rel"] { want.append(("with_same_rel", trained, "as many as \(training)with_same_rel_data.txt trains on")) }
        let officialName = Dictionary(uniqueKeysWithValues: officialTestNames.map { ($0.value, $0.key) })
        for (group, count, why) in want {
            guard let g = set.group(group), g.count != count else { continue }
            throw .format("import: \(tests)\(officialName[group] ?? group)_sro.txt has \(g.count) lines, expected \(count) (\(why))")
        }
    }

    /// (subject tokens, subject ordinal, relation index) of a prompt " SS <subject> W0 W1 RR <relation> W2 OO".
    static func promptParts(_ p: ArraySlice<Int32>, layout: VocabularyLayout, relations: [Int32: Int]) -> ([Int32], Int, Int)? {
        guard p.count >= 4, p.first == Vocabulary.ss, p.last == Vocabulary.oo,
              let w0 = p.firstIndex(of: layout.w(0)), let rr = p.firstIndex(of: Vocabulary.rr), rr + 1 < p.endIndex else { return nil }
        let subject = Array(p[(p.startIndex + 1)..<w0])
        guard let s = layout.subjectOrdinal(subject), let r = relations[p[rr + 1]] else { return nil }
        return (subject, s, r)
    }

    /// The lines of a file the official generator wrote (a final newline ends the last line; an
    /// empty line is damage).
    static func lines(_ path: String) throws(EngineError) -> [Substring] {
        guard FileSystem.exists(path) else { throw .format("import: \(path) is missing (the official generator writes it)") }
        var lines = try FileSystem.readText(path).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        if let i = lines.firstIndex(where: \.isEmpty) { throw .format("import: \(path) line \(i + 1) is empty") }
        return lines
    }
}
