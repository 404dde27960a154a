/// Import and export of the official Behemoth generator's output folder (behemoth-method.md §1.4):
///
///   metadata/  tokenizer.json, tokenizer_config.json, args.json, metadata.json,
///              other_special_tokens.json, remappings_map.json, relationship_graph.txt,
///              relationship_graph_tokenized.txt (and subjects_with_questions*.txt with questions)
///   data/      full_text_{k}.txt: the training sentences, concatenated
///   validations/{group}.txt: "prompt<TAB>target" per line
///   questions/ default.txt, default_new.txt (question prompts, ending at AA; target " OO o")
///
/// Pickle files are never read. Import checks that the folder's vocabulary is the layout its
/// args.json implies, reads the fact table from relationship_graph.txt, tokenizes the text shards
/// and the validation files with the closed grammar of the format, and ties every sentence and
/// prompt to its fact. Import is strict: every count the folder states (args.json, metadata.json)
/// must agree with what is read, counted as the official create_data.py counts (OfficialCounts), so a
/// truncated, duplicated or mixed-up folder is refused, naming the file and the mismatch.
extension Dataset {
    // MARK: import

    public static func importReference(_ dir: String) throws(EngineError) -> Dataset {
        guard FileSystem.isDirectory(dir) else { throw .io("import: no such folder \(dir)") }
        let meta = dir + "/metadata/"
        func need(_ p: String, maxBytes: Int = OfficialText.maxMetadataBytes) throws(EngineError) -> String {
            guard FileSystem.exists(p) else { throw .format("import: \(dir) is not an official Behemoth folder: missing \(p)") }
            return try OfficialText.read(p, maxBytes: maxBytes)
        }
        func jsonFile(_ p: String) throws(EngineError) -> JSON {
            let text = try need(p)
            do { return try JSON.parse(text, what: p) } catch { throw .format(error.message) }
        }

        // Spec from args.json. Its counts are validated (and bound every size below) before
        // anything is allocated.
        let (spec, shards) = try specFromArgs(jsonFile(meta + "args.json"), path: meta + "args.json")
        let layout: VocabularyLayout
        do {
            layout = try VocabularyLayout(subjects: spec.subjects, relationships: spec.relationships, objects: spec.objects, nested: spec.numNestedObjects)
        } catch { throw .format("import: \(meta)args.json: \(error.message)") }
        let S = layout.subjects, R = layout.relationships, O = layout.objects, K = layout.nested
        let edges = S * R

        // Vocabulary from tokenizer.json, checked against the layout.
        let tok = try jsonFile(meta + "tokenizer.json")
        guard case let .object(vocabFields)? = tok["model"]?["vocab"] else { throw .format("import: \(meta)tokenizer.json has no model.vocab") }
        guard vocabFields.count == layout.size else {
            throw .format("import: \(meta)tokenizer.json has \(vocabFields.count) tokens, but args.json implies \(layout.size)")
        }
        var strings = [String?](repeating: nil, count: layout.size)
        for (k, v) in vocabFields {
            guard case let .number(x) = v, x >= 0, x < Double(layout.size), x == x.rounded() else {
                throw .format("import: \(meta)tokenizer.json: token \(JSON.string(k).serialized()) has id \(v.serialized()) outside 0..<\(layout.size)")
            }
            guard strings[Int(x)] == nil else { throw .format("import: \(meta)tokenizer.json: id \(Int(x)) is used twice") }
            strings[Int(x)] = k
        }
        let special = strings[0..<VocabularyLayout.firstMeaningful].map { $0 ?? "" }
        let vocab: Vocabulary
        do { vocab = try Vocabulary(layout: layout, specialTokens: special) } catch { throw .format("import: \(meta)tokenizer.json: \(error.message)") }
        let prefixes = layout.prefixStrings()
        for id in VocabularyLayout.firstMeaningful..<layout.size {
            let want = id < layout.wordsEnd ? "Ġ" + fourDigits(id) : prefixes[id - layout.wordsEnd]
            guard strings[id] == want else {
                throw .format("import: \(meta)tokenizer.json: id \(id) is \(JSON.string(strings[id] ?? "").serialized()), expected \(JSON.string(want).serialized())")
            }
        }

        // remappings_map.json, other_special_tokens.json and metadata.json must agree with the layout.
        let remap = try jsonFile(meta + "remappings_map.json")
        func checkRemap(_ key: String, _ want: [[Int32]]) throws(EngineError) {
            guard let v = remap[key] else { throw .format("import: \(meta)remappings_map.json has no \(key)") }
            let wantJSON = JSON.array(want.map { JSON.ints($0.map { Int($0) }) })
            guard v == wantJSON else { throw .format("import: \(meta)remappings_map.json: \(key) does not match the official id layout for these counts") }
        }
        try checkRemap("subjects", (0..<layout.subjects).map { layout.subjectTokens($0) })
        try checkRemap("relationships", (0..<layout.relationships).map { [layout.relationToken($0)] })
        try checkRemap("objects", (0..<(layout.relationships * layout.objects)).map { [Int32(layout.objectStart + $0)] })
        if layout.nested > 0 {
            try checkRemap("subject_nested_relationships", (0..<layout.relationships).map { [layout.subjectNestedRelationToken($0)] })
            try checkRemap("object_nested_relationships", (0..<layout.relationships).map { [layout.objectNestedRelationToken($0)] })
            try checkRemap("object_nested_objects", (0..<(layout.relationships * layout.nested)).map { [Int32(layout.nestedObjectStart + $0)] })
        }
        let ost = try jsonFile(meta + "other_special_tokens.json")
        guard ost == JSON.object(layout.grammarTokenNames().map { ($0.0, .string(fourDigits(Int($0.1)))) }) else {
            throw .format("import: \(meta)other_special_tokens.json does not match the official grammar ids for this layout")
        }

        // metadata.json: its counts must be those of args.json (total_num_tokens: below, with the text).
        let stated = try metadataCounts(jsonFile(meta + "metadata.json"), path: meta + "metadata.json")
        guard stated.graphSize == edges else {
            throw .format("import: \(meta)metadata.json: graph_size = \(stated.graphSize), but args.json has \(S) subjects × \(R) relationships = \(edges) facts")
        }
        guard stated.vocabSize == layout.unusedStart + 1 else {
            throw .format("import: \(meta)metadata.json: vocab_size = \(stated.vocabSize), expected \(layout.unusedStart + 1) for this layout")
        }

        // Facts from relationship_graph.txt: one line per fact.
        var obj = [Int32](repeating: -1, count: edges), alt = [Int32](repeating: -1, count: edges)
        var nestedOf = [Int32](repeating: -1, count: edges)
        let graphPath = meta + "relationship_graph.txt"
        var lineNo = 0
        for line in try need(graphPath, maxBytes: (edges + 1) * OfficialText.maxLineBytes).split(separator: "\n", omittingEmptySubsequences: true) {
            lineNo += 1
            let parts = line.split(separator: " ")
            func num(_ i: Int, _ n: Int, _ what: String) throws(EngineError) -> Int32? {
                guard i < parts.count else { throw .format("import: \(graphPath) line \(lineNo): missing \(what)") }
                if parts[i] == "None" { return nil }
                guard let v = Int(parts[i]), v >= 0, v < n else {
                    throw .format("import: \(graphPath) line \(lineNo): \(what) = \(parts[i]) is not in 0..<\(n)")
                }
                return Int32(v)
            }
            guard parts.count == 5 else { throw .format("import: \(graphPath) line \(lineNo): expected 5 fields, got \(parts.count)") }
            guard let s = try num(0, S, "subject"), let r = try num(1, R, "relationship"), let o = try num(2, O, "object") else {
                throw .format("import: \(graphPath) line \(lineNo): subject, relationship and object must be numbers")
            }
            let e = Int(s) * R + Int(r)
            guard obj[e] < 0 else { throw .format("import: \(graphPath) line \(lineNo): (\(s), \(r)) appears twice") }
            obj[e] = o
            if let a = try num(3, O, "alternative object") {
                guard a != o else { throw .format("import: \(graphPath) line \(lineNo): the alternative object equals the object") }
                alt[e] = a
            }
            let n = try num(4, max(K, 1), "nested object")
            if K > 0 {
                guard let n else { throw .format("import: \(graphPath) line \(lineNo): nested data needs a nested object") }
                nestedOf[e] = n
            } else if n != nil {
                throw .format("import: \(graphPath) line \(lineNo): a nested object, but num_nested_objects = 0")
            }
        }
        if let missing = obj.firstIndex(where: { $0 < 0 }) {
            throw .format("import: \(graphPath) has no edge for subject \(missing / R), relationship \(missing % R)")
        }
        var facts: [Int32] = []
        var nestedMap: [Int32] = []
        var onoIndex: [Int: Int] = [:]
        facts.reserveCapacity(4 * edges * (K > 0 ? 2 : 1))
        for e in 0..<edges { facts += [Int32(e / R), Int32(e % R), obj[e], alt[e]] }
        if K > 0 {
            nestedMap = [Int32](repeating: -1, count: R * O)
            for e in 0..<edges {
                let m = (e % R) * O + Int(obj[e])
                if nestedMap[m] >= 0 && nestedMap[m] != nestedOf[e] {
                    throw .format("import: \(graphPath): object \(obj[e]) of relationship \(e % R) has two nested objects (\(nestedMap[m]) and \(nestedOf[e]))")
                }
                nestedMap[m] = nestedOf[e]
            }
            for e in 0..<edges { facts += [Int32(e / R), Int32(R + e % R), nestedOf[e], -1] }
            for r in 0..<R { for o in 0..<O where nestedMap[r * O + o] >= 0 {
                onoIndex[r * O + o] = facts.count / 4
                facts += [Int32(o), Int32(2 * R + r), nestedMap[r * O + o], -1]
            } }
        }
        let numFacts = facts.count / 4
        let relations = Dataset.makeRelations(layout, roles: vocab.roles)
        let resolver = FactResolver(layout: layout, vocab: vocab, relations: relations, facts: facts, onoIndex: onoIndex)

        // The tokenized graph, if present, must say the same.
        let tgPath = meta + "relationship_graph_tokenized.txt"
        if FileSystem.exists(tgPath) {
            let want = tokenizedGraphText(layout: layout, facts: facts, edges: edges, nestedMap: nestedMap)
            guard try OfficialText.read(tgPath, maxBytes: (edges + 1) * OfficialText.maxLineBytes) == want else {
                throw .format("import: \(tgPath) does not match relationship_graph.txt")
            }
        }

        // Subjects with questions: int(questions_entity_frac × subjects) distinct subjects, one a line.
        var questionSubjects: [Int32] = []
        let qsPath = meta + "subjects_with_questions.txt"
        if spec.questionsFrac > 0 {
            var lineOf = [Int](repeating: 0, count: S)
            lineNo = 0
            for line in try need(qsPath, maxBytes: (S + 1) * 16).split(separator: "\n") {
                lineNo += 1
                guard let s = Int(line.trimmingSpacesSub), s >= 0, s < S else { throw .format("import: \(qsPath) line \(lineNo): bad subject \(line)") }
                guard lineOf[s] == 0 else { throw .format("import: \(qsPath) line \(lineNo) duplicates line \(lineOf[s]) (subject \(s))") }
                lineOf[s] = lineNo
                questionSubjects.append(Int32(s))
            }
            guard questionSubjects.count == spec.questionSubjectCount else {
                throw .format("import: \(qsPath) has \(questionSubjects.count) subjects, expected int(questions_entity_frac × subjects) = \(spec.questionSubjectCount)")
            }
            questionSubjects.sort()
        } else if FileSystem.exists(qsPath) {
            throw .format("import: \(qsPath) is present, but args.json has questions_frac = 0")
        }
        let expect = OfficialCounts(spec: spec, edges: edges, statementFacts: K > 0 ? 2 * edges : edges, numFacts: numFacts,
                                    questionSubjects: questionSubjects)

        // Training sentences: exactly the shards args.json names, each with its share of the sentences.
        let N = expect.sentences
        guard shards <= N else {
            throw .format("import: \(meta)args.json: shards = \(shards), more than the \(N) sentences (\(expect.breakdown)) to fill them")
        }
        let dataDir = dir + "/data"
        for name in try (FileSystem.isDirectory(dataDir) ? FileSystem.listDirectory(dataDir) : []) where name.hasPrefix("full_text_") {
            guard let k = Int(name.dropFirst(10).dropLast(4)), k >= 0, k < shards, name == "full_text_\(k).txt" else {
                let names = shards == 1 ? "full_text_0.txt only" : "full_text_0.txt to full_text_\(shards - 1).txt"
                throw .format("import: \(dataDir)/\(name) is not a shard of this folder: args.json has shards = \(shards) (\(names))")
            }
        }
        // The official generator writes ⌊N / shards⌋ sentences to every shard and drops the rest;
        // our export puts the rest in the last shard.
        let per = N / shards, rest = N % shards
        var tokens: [Int32] = [], offsets: [Int64] = [0], sequenceFacts: [Int32] = []
        var copies = [Int32](repeating: 0, count: 2 * numFacts)      // per fact: statements, questions
        var firstAt = [Int32](repeating: 0, count: 2 * numFacts)     // the first copy's index in sequenceFacts
        var perShard: [Int] = []
        func place(_ index: Int32) -> String {  // "sentence n of full_text_k.txt"
            var i = Int(index), k = 0
            while k < perShard.count && i >= perShard[k] { i -= perShard[k]; k += 1 }
            return "sentence \(i + 1) of full_text_\(k).txt"
        }
        for k in 0..<shards {
            let path = "\(dataDir)/full_text_\(k).txt"
            guard FileSystem.exists(path) else { throw .format("import: \(path) is missing: args.json has shards = \(shards)") }
            let most = k == shards - 1 ? per + rest : per
            let start = tokens.count
            try OfficialText.tokenize(Array(try OfficialText.read(path, maxBytes: (most + 1) * OfficialText.maxLineBytes).utf8),
                                      layout: layout, into: &tokens, what: path)
            var i = start, n = 0
            while i < tokens.count {
                var j = i
                while j < tokens.count && tokens[j] != Vocabulary.eos { j += 1 }
                guard j < tokens.count else { throw .format("import: \(path) ends with a sentence without <|endoftext|>") }
                n += 1
                let f = try resolver.resolve(tokens[i...j], statement: true, what: "\(path), sentence \(n)")
                let question = tokens[i...j].contains(Vocabulary.qq)
                let c = 2 * f + (question ? 1 : 0)
                copies[c] += 1
                if copies[c] == 1 { firstAt[c] = Int32(sequenceFacts.count) }
                guard copies[c] <= expect.copies(f, question: question) else {
                    let kind = question ? "question" : "sentence"
                    throw .format("import: \(path): sentence \(n) is copy \(copies[c]) of the \(kind) for \(resolver.describe(f)) (the first is \(place(firstAt[c]))), but the official generator writes \(expect.rule(f, question: question))")
                }
                sequenceFacts.append(Int32(f))
                offsets.append(Int64(j + 1))
                i = j + 1
            }
            perShard.append(n)
        }
        let sentences = offsets.count - 1
        for (k, n) in perShard.enumerated() where !(n == per || (k == shards - 1 && n == per + rest)) {
            var msg = "import: \(dataDir)/full_text_\(k).txt has \(n) sentences, expected \(per)"
            if k == shards - 1 && rest > 0 { msg += " or \(per + rest)" }
            msg += " (\(N) sentences = \(expect.breakdown), in \(shards) shard\(shards == 1 ? "" : "s"))"
            if let f = (0..<(2 * numFacts)).first(where: { copies[$0] < expect.copies($0 / 2, question: $0 % 2 == 1) }) {
                msg += "; e.g. \(resolver.describe(f / 2)) has \(copies[f]) of its \(expect.copies(f / 2, question: f % 2 == 1)) \(f % 2 == 1 ? "questions" : "sentences")"
            }
            throw .format(msg)
        }
        // total_num_tokens counts every sentence the generator made, including any it dropped at sharding.
        let counted = OfficialText.totalNumTokens(sentences: N, shards: shards, words: OfficialText.words(tokens))
        let dropped = N - sentences
        guard stated.totalTokens >= counted && stated.totalTokens <= counted + dropped * OfficialText.maxWordsPerSentence else {
            throw .format("import: \(meta)metadata.json: total_num_tokens = \(stated.totalTokens), but the sentences in data/ give \(counted)"
                          + (dropped > 0 ? " to \(counted + dropped * OfficialText.maxWordsPerSentence) (\(dropped) dropped at sharding)" : "")
                          + " (the official count: 2 × sentences − shards + 1 + their words + sentences)")
        }

        // Evaluation groups: exactly the validation files the official generator writes for these
        // args, each with one line per fact.
        var groups: [PromptSet] = []
        let valDir = dir + "/validations"
        guard FileSystem.isDirectory(valDir) else { throw .format("import: \(dir) has no validations folder") }
        let templates = Grammar(layout: layout, creator: spec.phraseCreator, inversionFrac: spec.inversionFrac).evalTemplates
        var wanted: [String: Range<Int>] = [:]
        for (prefix, range) in templateGroupFacts(nested: K > 0, edges: edges, numFacts: numFacts) {
            for t in templates { wanted[prefix + t] = range }
        }
        for name in try FileSystem.listDirectory(valDir) where name.hasSuffix(".txt") && wanted[String(name.dropLast(4))] == nil {
            throw .format("import: \(valDir)/\(name) is not a validation file the official generator writes for this args.json (it writes \(wanted.keys.sorted().map { $0 + ".txt" }.joined(separator: ", ")))")
        }
        for (name, range) in wanted.sorted(by: { $0.key < $1.key }) {
            let path = "\(valDir)/\(name).txt"
            guard FileSystem.exists(path) else { throw .format("import: \(path) is missing: the official generator writes it for this args.json") }
            groups.append(try readGroup(path: path, name: name, layout: layout, resolver: resolver, question: false, expected: range))
        }

        // Question prompts: every fact once, in default.txt (subjects with questions) or
        // default_new.txt (the official generator puts them all in default_new.txt).
        let qDir = dir + "/questions"
        let questionFiles = [("default.txt", "qa"), ("default_new.txt", "qa_new")]
        if spec.questionsFrac > 0 {
            var fileOf = [String?](repeating: nil, count: edges)
            var total = 0
            for (file, group) in questionFiles where FileSystem.exists("\(qDir)/\(file)") {
                let path = "\(qDir)/\(file)"
                let g = try readGroup(path: path, name: group, layout: layout, resolver: resolver, question: true, expected: 0..<edges, complete: false)
                for (i, f) in g.facts.map({ Int($0) }).enumerated() {
                    if let other = fileOf[f] { throw .format("import: \(path) line \(i + 1): \(resolver.describe(f)) is also in \(other)") }
                    fileOf[f] = file
                    if group == "qa" && !expect.hasQuestions[f / R] {
                        throw .format("import: \(path) line \(i + 1): subject \(f / R) is not in subjects_with_questions.txt")
                    }
                }
                total += g.count
                if g.count > 0 { groups.append(g) }
            }
            guard total == edges else {
                throw .format("import: \(qDir)/default.txt and default_new.txt have \(total) lines together, expected \(edges) (one per fact)")
            }
        } else if let present = questionFiles.first(where: { FileSystem.exists("\(qDir)/\($0.0)") }) {
            throw .format("import: \(qDir)/\(present.0) is present, but args.json has questions_frac = 0")
        }
        groups = sortedGroups(groups)

        do {
            return try Dataset(spec: spec, origin: "imported", vocabulary: vocab, relations: relations, facts: facts, tokens: tokens,
                               offsets: offsets, sequenceFacts: sequenceFacts, evalGroups: groups,
                               questionSubjects: questionSubjects, nestedMap: nestedMap)
        } catch { throw .format("import: \(dir): \(error.message)") }
    }

