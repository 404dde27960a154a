import CHDF5

/// The dataset HDF5 file (format = "behemoth.dataset", format_version 1). docs/formats.md has the
/// layout; h5py and h5dump read it without our code.
extension Dataset {
    public static let fileFormat = "behemoth.dataset"
    public static let fileFormatVersion: Int64 = 2  // 2: checksummed layout (v110, Fletcher-32, fixed-length strings)

    /// Writes the dataset through a temporary file renamed into place.
    public func save(_ path: String) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in try writeContents(f) }
    }

    /// Writes everything into an open file; `except` leaves out the named datasets (tests use it to
    /// make damaged files).
    func writeContents(_ f: H5File, except: Set<String> = []) throws(EngineError) {
        func w32(_ name: String, _ a: [Int32], shape: [Int]? = nil) throws(EngineError) { if !except.contains(name) { try f.write(name, a, shape: shape) } }
        func w64(_ name: String, _ a: [Int64]) throws(EngineError) { if !except.contains(name) { try f.write(name, a) } }
        try f.stampFormat(Dataset.fileFormat, version: Dataset.fileFormatVersion, spec: spec.toJSON().serialized())
        try f.setAttribute("origin", string: origin)
        try w32("facts", facts, shape: [numFacts, 4])
        try w32("tokens", tokens)
        try w64("offsets", offsets)
        try w32("sequence_facts", sequenceFacts)
        try w32("vocab/role_first", vocabulary.roles.map { Int32($0.first) })
        try w32("vocab/role_count", vocabulary.roles.map { Int32($0.count) })
        try w32("vocab/subject_tokens", int32Array("vocab/subject_tokens")!, shape: [numSubjects, layout.subjectColumns])
        if !layout.tokenMap.isEmpty { try w32("vocab/token_map", layout.tokenMap) }
        if layout.hasCollisions { try f.setAttribute("token_roles", string: tokenRolesJSON().serialized(), at: "/vocab") }
        try f.setAttribute("role_names", string: JSON.strings(vocabulary.roles.map(\.name)).serialized(), at: "/vocab")
        try f.setAttribute("special_tokens", string: JSON.strings(vocabulary.specialTokens).serialized(), at: "/vocab")
        try f.setAttribute("vocab_size", int: Int64(vocabSize), at: "/vocab")
        try f.setAttribute("grammar_tokens", string: JSON.object(layout.grammarTokenNames().map { ($0.0, .int(Int($0.1))) }).serialized(), at: "/vocab")
        try w32("relations", relationTable(), shape: [relations.count, 5])
        if !except.contains("relations") {
            try f.setAttribute("columns", string: #"["kind","token","base_relation","head_role","tail_role"]"#, at: "/relations")
            try f.setAttribute("kinds", string: #"{"0":"base","1":"subject_nested","2":"object_nested"}"#, at: "/relations")
            try f.setAttribute("names", string: JSON.strings(relations.map(\.name)).serialized(), at: "/relations")
            // Several templates per relation: each relation's training and held-out ones, as text.
            if let templatePlan { try f.setAttribute("templates", string: templatePlan.infoJSON(relations).serialized(), at: "/relations") }
        }
        if !nestedMap.isEmpty { try w32("nested_map", nestedMap, shape: [numBaseRelations, numObjects]) }
        if !questionSubjects.isEmpty { try w32("question_subjects", questionSubjects) }
        try f.createGroup("eval")
        try f.setAttribute("groups", string: JSON.strings(evalGroups.map(\.name)).serialized(), at: "/eval")
        for g in evalGroups {
            try w32("eval/\(g.name)/prompts", g.prompts)
            try w64("eval/\(g.name)/prompt_offsets", g.offsets)
            try w32("eval/\(g.name)/targets", g.targets)
            try w32("eval/\(g.name)/facts", g.facts)
        }
    }

    /// The content digest (ContentDigest) of the spec and every array, as the file's `digest` holds it.
    public func contentDigest() -> String {
        var d = ContentDigest(format: Dataset.fileFormat, spec: spec.toJSON().serialized())
        for a in arrayList().sorted(by: { $0.name < $1.name }) {
            if a.dtype == "int64" { d.addArray(a.name, dtype: a.dtype, shape: a.shape, int64Array(a.name)!) }
            else { d.addArray(a.name, dtype: a.dtype, shape: a.shape, int32Array(a.name)!) }
        }
        return d.finish()
    }

    /// Reads and checks a dataset file. A missing file is BH_ERR_IO; a foreign, damaged or
    /// inconsistent one BH_ERR_FORMAT with a message naming the problem.
    public static func load(_ path: String) throws(EngineError) -> Dataset {
        let f = try H5File.open(path)
        defer { f.close() }
        _ = try f.checkFormat(fileFormat, maxVersion: fileFormatVersion)
        try BehemothFile.checkRootAttributes(f, format: fileFormat)
        func bad(_ m: String) -> EngineError { .format("\(path): \(m)") }
        let spec: DatasetSpec
        do { spec = try DatasetSpec.parse(try f.stringAttribute("spec")) } catch {
            throw bad("the 'spec' attribute is not a valid dataset spec: \(error.message)")
        }
        let origin = f.hasAttribute("origin") ? try f.stringAttribute("origin") : "generated"
        let layout: VocabularyLayout
        do {
            layout = try VocabularyLayout.of(spec)
        } catch { throw bad(error.message) }

        func jsonStrings(_ name: String, at obj: String) throws(EngineError) -> [String] {
            let text = try f.stringAttribute(name, at: obj)
            guard let v = try? JSON.parse(text, what: name), case let .array(items) = v else { throw bad("attribute \(name) on \(obj) is not a JSON array") }
            var out: [String] = []
            for i in items { guard case let .string(s) = i else { throw bad("attribute \(name) on \(obj) holds a non-string") }; out.append(s) }
            return out
        }
        func i32(_ name: String, shape: [Int]? = nil) throws(EngineError) -> [Int32] {
            let (d, s) = try f.read(name, as: Int32.self)
            if let shape, s != shape { throw bad("\(name) has shape \(s), expected \(shape)") }
            if shape == nil, s.count != 1 { throw bad("\(name) has shape \(s), expected one dimension") }
            return d
        }
        func i64(_ name: String) throws(EngineError) -> [Int64] {
            let (d, s) = try f.read(name, as: Int64.self)
            if s.count != 1 { throw bad("\(name) has shape \(s), expected one dimension") }
            return d
        }

        let special = try jsonStrings("special_tokens", at: "/vocab")
        let vocab: Vocabulary
        do { vocab = try Vocabulary(layout: layout, specialTokens: special) } catch { throw bad(error.message) }
        let names = try jsonStrings("role_names", at: "/vocab")
        let firsts = try i32("vocab/role_first"), counts = try i32("vocab/role_count")
        guard names == vocab.roles.map(\.name), firsts == vocab.roles.map({ Int32($0.first) }), counts == vocab.roles.map({ Int32($0.count) }) else {
            throw bad("the vocabulary roles stored in /vocab do not match the layout the spec gives")
        }
        let relations = Dataset.makeRelations(layout, roles: vocab.roles)
        let relTable = try i32("relations", shape: [relations.count, 5])
        let relNames = try jsonStrings("names", at: "/relations")
        guard relNames == relations.map(\.name),
              relTable == relations.flatMap({ [$0.kind.rawValue, $0.token, Int32($0.baseRelation), Int32($0.headRole), Int32($0.tailRole)] }) else {
            throw bad("the relation table does not match the layout the spec gives")
        }
        let factShape = try f.shape("facts")
        guard factShape.count == 2, factShape[1] == 4 else { throw bad("facts has shape \(factShape), expected (n, 4)") }
        let facts = try i32("facts", shape: factShape)
        let tokens = try i32("tokens")
        let offsets = try i64("offsets")
        let sequenceFacts = try i32("sequence_facts")
        let columns = layout.subjectColumns
        let subjectTokens = try i32("vocab/subject_tokens", shape: [spec.subjects, columns])
        for s in 0..<spec.subjects {
            let t = layout.subjectTokens(s)
            if Array(subjectTokens[(columns * s)..<(columns * s + t.count)]) != t || subjectTokens[(columns * s + t.count)..<(columns * (s + 1))].contains(where: { $0 != -1 }) {
                throw bad("vocab/subject_tokens row \(s) does not match the layout")
            }
        }
        // Collisions are recomputed from the spec; the stored map must agree.
        if f.exists("vocab/token_map") || !layout.tokenMap.isEmpty {
            guard f.exists("vocab/token_map"), try i32("vocab/token_map", shape: [layout.size]) == layout.tokenMap else {
                throw bad("vocab/token_map does not match the collisions the spec gives")
            }
        }
        let nestedMap = spec.numNestedObjects > 0 ? try i32("nested_map", shape: [spec.relationships, spec.objects]) : []
        let questionSubjects = f.exists("question_subjects") ? try i32("question_subjects") : []
        var groups: [PromptSet] = []
        for name in try jsonStrings("groups", at: "/eval") {
            let p = "eval/\(name)/"
            groups.append(PromptSet(name: name, prompts: try i32(p + "prompts"), offsets: try i64(p + "prompt_offsets"),
                                    targets: try i32(p + "targets"), facts: try i32(p + "facts")))
        }
        if offsets.isEmpty { throw bad("offsets is empty (it needs n+1 entries)") }
        for g in groups where g.offsets.isEmpty { throw bad("eval/\(g.name)/prompt_offsets is empty") }
        let ds: Dataset
        do {
            ds = try Dataset(spec: spec, origin: origin, vocabulary: vocab, relations: relations, facts: facts, tokens: tokens,
                             offsets: offsets, sequenceFacts: sequenceFacts, evalGroups: groups,
                             questionSubjects: questionSubjects, nestedMap: nestedMap)
        } catch {
            throw bad(error.message)
        }
        let storedTemplates = f.hasAttribute("templates", at: "/relations") ? try f.stringAttribute("templates", at: "/relations") : nil
        guard storedTemplates == ds.templatePlan?.infoJSON(ds.relations).serialized() else {
            throw bad("the templates listed on /relations do not match the ones its spec draws")
        }
        try f.checkDigest(ds.contentDigest())
        try f.checkFileDigest()  // the attributes beyond the spec, too
        return ds
    }
}
