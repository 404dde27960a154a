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
/// prompt to its fact.
extension Dataset {
    // MARK: import

    public static func importReference(_ dir: String) throws(EngineError) -> Dataset {
        guard FileSystem.isDirectory(dir) else { throw .io("import: no such folder \(dir)") }
        let meta = dir + "/metadata/"
        func need(_ p: String) throws(EngineError) -> String {
            guard FileSystem.exists(p) else { throw .format("import: \(dir) is not an official Behemoth folder: missing \(p)") }
            return try FileSystem.readText(p)
        }
        func jsonFile(_ p: String) throws(EngineError) -> JSON {
            let text = try need(p)
            do { return try JSON.parse(text, what: p) } catch { throw .format(error.message) }
        }

        // Spec from args.json.
        let spec = try specFromArgs(jsonFile(meta + "args.json"), path: meta + "args.json")
        let layout: VocabularyLayout
        do {
            layout = try VocabularyLayout(subjects: spec.subjects, relationships: spec.relationships, objects: spec.objects, nested: spec.numNestedObjects)
        } catch { throw .format("import: \(meta)args.json: \(error.message)") }

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
        if case let .number(vs)? = try jsonFile(meta + "metadata.json")["vocab_size"], Int(vs) != layout.unusedStart + 1 {
            throw .format("import: \(meta)metadata.json: vocab_size = \(Int(vs)), expected \(layout.unusedStart + 1) for this layout")
        }

        // Facts from relationship_graph.txt.
        let S = layout.subjects, R = layout.relationships, O = layout.objects, K = layout.nested
        let edges = S * R
        var obj = [Int32](repeating: -1, count: edges), alt = [Int32](repeating: -1, count: edges)
        var nestedOf = [Int32](repeating: -1, count: edges)
        let graphPath = meta + "relationship_graph.txt"
        var lineNo = 0
        for line in try need(graphPath).split(separator: "\n", omittingEmptySubsequences: true) {
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
        let relations = Dataset.makeRelations(layout, roles: vocab.roles)
        let resolver = FactResolver(layout: layout, vocab: vocab, relations: relations, facts: facts, onoIndex: onoIndex)

        // The tokenized graph, if present, must say the same.
        let tgPath = meta + "relationship_graph_tokenized.txt"
        if FileSystem.exists(tgPath) {
            let want = tokenizedGraphText(layout: layout, facts: facts, edges: edges, nestedMap: nestedMap)
            guard try FileSystem.readText(tgPath) == want else { throw .format("import: \(tgPath) does not match relationship_graph.txt") }
        }

        // Training sentences.
        var shards: [(Int, String)] = []
        let dataDir = dir + "/data"
        if FileSystem.isDirectory(dataDir) {
            for name in try FileSystem.listDirectory(dataDir) where name.hasPrefix("full_text_") && name.hasSuffix(".txt") {
                guard let k = Int(name.dropFirst(10).dropLast(4)) else { continue }
                shards.append((k, name))
            }
        }
        guard !shards.isEmpty else { throw .format("import: \(dir) has no data/full_text_0.txt") }
        shards.sort { $0.0 < $1.0 }
        var tokens: [Int32] = [], offsets: [Int64] = [0], sequenceFacts: [Int32] = []
        for (_, name) in shards {
            let path = "\(dataDir)/\(name)"
            let start = tokens.count
            try OfficialText.tokenize(Array(try FileSystem.readText(path).utf8), layout: layout, into: &tokens, what: path)
            var i = start
            while i < tokens.count {
                var j = i
                while j < tokens.count && tokens[j] != Vocabulary.eos { j += 1 }
                guard j < tokens.count else { throw .format("import: \(path) ends with a sentence without <|endoftext|>") }
                let f = try resolver.resolve(tokens[i...j], statement: true, what: "\(path), sentence \(offsets.count)")
                sequenceFacts.append(Int32(f))
                offsets.append(Int64(j + 1))
                i = j + 1
            }
        }

        // Evaluation groups.
        var groups: [EvalGroup] = []
        let valDir = dir + "/validations"
        guard FileSystem.isDirectory(valDir) else { throw .format("import: \(dir) has no validations folder") }
        for name in try FileSystem.listDirectory(valDir) where name.hasSuffix(".txt") {
            groups.append(try readGroup(path: "\(valDir)/\(name)", name: String(name.dropLast(4)), layout: layout, resolver: resolver, question: false))
        }
        let qDir = dir + "/questions"
        for (file, group) in [("default.txt", "qa"), ("default_new.txt", "qa_new")] where FileSystem.exists("\(qDir)/\(file)") {
            let g = try readGroup(path: "\(qDir)/\(file)", name: group, layout: layout, resolver: resolver, question: true)
            if g.count > 0 { groups.append(g) }
        }
        groups = sortedGroups(groups)

        var questionSubjects: [Int32] = []
        let qsPath = meta + "subjects_with_questions.txt"
        if FileSystem.exists(qsPath) {
            for line in try FileSystem.readText(qsPath).split(separator: "\n") {
                guard let s = Int(line.trimmingSpacesSub), s >= 0, s < S else { throw .format("import: \(qsPath): bad subject \(line)") }
                questionSubjects.append(Int32(s))
            }
            questionSubjects.sort()
        }

        do {
            return try Dataset(spec: spec, origin: "imported", vocabulary: vocab, relations: relations, facts: facts, tokens: tokens,
                               offsets: offsets, sequenceFacts: sequenceFacts, evalGroups: groups,
                               questionSubjects: questionSubjects, nestedMap: nestedMap)
        } catch { throw .format("import: \(dir): \(error.message)") }
    }

    /// Groups in a fixed order: the official template groups first, then questions, then the rest by name.
    static func sortedGroups(_ g: [EvalGroup]) -> [EvalGroup] {
        var known: [String] = []
        for p in ["", "subject_object_", "subject_nested_object_", "object_nested_object_"] { for t in ["sro", "rso"] { known.append(p + t) } }
        known += ["qa", "qa_new"]
        return g.sorted { a, b in
            let ia = known.firstIndex(of: a.name) ?? known.count, ib = known.firstIndex(of: b.name) ?? known.count
            return ia != ib ? ia < ib : a.name < b.name
        }
    }

    static func readGroup(path: String, name: String, layout: VocabularyLayout, resolver: FactResolver, question: Bool) throws(EngineError) -> EvalGroup {
        var prompts: [Int32] = [], po: [Int64] = [0], targets: [Int32] = [], gf: [Int32] = []
        var lineNo = 0
        var target: [Int32] = []
        for line in try FileSystem.readText(path).split(separator: "\n", omittingEmptySubsequences: true) {
            lineNo += 1
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
            po.append(Int64(prompts.count))
            targets.append(target[0])
            gf.append(Int32(f))
        }
        return EvalGroup(name: name, prompts: prompts, promptOffsets: po, targets: targets, facts: gf)
    }

    /// A DatasetSpec from an official args.json (keys we do not use, such as output_dir, are ignored).
    static func specFromArgs(_ args: JSON, path: String) throws(EngineError) -> DatasetSpec {
        guard case let .object(fields) = args else { throw .format("import: \(path) is not a JSON object") }
        let keys = ["subjects", "relationships", "objects", "repeats", "shuffle", "inversion_frac", "minority_position_entity_frac",
                    "minority_position_frac", "phrase_creator", "questions_entity_frac", "questions_frac", "correlated_pair",
                    "correlation_strength", "binarize_first_correlated", "num_nested_objects", "obj_nested_obj_edges_upweight",
                    "seed", "preset"]
        var kept: [(String, JSON)] = fields.filter { keys.contains($0.0) }
        // The official generator ignores binarize_first_correlated without correlated_pair.
        if args["correlated_pair"] != .bool(true) { kept.removeAll { $0.0 == "binarize_first_correlated" } }
        do { return try DatasetSpec.parse(.object(kept)) } catch { throw .format("import: \(path): \(error.message)") }
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