    /// Groups in a fixed order: the official template groups first, then questions, then the rest by name.
    static func sortedGroups(_ g: [PromptSet]) -> [PromptSet] {
        var known: [String] = []
        for p in ["", "subject_object_", "subject_nested_object_", "object_nested_object_"] { for t in ["sro", "rso"] { known.append(p + t) } }
        known += ["qa", "qa_new"]
        return g.sorted { a, b in
            let ia = known.firstIndex(of: a.name) ?? known.count, ib = known.firstIndex(of: b.name) ?? known.count
            return ia != ib ? ia < ib : a.name < b.name
        }
    }

    /// The template evaluation groups' name prefixes and their facts: every base fact, and with
    /// nested objects also every subject-nested and every object-nested fact.
    static func templateGroupFacts(nested: Bool, edges: Int, numFacts: Int) -> [(prefix: String, facts: Range<Int>)] {
        nested ? [("subject_object_", 0..<edges), ("subject_nested_object_", edges..<(2 * edges)), ("object_nested_object_", (2 * edges)..<numFacts)]
               : [("", 0..<edges)]
    }

    /// One prompt file: each line a prompt for a fact in `expected`, no fact twice, and (when
    /// `complete`) every fact of `expected` once, as the official generator writes them.
    static func readGroup(path: String, name: String, layout: VocabularyLayout, resolver: FactResolver, question: Bool,
                          expected: Range<Int>, complete: Bool = true) throws(EngineError) -> PromptSet {
        var prompts: [Int32] = [], po: [Int64] = [0], targets: [Int32] = [], gf: [Int32] = []
        var target: [Int32] = []
        let text = try OfficialText.read(path, maxBytes: (expected.count + 1) * OfficialText.maxLineBytes)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }  // a final newline
        var lineOf = [Int](repeating: 0, count: expected.count)  // the line that gave each fact
        for (k, line) in lines.enumerated() {
            let lineNo = k + 1
            guard !line.isEmpty else { throw .format("import: \(path) line \(lineNo) is empty") }
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw .format("import: \(path) line \(lineNo): expected 'prompt<TAB>target'") }
            let start = prompts.count
            try OfficialText.tokenize(Array(parts[0].utf8), layout: layout, into: &prompts, what: "\(path) line \(lineNo)")
            // Targets: " 0154" (or "0154" as the official nonsense grammar writes it); questions " OO 0154".
            var tb = Array(parts[1].utf8)
            if tb.first != 32 { tb.insert(32, at: 0) }
            target.removeAll(keepingCapacity: true)
            try OfficialText.tokenize(tb, layout: layout, into: &target, what: "\(path) line \(lineNo) target")
            if question {
                guard target.count == 2, target[0] == Vocabulary.oo, prompts.last == Vocabulary.aa else {
                    throw .format("import: \(path) line \(lineNo): a question prompt must end with AA and its target be ' OO <object>'")
                }
                prompts.append(Vocabulary.oo)
                target.removeFirst()
            }
            guard target.count == 1 else { throw .format("import: \(path) line \(lineNo): the target must be one token, got \(target.count)") }
            guard prompts.last == Vocabulary.oo, prompts.count > start else { throw .format("import: \(path) line \(lineNo): the prompt must end with OO") }
            let f = try resolver.resolve(prompts[start...] + [target[0]], statement: true, what: "\(path) line \(lineNo)", exact: true)
            guard expected.contains(f) else { throw .format("import: \(path) line \(lineNo): \(resolver.describe(f)) does not belong in this file") }
            guard lineOf[f - expected.lowerBound] == 0 else {
                throw .format("import: \(path) line \(lineNo) duplicates line \(lineOf[f - expected.lowerBound]) (\(resolver.describe(f)))")
            }
            lineOf[f - expected.lowerBound] = lineNo
            po.append(Int64(prompts.count))
            targets.append(target[0])
            gf.append(Int32(f))
        }
        if complete && lines.count != expected.count {
            throw .format("import: \(path) has \(lines.count) lines, expected \(expected.count) (one per fact)")
        }
        return PromptSet(name: name, prompts: prompts, offsets: po, targets: targets, facts: gf)
    }

    /// Every argument the official create_data.py writes to args.json (all of them, always).
    static let officialArgs = ["subjects", "relationships", "objects", "repeats", "shards", "shuffle", "output_dir", "graph_path",
                               "validation_data_only", "write_graph_only", "inversion_frac", "minority_position_entity_frac",
                               "minority_position_frac", "phrase_creator", "questions_entity_frac", "questions_frac", "correlated_pair",
                               "correlation_strength", "binarize_first_correlated", "num_nested_objects", "obj_nested_obj_edges_upweight"]

    /// A DatasetSpec and the shard count from an official args.json. Every official argument must
    /// be there; an unknown key is an error (what it would change is unknown), and so is an
    /// argument that changes the data in a way we do not implement.
    static func specFromArgs(_ args: JSON, path: String) throws(EngineError) -> (DatasetSpec, shards: Int) {
        guard case let .object(fields) = args else { throw .format("import: \(path) is not a JSON object") }
        let ours = ["seed", "preset"]
        for (k, _) in fields where !officialArgs.contains(k) && !ours.contains(k) {
            throw .format("import: \(path): unknown key \"\(k)\" (not an argument of the official generator)")
        }
        for k in officialArgs where k != "graph_path" && (args[k] ?? .null) == .null {
            throw .format("import: \(path) has no \(k) (the official generator writes all its arguments)")
        }
        // Arguments that only say how the folder was made. With validation_data_only the generator
        // writes no args.json, so one that says so belongs to another run.
        guard case .string = args["output_dir"] else { throw .format("import: \(path): output_dir must be a string") }
        switch args["graph_path"] { case nil, .null?, .string?: break; default: throw .format("import: \(path): graph_path must be a string or null") }
        guard case .bool = args["write_graph_only"] else { throw .format("import: \(path): write_graph_only must be true or false") }
        guard args["validation_data_only"] == .bool(false) else {
            throw .format("import: \(path): validation_data_only must be false (the official generator writes no args.json in that mode)")
        }
        let notSpec = ["shards", "output_dir", "graph_path", "validation_data_only", "write_graph_only"]
        var kept: [(String, JSON)] = fields.filter { !notSpec.contains($0.0) }
        // The official generator ignores binarize_first_correlated without correlated_pair.
        if args["correlated_pair"] != .bool(true) { kept.removeAll { $0.0 == "binarize_first_correlated" } }
        let spec: DatasetSpec
        do { spec = try DatasetSpec.parse(.object(kept)) } catch { throw .format("import: \(path): \(error.message)") }
        do {
            var r = try JSONReader(args, path: path)
            return (spec, try r.int("shards", default: 1, min: 1))
        } catch { throw .format("import: \(error.message)") }
    }

    /// metadata.json: exactly graph_size, vocab_size and total_num_tokens, whole numbers.
    static func metadataCounts(_ json: JSON, path: String) throws(EngineError) -> (graphSize: Int, vocabSize: Int, totalTokens: Int) {
        guard case let .object(fields) = json else { throw .format("import: \(path) is not a JSON object") }
        let keys = ["graph_size", "vocab_size", "total_num_tokens"]
        for (k, _) in fields where !keys.contains(k) { throw .format("import: \(path): unknown key \"\(k)\"") }
        for k in keys where (json[k] ?? .null) == .null { throw .format("import: \(path) has no \(k)") }
        do {
            var r = try JSONReader(json, path: path)
            return (try r.int(keys[0], default: 0, min: 0), try r.int(keys[1], default: 0, min: 0), try r.int(keys[2], default: 0, min: 0))
        } catch { throw .format("import: \(error.message)") }
    }

    static func tokenizedGraphText(layout: VocabularyLayout, facts: [Int32], edges: Int, nestedMap: [Int32]) -> String {
        var out = ""
        out.reserveCapacity(edges * 24)
        let R = layout.relationships
        for e in 0..<edges {
            let r = e % R
            out += layout.subjectTokens(e / R).map { fourDigits(Int($0)) }.joined(separator: ",")
            out += "\t" + fourDigits(Int(layout.relationToken(r)))
            out += "\t" + fourDigits(Int(layout.objectToken(relation: r, ordinal: Int(facts[4 * e + 2])))) + "\t"
            let a = facts[4 * e + 3]
            out += a >= 0 ? fourDigits(Int(layout.objectToken(relation: r, ordinal: Int(a)))) + "\t" : "\t"
            if layout.nested > 0 {
                let n = Int(facts[4 * (edges + e) + 2])
                out += fourDigits(Int(layout.subjectNestedRelationToken(r))) + "\t" + fourDigits(Int(layout.objectNestedRelationToken(r)))
                out += "\t" + fourDigits(Int(layout.nestedObjectToken(relation: r, ordinal: n))) + "\t"
            }
            out += "\n"
        }
        return out
    }
}

