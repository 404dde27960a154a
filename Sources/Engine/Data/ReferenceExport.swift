#if canImport(Glibc)
import Glibc
#endif

/// Export to the official generator's folder layout, written as Python's json.dump writes it, so a
/// folder imported from the official generator exports back to the same bytes (args.json gains
/// our `seed` and `preset`).
extension Dataset {
    public func exportReference(_ dir: String) throws(EngineError) {
        // The official folder gives every token one role (remappings_map.json); its loader would
        // read a shared token as two different words.
        if layout.hasCollisions {
            throw .invalid("export: this dataset has token collisions (dataset spec collisions = \(spec.toJSON()["collisions"]?.serialized() ?? "[]")); the official folder format gives every token one role, so its loader would misread the shared tokens. Save it as a dataset file (HDF5), which records every token's roles, or export the same spec without collisions")
        }
        // The official loader reads one grammar from args.json; sentences in other templates would
        // be misread (or refused) by it, and held-out templates have no place in its folder.
        if spec.templatesPerRelation > 1 {
            throw .invalid("export: this dataset writes \(spec.templatesPerRelation) templates per relation (templates_per_relation), which the official generator's folder format cannot describe (its args.json names one grammar); export a dataset with templates_per_relation = 1, or save it as a .h5 dataset file")
        }
        if FileSystem.exists(dir) && !FileSystem.isDirectory(dir) { throw .io("export: \(dir) exists and is not a folder") }
        for sub in ["metadata", "data", "validations", "questions"] { try FileSystem.makeDirectories(dir + "/" + sub) }
        // A previous export's shards and prompt files would be read back as part of this one.
        for (sub, prefix) in [("data", "full_text_"), ("validations", ""), ("questions", "default"), ("metadata", "subjects_with_questions")] {
            for name in try FileSystem.listDirectory(dir + "/" + sub) where name.hasPrefix(prefix) && name.hasSuffix(".txt") {
                unlink(dir + "/" + sub + "/" + name)
            }
        }
        let meta = dir + "/metadata/"
        let L = layout
        let S = numSubjects, R = numBaseRelations, O = numObjects, K = numNestedObjects
        let edges = S * R

        try FileSystem.writeText(meta + "tokenizer.json", tokenizerJSON())
        try FileSystem.writeText(meta + "tokenizer_config.json", Dataset.tokenizerConfig)

        // remappings_map.json
        var rm = "{\"special_vocab\": {"
        for (i, s) in vocabulary.specialTokens.enumerated() {
            if i > 0 { rm += ", " }
            rm += JSON.pythonQuoted(s) + ": " + String(i)
        }
        rm += "}"
        func lists(_ key: String, _ items: [[Int32]]) {
            rm += ", " + JSON.pythonQuoted(key) + ": [" + items.map { "[" + $0.map { String($0) }.joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
        }
        lists("subjects", (0..<S).map { L.subjectTokens($0) })
        lists("relationships", (0..<R).map { [L.relationToken($0)] })
        lists("objects", (0..<(R * O)).map { [Int32(L.objectStart + $0)] })
        if K > 0 {
            lists("subject_nested_relationships", (0..<R).map { [L.subjectNestedRelationToken($0)] })
            lists("object_nested_relationships", (0..<R).map { [L.objectNestedRelationToken($0)] })
            lists("object_nested_objects", (0..<(R * K)).map { [Int32(L.nestedObjectStart + $0)] })
        }
        rm += "}"
        try FileSystem.writeText(meta + "remappings_map.json", rm)

        // other_special_tokens.json (indent 4)
        let ost = L.grammarTokenNames().map { "    \"\($0.0)\": \"\(fourDigits(Int($0.1)))\"" }.joined(separator: ",\n")
        try FileSystem.writeText(meta + "other_special_tokens.json", "{\n" + ost + "\n}")

        // Shards as the official generator counts them; the remainder goes to the last shard.
        let divisor = K > 0 ? 200_000 : 100_000
        let (prod, o1) = edges.multipliedReportingOverflow(by: spec.repeats)
        let shards = max(1, min(o1 ? Int.max : prod / divisor, max(1, numSequences)))

        // args.json (indent 4, the official key order, then seed and preset)
        func f(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e16 ? String(Int64(d)) + ".0" : "\(d)" }
        let args: [(String, String)] = [
            ("subjects", "\(S)"), ("relationships", "\(R)"), ("objects", "\(O)"), ("repeats", "\(spec.repeats)"),
            ("shards", "\(shards)"), ("shuffle", spec.shuffle ? "true" : "false"), ("output_dir", JSON.pythonQuoted(dir)),
            ("graph_path", "null"), ("validation_data_only", "false"), ("write_graph_only", "false"),
            ("inversion_frac", f(spec.inversionFrac)), ("minority_position_entity_frac", f(spec.minorityPositionEntityFrac)),
            ("minority_position_frac", f(spec.minorityPositionFrac)), ("phrase_creator", JSON.pythonQuoted(spec.phraseCreator.rawValue)),
            ("questions_entity_frac", f(spec.questionsEntityFrac)), ("questions_frac", f(spec.questionsFrac)),
            ("correlated_pair", spec.correlatedPair ? "true" : "false"), ("correlation_strength", f(spec.correlationStrength)),
            ("binarize_first_correlated", spec.binarizeFirstCorrelated ? "true" : "false"),
            ("num_nested_objects", "\(K)"), ("obj_nested_obj_edges_upweight", "\(spec.objNestedObjEdgesUpweight)"),
            ("seed", "\(spec.seed)"), ("preset", JSON.pythonQuoted(spec.preset.rawValue)),
        ]
        try FileSystem.writeText(meta + "args.json", "{\n" + args.map { "    \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}")

        // metadata.json, with the official token count.
        let total = OfficialText.totalNumTokens(sentences: numSequences, shards: shards, words: OfficialText.words(tokens))
        try FileSystem.writeText(meta + "metadata.json", "{\"graph_size\": \(edges), \"vocab_size\": \(L.unusedStart + 1), \"total_num_tokens\": \(total)}")

        // relationship_graph.txt and relationship_graph_tokenized.txt
        var g = ""
        g.reserveCapacity(edges * 16)
        for e in 0..<edges {
            let a = facts[4 * e + 3]
            g += "\(e / R) \(e % R) \(facts[4 * e + 2]) \(a >= 0 ? String(a) : "None") \(K > 0 ? String(facts[4 * (edges + e) + 2]) : "None")\n"
        }
        try FileSystem.writeText(meta + "relationship_graph.txt", g)
        try FileSystem.writeText(meta + "relationship_graph_tokenized.txt",
                                 Dataset.tokenizedGraphText(layout: L, facts: facts, edges: edges, nestedMap: nestedMap))
        if !questionSubjects.isEmpty {
            try FileSystem.writeText(meta + "subjects_with_questions.txt", questionSubjects.map { "\($0)\n" }.joined())
            try FileSystem.writeText(meta + "subjects_with_questions_tokenized.txt",
                                     questionSubjects.map { "[" + L.subjectTokens(Int($0)).map { String($0) }.joined(separator: ", ") + "]\n" }.joined())
        }

        // data/full_text_k.txt
        let per = numSequences / shards
        for k in 0..<shards {
            let a = k * per, b = k == shards - 1 ? numSequences : (k + 1) * per
            let text = try decode(tokens[Int(offsets[a])..<Int(offsets[b])])
            try FileSystem.writeText("\(dir)/data/full_text_\(k).txt", text)
        }

        // validations/*.txt and questions/default*.txt
        for grp in evalGroups {
            var lines: [String] = []
            lines.reserveCapacity(grp.count)
            let question = grp.name == "qa" || grp.name == "qa_new"
            for i in 0..<grp.count {
                var p = grp.prompt(i)
                var target = try decode([grp.targets[i]])
                if question && p.last == Vocabulary.oo {
                    p = p.dropLast()
                    target = " OO" + target
                }
                lines.append(try decode(p) + "\t" + target)
            }
            let path = question ? "\(dir)/questions/\(grp.name == "qa" ? "default" : "default_new").txt" : "\(dir)/validations/\(grp.name).txt"
            try FileSystem.writeText(path, lines.joined(separator: "\n"))
        }
    }

    /// tokenizer.json: Pythia's boilerplate, the vocabulary in the official key order (specials,
    /// prefix tokens, words) and the merges that build every word.
    public func tokenizerJSON() -> String {
        let L = layout
        var s = "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": ["
        var added: [String] = []
        for (id, content) in [(0, "<|endoftext|>"), (1, "<|padding|>")] {
            added.append("{\"id\": \(id), \"content\": \(JSON.pythonQuoted(content)), \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}")
        }
        for id in 8...30 {
            added.append("{\"id\": \(id), \"content\": \(JSON.pythonQuoted(vocabulary.specialTokens[id])), \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": false}")
        }
        s += added.joined(separator: ", ") + "], "
        let byteLevel = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}"
        s += "\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": \(byteLevel), \"post_processor\": \(byteLevel), \"decoder\": \(byteLevel), "
        s += "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"vocab\": {"
        var entries: [String] = []
        entries.reserveCapacity(L.size)
        for (i, t) in vocabulary.specialTokens.enumerated() { entries.append(JSON.pythonQuoted(t) + ": " + String(i)) }
        for (k, p) in L.prefixStrings().enumerated() { entries.append(JSON.pythonQuoted(p) + ": " + String(L.wordsEnd + k)) }
        for id in VocabularyLayout.firstMeaningful..<L.wordsEnd { entries.append("\"\\u0120" + fourDigits(id) + "\": " + String(id)) }
        s += entries.joined(separator: ", ") + "}, \"merges\": ["
        var merges: [String] = []
        for special in ["<|endoftext|>", "<|padding|>", "ĠSS", "ĠRR", "ĠOO", "ĠQQ", "ĠAA"] {
            let c = Array(special)
            for i in 1..<c.count { merges.append(String(c[0..<i]) + " " + String(c[i])) }
        }
        var seen = Set<String>()
        for id in VocabularyLayout.firstMeaningful..<L.wordsEnd {
            let d = Array(fourDigits(id))
            for len in 1...4 {
                let p = "Ġ" + String(d[0..<len])
                if len < 4 && !seen.insert(p).inserted { continue }
                merges.append("Ġ" + String(d[0..<(len - 1)]) + " " + String(d[len - 1]))
            }
        }
        s += merges.map { JSON.pythonQuoted($0) }.joined(separator: ", ") + "]}}"
        return s
    }

    static let tokenizerConfig = """
    {
      "add_prefix_space": false,
      "bos_token": "<|endoftext|>",
      "clean_up_tokenization_spaces": true,
      "eos_token": "<|endoftext|>",
      "model_max_length": 1000000000000000019884624838656,
      "tokenizer_class": "GPTNeoXTokenizer",
      "unk_token": "<|endoftext|>"
    }

    """
}

