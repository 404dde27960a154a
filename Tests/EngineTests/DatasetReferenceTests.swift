import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatasetReferenceTests {
    static func read(_ path: String) throws -> String { try FileSystem.readText(path) }

    @Test(arguments: DataTest.fixtures)
    func importReproducesTheOfficialFilesExactly(fixture: String) throws {
        let dir = DataTest.fixture(fixture)
        let ds = try Dataset.importReference(dir)
        #expect(ds.origin == "imported")
        let R = ds.numBaseRelations, edges = ds.numSubjects * R

        // Fact table = relationship_graph.txt, line by line.
        let lines = try Self.read(dir + "/metadata/relationship_graph.txt").split(separator: "\n")
        #expect(lines.count == edges)
        for line in lines {
            let p = line.split(separator: " ").map(String.init)
            let e = Int(p[0])! * R + Int(p[1])!
            let f = ds.fact(e)
            #expect(Int(f.head) == Int(p[0])! && Int(f.relation) == Int(p[1])! && Int(f.tail) == Int(p[2])!)
            #expect(f.alt == (p[3] == "None" ? -1 : Int32(p[3])!))
            if p[4] != "None" { #expect(ds.fact(edges + e).tail == Int32(p[4])!) }
        }

        // Vocabulary roles = remappings_map.json; vocab size = tokenizer.json.
        let remap = try JSON.parse(try Self.read(dir + "/metadata/remappings_map.json"), what: "remap")
        func ids(_ key: String) -> [Int] {
            guard case let .array(items)? = remap[key] else { return [] }
            return items.flatMap { item -> [Int] in
                guard case let .array(xs) = item else { return [] }
                return xs.map { if case let .number(d) = $0 { return Int(d) }; return -1 }
            }
        }
        func roleIds(_ names: [String]) -> Set<Int> { Set(names.flatMap { ds.vocabulary.role(named: $0)?.range ?? 0..<0 }) }
        let subjectRoles = ds.layout.subjectWidth == 1 ? ["subject"] : ["subject_first", "subject_second"]
        #expect(Set(ids("subjects")) == roleIds(subjectRoles))
        #expect(ids("relationships") == Array(ds.vocabulary.role(named: "relation")!.range))
        #expect(ids("objects") == Array(roleIds((0..<R).map { "object/r\($0)" })).sorted())
        if ds.numNestedObjects > 0 {
            #expect(ids("subject_nested_relationships") == Array(ds.vocabulary.role(named: "subject_nested_relation")!.range))
            #expect(ids("object_nested_relationships") == Array(ds.vocabulary.role(named: "object_nested_relation")!.range))
            #expect(ids("object_nested_objects") == Array(roleIds((0..<R).map { "nested_object/r\($0)" })).sorted())
        }
        let tok = try JSON.parse(try Self.read(dir + "/metadata/tokenizer.json"), what: "tok")
        guard case let .object(vocab)? = tok["model"]?["vocab"] else { Issue.record("no vocab"); return }
        #expect(vocab.count == ds.vocabSize)
        for (s, v) in vocab { if case let .number(d) = v { #expect(ds.vocabulary.tokenString(Int(d)) == s) } }

        // Sentences = data/full_text_*.txt.
        #expect(try ds.decode(ds.tokens) == (try Self.read(dir + "/data/full_text_0.txt")))
        try DataTest.expectSentencesDecodeToFacts(ds)

        // Validation prompts = validations/*.txt, line by line.
        let files = try FileSystem.listDirectory(dir + "/validations")
        #expect(Set(files.map { String($0.dropLast(4)) }) == Set(ds.evalGroups.map(\.name)))
        for g in ds.evalGroups {
            let raw = try Self.read(dir + "/validations/\(g.name).txt").split(separator: "\n").map(String.init)
            #expect(raw.count == g.count)
            for i in 0..<min(raw.count, g.count) {
                #expect(try ds.decode(g.prompt(i)) + "\t" + ds.decode([g.targets[i]]) == raw[i])
            }
            #expect((0..<g.count).allSatisfy { g.targets[$0] == ds.tailToken(ofFact: Int(g.facts[$0])) })
        }
    }

    @Test func importedFixtureKnowsItsSpec() throws {
        let ds = try Dataset.importReference(DataTest.fixture("correlated-s60-r3-o8-c1"))
        #expect(ds.spec.correlatedPair && ds.spec.correlationStrength == 1.0 && ds.spec.repeats == 2 && ds.spec.subjects == 60)
        // c = 1: the pair is equal by ordinal for every subject.
        #expect((0..<60).allSatisfy { ds.fact($0 * 3).tail == ds.fact($0 * 3 + 1).tail })
        let nested = try Dataset.importReference(DataTest.fixture("nested-s40-r2-o8-k4"))
        #expect(nested.evalGroups.map(\.name) == ["subject_object_sro", "subject_nested_object_sro", "object_nested_object_sro"])
        #expect(nested.spec.numNestedObjects == 4)
        let inv = try Dataset.importReference(DataTest.fixture("inverted-s50-r3-o10-i03"))
        #expect(inv.evalGroups.map(\.name) == ["sro", "rso"] && inv.spec.inversionFrac == 0.3)
    }

    @Test(arguments: DataTest.fixtures)
    func exportOfAnImportedFolderGivesTheSameFiles(fixture: String) throws {
        let dir = DataTest.fixture(fixture)
        let ds = try Dataset.importReference(dir)
        let out = DataTest.tempDir("export")
        defer { DataTest.removeTree(out) }
        try ds.exportReference(out)
        var files = ["metadata/tokenizer.json", "metadata/tokenizer_config.json", "metadata/remappings_map.json",
                     "metadata/other_special_tokens.json", "metadata/metadata.json", "metadata/relationship_graph.txt",
                     "metadata/relationship_graph_tokenized.txt", "data/full_text_0.txt"]
        files += try FileSystem.listDirectory(dir + "/validations").map { "validations/" + $0 }
        for f in files {
            let a = try Self.read(dir + "/" + f), b = try Self.read(out + "/" + f)
            #expect(a == b, "\(fixture)/\(f) differs (\(a.utf8.count) vs \(b.utf8.count) bytes)")
        }
        // args.json: the same values, plus our seed and preset.
        let a = try JSON.parse(try Self.read(dir + "/metadata/args.json"), what: "a")
        let b = try JSON.parse(try Self.read(out + "/metadata/args.json"), what: "b")
        if case let .object(fields) = a {
            for (k, v) in fields where k != "output_dir" { #expect(b[k] == v, "args.json \(k)") }
        }
        DataTest.expectIdentical(ds, try Dataset.importReference(out))
    }

    static let roundTripSpecs = [
        #"{"preset": "tiny", "repeats": 2, "seed": 1}"#,
        #"{"preset": "tiny", "inversion_frac": 0.3, "minority_position_entity_frac": 0.2, "repeats": 3, "seed": 2}"#,
        #"{"preset": "tiny", "phrase_creator": "nonsense", "inversion_frac": 0.5, "seed": 3}"#,
        #"{"preset": "tiny", "num_nested_objects": 4, "obj_nested_obj_edges_upweight": 2, "shuffle": false, "seed": 4}"#,
        #"{"preset": "tiny", "questions_frac": 0.5, "seed": 5}"#,
        #"{"subjects": 2000, "relationships": 2, "objects": 6, "correlated_pair": true, "correlation_strength": 0.5, "seed": 6}"#,
    ]

    @Test(arguments: roundTripSpecs)
    func exportThenImportGivesAnIdenticalDataset(spec: String) throws {
        let ds = try DataTest.generate(spec)
        let out = DataTest.tempDir("roundtrip")
        defer { DataTest.removeTree(out) }
        try ds.exportReference(out)
        let back = try Dataset.importReference(out)
        DataTest.expectIdentical(ds, back)
    }

    @Test func exportingAgainIntoTheSameFolderReplacesTheOldFiles() throws {
        let out = DataTest.tempDir("reexport")
        defer { DataTest.removeTree(out) }
        try DataTest.generate(#"{"preset": "tiny", "inversion_frac": 0.5, "questions_frac": 0.5}"#).exportReference(out)
        let plain = try DataTest.generate(#"{"preset": "tiny", "seed": 9}"#)
        try plain.exportReference(out)
        DataTest.expectIdentical(plain, try Dataset.importReference(out))
    }

    @Test(arguments: roundTripSpecs)
    func huggingFaceTokenizersEncodeOurTextToOurIds(spec: String) throws {
        guard DataTest.hasPythonTokenizers else {
            print("skipped: python3 with the `tokenizers` package is not available")
            return
        }
        let ds = try DataTest.generate(spec)
        let out = DataTest.tempDir("hf")
        defer { DataTest.removeTree(out) }
        try ds.exportReference(out)
        let script = DataTest.script("hf_encode.py")
        #expect(DataTest.python("'\(script)' '\(out)' '\(out)/hf.json'") == 0)
        let hf = try JSON.parse(try FileSystem.readText(out + "/hf.json"), what: "hf")
        #expect(hf["vocab_size"] == .int(ds.vocabSize))
        // Training text: one shard here, so its ids are all our tokens.
        #expect(hf["data"]?["data/full_text_0.txt"] == .ints(ds.tokens.map { Int($0) }))
        for g in ds.evalGroups {
            let question = g.name.hasPrefix("qa")
            let file = question ? "questions/\(g.name == "qa" ? "default" : "default_new").txt" : "validations/\(g.name).txt"
            guard case let .array(pairs)? = hf["validations"]?[file] else { Issue.record("no \(file)"); continue }
            #expect(pairs.count == g.count)
            for i in 0..<min(pairs.count, g.count) {
                var prompt = g.prompt(i).map { Int($0) }
                var target = [Int(g.targets[i])]
                if question { prompt.removeLast(); target.insert(Int(Vocabulary.oo), at: 0) }
                #expect(pairs[i] == .array([.ints(prompt), .ints(target)]), "\(file) line \(i)")
            }
        }
    }

    @Test func huggingFaceAgreesOnTheOfficialFixturesToo() throws {
        guard DataTest.hasPythonTokenizers else { return }
        let dir = DataTest.fixture("twotoken-s2000-r2-o10")
        let ds = try Dataset.importReference(dir)
        let out = DataTest.tempDir("hf-fixture")
        defer { DataTest.removeTree(out) }
        let script = DataTest.script("hf_encode.py")
        #expect(DataTest.python("'\(script)' '\(dir)' '\(out)/hf.json'") == 0)
        let hf = try JSON.parse(try FileSystem.readText(out + "/hf.json"), what: "hf")
        #expect(hf["data"]?["data/full_text_0.txt"] == .ints(ds.tokens.map { Int($0) }))
    }

    @Test func importRejectsBrokenFolders() throws {
        let missing = "/tmp/behemoth-no-such-folder-\(getpid())"
        do { _ = try Dataset.importReference(missing); Issue.record("expected an error") } catch {
            #expect(error.status == .io && error.message.contains("no such folder"))
        }
        let empty = DataTest.tempDir("empty")
        defer { DataTest.removeTree(empty) }
        do { _ = try Dataset.importReference(empty); Issue.record("expected an error") } catch {
            #expect(error.status == .format && error.message.contains("missing") && error.message.contains("args.json"))
        }
        // A copy of a fixture with one damaged file at a time.
        let src = DataTest.fixture("independent-s50-r3-o10")
        let damages: [(String, String, String)] = [
            ("metadata/relationship_graph.txt", "0 0 7 None None\n0 0 3 None None\n", "appears twice"),
            ("metadata/relationship_graph.txt", "0 0 77 None None\n", "object = 77 is not in 0..<10"),
            ("metadata/tokenizer.json", "{\"model\": {}}", "no model.vocab"),
            ("data/full_text_0.txt", " SS 0108 0169 0170 RR 0136 0171 OO 0155.<|endoftext|> hello", "unexpected text"),
            ("data/full_text_0.txt", " SS 0108 0169 0170 RR 0136 0171 OO 0140.<|endoftext|>", "the fact table says"),
            ("validations/sro.txt", " SS 0125 0169 0170 RR 0136 0171 OO\t 0154 0155", "must be one token"),
            ("metadata/args.json", try Self.read(src + "/metadata/args.json").replacingFirst("\"objects\": 10", with: "\"objects\": 11"), "args.json implies"),
        ]
        for (file, content, fragment) in damages {
            let dir = DataTest.tempDir("damaged")
            defer { DataTest.removeTree(dir) }
            try DataTest.copyTree(src, dir)
            try FileSystem.writeText(dir + "/" + file, content)
            do { _ = try Dataset.importReference(dir); Issue.record("expected an error for \(file)") } catch {
                #expect(error.status == .format, "\(file): \(error.message)")
                #expect(error.message.contains(fragment), "\(file): \(error.message)")
            }
        }
    }
}