extension Substring {
    var trimmingSpacesSub: String { String(self).trimmingSpaces }
}

/// The official text format's closed grammar: " SS", " RR", " OO", " QQ", " AA", " dddd" (a word),
/// ".", "<|endoftext|>", "<|padding|>". Anything else is a format error.
enum OfficialText {
    static let eosBytes = Array("<|endoftext|>".utf8), padBytes = Array("<|padding|>".utf8)

    /// The longest line any official file has is well under this (a nonsense-grammar sentence with
    /// a two-token subject is 118 bytes), so a file's expected line count bounds its size.
    static let maxLineBytes = 256
    /// JSON metadata: tokenizer.json and remappings_map.json of the largest layout are a few MB.
    static let maxMetadataBytes = 1 << 26
    /// Words (space-separated pieces) in the longest official sentence: a nonsense sentence has at
    /// most 3 × 5 filler words plus SS, two subject words, RR, relation, OO, object = 22.
    static let maxWordsPerSentence = 32

    /// Reads a file of an official folder, refusing one larger than its counts allow before reading it.
    static func read(_ path: String, maxBytes: Int) throws(EngineError) -> String {
        guard let size = FileSystem.fileSize(path) else { throw .format("import: missing \(path)") }
        guard size <= maxBytes else { throw .format("import: \(path) is \(size) bytes, more than the \(maxBytes) its counts allow") }
        return try FileSystem.readText(path)
    }

    /// The words of official text: every token written after a space (role markers and words).
    static func words<C: Collection>(_ tokens: C) -> Int where C.Element == Int32 {
        var n = 0
        for t in tokens where (t >= Vocabulary.ss && t <= Vocabulary.aa) || Int(t) >= VocabularyLayout.firstMeaningful { n += 1 }
        return n
    }

    /// metadata.json's total_num_tokens as create_data.py computes it:
    /// 2 × sentences − shards + 1 + Σ len(sentence.split(" ")), and each sentence splits into its words + 1.
    static func totalNumTokens(sentences: Int, shards: Int, words: Int) -> Int {
        2 * sentences - shards + 1 + words + sentences
    }

    static func tokenize(_ b: [UInt8], layout: VocabularyLayout, into out: inout [Int32], what: String) throws(EngineError) {
        var i = 0
        let n = b.count
        func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        func matches(_ w: [UInt8], at i: Int) -> Bool {
            guard i + w.count <= n else { return false }
            for k in 0..<w.count where b[i + k] != w[k] { return false }
            return true
        }
        while i < n {
            let c = b[i]
            if c == 32 {
                if i + 4 < n, isDigit(b[i + 1]), isDigit(b[i + 2]), isDigit(b[i + 3]), isDigit(b[i + 4]), i + 5 == n || !isDigit(b[i + 5]) {
                    let id = Int(b[i + 1] - 48) * 1000 + Int(b[i + 2] - 48) * 100 + Int(b[i + 3] - 48) * 10 + Int(b[i + 4] - 48)
                    guard id >= VocabularyLayout.firstMeaningful, id < layout.wordsEnd else {
                        throw .format("import: \(what): word \(fourDigits(id)) at byte \(i) is not a word of this vocabulary")
                    }
                    out.append(Int32(id)); i += 5; continue
                }
                if i + 2 < n, i + 3 == n || !(b[i + 3] >= 65 && b[i + 3] <= 90) {
                    let pair = (b[i + 1], b[i + 2])
                    var id: Int32 = -1
                    switch pair {
                    case (83, 83): id = Vocabulary.ss  // SS
                    case (82, 82): id = Vocabulary.rr  // RR
                    case (79, 79): id = Vocabulary.oo  // OO
                    case (81, 81): id = Vocabulary.qq  // QQ
                    case (65, 65): id = Vocabulary.aa  // AA
                    default: break
                    }
                    if id >= 0 { out.append(id); i += 3; continue }
                }
            } else if c == 46 {
                out.append(Vocabulary.dot); i += 1; continue
            } else if matches(eosBytes, at: i) {
                out.append(Vocabulary.eos); i += eosBytes.count; continue
            } else if matches(padBytes, at: i) {
                out.append(Vocabulary.padding); i += padBytes.count; continue
            }
            let end = min(n, i + 20)
            throw .format("import: \(what): unexpected text at byte \(i): \(JSON.string(String(decoding: b[i..<end], as: UTF8.self)).serialized())")
        }
    }
}

/// How many sentences the official create_data.py writes for each fact (behemoth-method.md §1.1,
/// §1.3): every base and subject-nested fact `repeats` times, every object-nested fact
/// `repeats × obj_nested_obj_edges_upweight` times, and every fact of a subject with questions
/// another int(repeats / questions_entity_frac × questions_frac) times as a question. Its
/// validation files hold each fact once.
struct OfficialCounts {
    let spec: DatasetSpec
    let edges: Int           // subjects × relationships
    let statementFacts: Int  // base and subject-nested facts: the ones written `repeats` times
    let numFacts: Int
    let questionSubjects: [Int32]
    let hasQuestions: [Bool]  // per subject

    init(spec: DatasetSpec, edges: Int, statementFacts: Int, numFacts: Int, questionSubjects: [Int32]) {
        self.spec = spec; self.edges = edges; self.statementFacts = statementFacts; self.numFacts = numFacts
        self.questionSubjects = questionSubjects
        var has = [Bool](repeating: false, count: spec.subjects)
        for s in questionSubjects { has[Int(s)] = true }
        hasQuestions = has
    }

    var objectNestedCopies: Int { spec.repeats * spec.objNestedObjEdgesUpweight }

    func copies(_ f: Int, question: Bool) -> Int {
        if question { return f < edges && hasQuestions[f / spec.relationships] ? spec.questionRepeats : 0 }
        return f < statementFacts ? spec.repeats : objectNestedCopies
    }

    /// `copies` with its reason, for messages.
    func rule(_ f: Int, question: Bool) -> String {
        let n = copies(f, question: question)
        if question { return "\(n) (int(repeats / questions_entity_frac × questions_frac) for a subject with questions, else 0)" }
        return f < statementFacts ? "\(n) (repeats)" : "\(n) (repeats × obj_nested_obj_edges_upweight)"
    }

    /// All training sentences (N), the sum of `copies` over every fact.
    var sentences: Int {
        spec.repeats * statementFacts + objectNestedCopies * (numFacts - statementFacts)
            + spec.questionRepeats * questionSubjects.count * spec.relationships
    }

    /// How `sentences` is made up: "150 facts × 2 repeats + ...".
    var breakdown: String {
        var parts = ["\(statementFacts) facts × \(spec.repeats) repeats"]
        if numFacts > statementFacts { parts.append("\(numFacts - statementFacts) object-nested facts × \(objectNestedCopies)") }
        if !questionSubjects.isEmpty {
            parts.append("\(questionSubjects.count) question subjects × \(spec.relationships) relationships × \(spec.questionRepeats)")
        }
        return parts.joined(separator: " + ")
    }
}

/// Ties a sentence or prompt to its fact: the words after SS (head), RR (relation) and OO (object).
struct FactResolver {
    let layout: VocabularyLayout
    let vocab: Vocabulary
    let relations: [Relation]
    let facts: [Int32]
    let onoIndex: [Int: Int]
    let relationOfToken: [Int32: Int]
    let headRoleKind: [UInt8]   // per role: 1 subject part, 2 object, 3 nested object, 0 other

    init(layout: VocabularyLayout, vocab: Vocabulary, relations: [Relation], facts: [Int32], onoIndex: [Int: Int]) {
        self.layout = layout; self.vocab = vocab; self.relations = relations; self.facts = facts; self.onoIndex = onoIndex
        var m: [Int32: Int] = [:]
        for (i, r) in relations.enumerated() { m[r.token] = i }
        relationOfToken = m
        headRoleKind = vocab.roles.map { r in
            if r.name.hasPrefix("subject") && !r.name.hasSuffix("relation") { return 1 }
            if r.name.hasPrefix("object/") { return 2 }
            if r.name.hasPrefix("nested_object/") { return 3 }
            return 0
        }
    }

    /// A fact in words, for messages: "subject 5, relationship 2".
    func describe(_ f: Int) -> String {
        let head = facts[4 * f], relation = relations[Int(facts[4 * f + 1])]
        switch relation.kind {
        case .base: return "subject \(head), relationship \(relation.baseRelation)"
        case .subjectNested: return "subject \(head), nested relationship \(relation.baseRelation)"
        case .objectNested: return "object \(head) of relationship \(relation.baseRelation), nested"
        }
    }

    /// The fact index. With `statement`, the object must be the fact's object (or its alt, unless `exact`).
    func resolve<C: Collection>(_ t: C, statement: Bool, what: String, exact: Bool = false) throws(EngineError) -> Int where C.Element == Int32, C.Index == Int {
        var head: [Int32] = [], rel: Int32 = -1, object: Int32 = -1
        var i = t.startIndex
        func kind(_ x: Int32) -> UInt8 { vocab.roleIndex(of: Int(x)).map { headRoleKind[$0] } ?? 0 }
        while i < t.endIndex {
            let x = t[i]
            if x == Vocabulary.ss {
                var j = i + 1
                while j < t.endIndex, kind(t[j]) == 1 || kind(t[j]) == 2 { head.append(t[j]); j += 1 }
                i = j; continue
            } else if x == Vocabulary.rr, i + 1 < t.endIndex {
                rel = t[i + 1]; i += 2; continue
            } else if x == Vocabulary.oo, i + 1 < t.endIndex, kind(t[i + 1]) >= 2 {
                object = t[i + 1]; i += 2; continue
            }
            i += 1
        }
        guard let r = relationOfToken[rel] else { throw .format("import: \(what): no relation word after RR") }
        let relation = relations[r]
        let R = layout.relationships, S = layout.subjects
        let f: Int
        switch relation.kind {
        case .base, .subjectNested:
            guard let s = layout.subjectOrdinal(head) else { throw .format("import: \(what): no subject word after SS") }
            f = relation.kind == .base ? s * R + r : S * R + s * R + (r - R)
        case .objectNested:
            let role = vocab.roles[relation.headRole]
            guard head.count == 1, role.range.contains(Int(head[0])) else { throw .format("import: \(what): the word after SS is not an object of relation \(relation.baseRelation)") }
            guard let idx = onoIndex[relation.baseRelation * layout.objects + Int(head[0]) - role.first] else {
                throw .format("import: \(what): object \(head[0]) has no nested object in relationship_graph.txt")
            }
            f = idx
        }
        if statement {
            let tail = Int32(vocab.roles[relation.tailRole].first) + facts[4 * f + 2]
            let a = facts[4 * f + 3]
            let altTok = a >= 0 ? Int32(vocab.roles[relation.tailRole].first) + a : -1
            guard object == tail || (!exact && object == altTok) else {
                throw .format("import: \(what): the object is \(object), but the fact table says \(tail)")
            }
        }
        return f
    }
}
