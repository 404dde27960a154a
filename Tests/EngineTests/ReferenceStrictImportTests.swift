import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Strict import of official folders: a copy of a fixture with one damage must be refused with a
/// format error naming the file and the mismatch (issue 7).
@Suite struct ReferenceStrictImportTests {
    /// Text helpers for damaging a copy.
    static func sentences(_ text: String) -> [String] {
        text.split(separator: "<|endoftext|>").map { $0 + "<|endoftext|>" }
    }
    /// The lines of a text (a final newline ends the last line).
    static func lines(_ text: String) -> [String] {
        var l = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if l.last == "" { l.removeLast() }
        return l
    }

    /// A damage: a name for messages, the fixture, what to do to the copy, and the fragments the
    /// error message must contain.
    struct Damage: Sendable, CustomTestStringConvertible {
        let name: String
        var fixture = "independent-s50-r3-o10"
        let apply: @Sendable (String) throws -> Void
        let fragments: [String]
        var testDescription: String { name }
    }

    static func edit(_ dir: String, _ file: String, _ change: (String) -> String) throws {
        let path = dir + "/" + file
        try FileSystem.writeText(path, change(try FileSystem.readText(path)))
    }
    static func editSentences(_ dir: String, _ change: @escaping ([String]) -> [String]) throws {
        try edit(dir, "data/full_text_0.txt") { change(sentences($0)).joined() }
    }
    static func editLines(_ dir: String, _ file: String, _ change: @escaping ([String]) -> [String]) throws {
        try edit(dir, file) { text in change(lines(text)).joined(separator: "\n") + (text.hasSuffix("\n") ? "\n" : "") }
    }
    /// Replaces `"key": old` by `"key": new` in a JSON file written by Python (args.json, metadata.json).
    static func setKey(_ dir: String, _ file: String, _ key: String, _ value: String) throws {
        try edit(dir, file) { text in
            var out: [String] = []
            var done = false
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                if !done, let r = part.firstRange(of: "\"\(key)\": ") {
                    let tail = part[r.upperBound...]
                    let end = tail.firstIndex(where: { $0 == "}" || $0 == "\n" }) ?? tail.endIndex
                    out.append(String(part[..<r.upperBound]) + value + String(tail[end...]))
                    done = true
                } else {
                    out.append(String(part))
                }
            }
            precondition(done, "no \(key) in \(file)")
            return out.joined(separator: ",")
        }
    }
    static func addKey(_ dir: String, _ file: String, _ key: String, _ value: String) throws {
        try edit(dir, file) { "{\"\(key)\": \(value), " + $0.drop(while: { $0 != "{" }).dropFirst() }
    }

    static let damages: [Damage] = [
        // Training text.
        Damage(name: "empty shard", apply: { try editSentences($0) { _ in [] } },
               fragments: ["data/full_text_0.txt has 0 sentences, expected 300", "150 facts × 2 repeats"]),
        Damage(name: "halved shard", apply: { try editSentences($0) { Array($0.prefix(150)) } },
               fragments: ["data/full_text_0.txt has 150 sentences, expected 300", "of its 2 sentences"]),
        Damage(name: "dropped sentence", apply: { try editSentences($0) { s in s.enumerated().filter { $0.offset != 16 }.map(\.element) } },
               fragments: ["data/full_text_0.txt has 299 sentences, expected 300", "has 1 of its 2 sentences"]),
        Damage(name: "duplicated sentence", apply: { try editSentences($0) { $0 + [$0[2]] } },
               fragments: ["data/full_text_0.txt: sentence 301 is copy 3 of the sentence for subject", "the first is sentence 3 of full_text_0.txt", "writes 2 (repeats)"]),
        Damage(name: "extra duplicated shard", apply: { dir in
                   try FileSystem.writeText(dir + "/data/full_text_1.txt", try FileSystem.readText(dir + "/data/full_text_0.txt"))
               }, fragments: ["data/full_text_1.txt is not a shard of this folder", "shards = 1"]),
        Damage(name: "shards larger than the files", apply: { try setKey($0, "metadata/args.json", "shards", "2") },
               fragments: ["data/full_text_1.txt is missing", "shards = 2"]),
        Damage(name: "repeats contradicting the text", apply: { try setKey($0, "metadata/args.json", "repeats", "3") },
               fragments: ["data/full_text_0.txt has 300 sentences, expected 450", "150 facts × 3 repeats"]),
        Damage(name: "a shard larger than its counts allow", apply: { try editSentences($0) { $0 + [String](repeating: " ", count: 100_000) } },
               fragments: ["data/full_text_0.txt is", "bytes, more than the"]),

        // Validation files.
        Damage(name: "missing sro.txt", apply: { _ = unlink($0 + "/validations/sro.txt") },
               fragments: ["validations/sro.txt is missing"]),
        Damage(name: "truncated sro.txt", apply: { try editLines($0, "validations/sro.txt") { Array($0.prefix(120)) } },
               fragments: ["validations/sro.txt has 120 lines, expected 150 (one per fact)"]),
        Damage(name: "dropped line", apply: { try editLines($0, "validations/sro.txt") { l in l.enumerated().filter { $0.offset != 16 }.map(\.element) } },
               fragments: ["validations/sro.txt has 149 lines, expected 150 (one per fact)"]),
        Damage(name: "duplicated line", apply: { try editLines($0, "validations/sro.txt") { l in var l = l; l[16] = l[2]; return l } },
               fragments: ["validations/sro.txt line 17 duplicates line 3 (subject"]),
        Damage(name: "empty line", apply: { try editLines($0, "validations/sro.txt") { l in var l = l; l.insert("", at: 5); return l } },
               fragments: ["validations/sro.txt line 6 is empty"]),
        Damage(name: "a validation file the generator does not write", apply: { dir in
                   try FileSystem.writeText(dir + "/validations/rso.txt", try FileSystem.readText(dir + "/validations/sro.txt"))
               }, fragments: ["validations/rso.txt is not a validation file the official generator writes", "sro.txt"]),
        Damage(name: "dropped object-nested line", fixture: "nested-s40-r2-o8-k4",
               apply: { try editLines($0, "validations/object_nested_object_sro.txt") { Array($0.dropLast()) } },
               fragments: ["validations/object_nested_object_sro.txt has 15 lines, expected 16 (one per fact)"]),
        Damage(name: "a subject fact in the nested file", fixture: "nested-s40-r2-o8-k4", apply: { dir in
                   let first = lines(try FileSystem.readText(dir + "/validations/subject_object_sro.txt"))[0]
                   try editLines(dir, "validations/subject_nested_object_sro.txt") { l in var l = l; l[0] = first; return l }
               }, fragments: ["validations/subject_nested_object_sro.txt line 1: subject", "does not belong in this file"]),
        Damage(name: "duplicated rso line", fixture: "inverted-s50-r3-o10-i03",
               apply: { try editLines($0, "validations/rso.txt") { $0 + [$0[40]] } },
               fragments: ["validations/rso.txt line 151 duplicates line 41"]),
        Damage(name: "questions without questions_frac", apply: { dir in
                   try FileSystem.makeDirectories(dir + "/questions")
                   try FileSystem.writeText(dir + "/questions/default_new.txt", "")
               }, fragments: ["questions/default_new.txt is present, but args.json has questions_frac = 0"]),

        // args.json: every count must be known, sane and agree.
        Damage(name: "num_subjects = 10^9", apply: { try addKey($0, "metadata/args.json", "num_subjects", "1000000000") },
               fragments: ["metadata/args.json: unknown key \"num_subjects\""]),
        Damage(name: "subjects = 10^9", apply: { try setKey($0, "metadata/args.json", "subjects", "1000000000") },
               fragments: ["metadata/args.json", "subjects = 1000000000 is more than"]),
        Damage(name: "no repeats", apply: { try edit($0, "metadata/args.json") { $0.replacingFirst("\"repeats\": 2,", with: "") } },
               fragments: ["metadata/args.json has no repeats"]),
        Damage(name: "shards = 10^9", apply: { try setKey($0, "metadata/args.json", "shards", "1000000000") },
               fragments: ["metadata/args.json: shards = 1000000000, more than the 300 sentences"]),
        Damage(name: "validation_data_only", apply: { try setKey($0, "metadata/args.json", "validation_data_only", "true") },
               fragments: ["metadata/args.json: validation_data_only must be false"]),
        Damage(name: "a phrase creator we do not implement", apply: { try setKey($0, "metadata/args.json", "phrase_creator", "\"simplerepeats\"") },
               fragments: ["metadata/args.json", "phrase_creator = \"simplerepeats\" is not one of"]),

        // metadata.json.
        Damage(name: "graph_size contradicts args.json", apply: { try setKey($0, "metadata/metadata.json", "graph_size", "151") },
               fragments: ["metadata/metadata.json: graph_size = 151, but args.json has 50 subjects × 3 relationships = 150 facts"]),
        Damage(name: "total_num_tokens contradicts the text", apply: { try setKey($0, "metadata/metadata.json", "total_num_tokens", "3601") },
               fragments: ["metadata/metadata.json: total_num_tokens = 3601, but the sentences in data/ give 3600"]),
        Damage(name: "vocab_size contradicts the layout", apply: { try setKey($0, "metadata/metadata.json", "vocab_size", "99") },
               fragments: ["metadata/metadata.json: vocab_size = 99, expected 1180"]),
        Damage(name: "an unknown count in metadata.json", apply: { try addKey($0, "metadata/metadata.json", "num_facts", "150") },
               fragments: ["metadata/metadata.json: unknown key \"num_facts\""]),
        Damage(name: "no total_num_tokens", apply: { try FileSystem.writeText($0 + "/metadata/metadata.json", #"{"graph_size": 150, "vocab_size": 1180}"#) },
               fragments: ["metadata/metadata.json has no total_num_tokens"]),
    ]

    @Test(arguments: damages)
    func aDamagedFolderIsRefusedNamingTheFileAndTheMismatch(_ damage: Damage) throws {
        let dir = DataTest.tempDir("strict")
        defer { DataTest.removeTree(dir) }
        try DataTest.copyTree(DataTest.fixture(damage.fixture), dir)
        _ = try Dataset.importReference(dir)   // the copy imports before the damage
        try damage.apply(dir)
        do {
            _ = try Dataset.importReference(dir)
            Issue.record("\(damage.name): expected an error")
        } catch {
            #expect(error.status == .format, "\(damage.name): \(error.message)")
            for f in damage.fragments { #expect(error.message.contains(f), "\(damage.name): \(error.message)") }
        }
    }

    /// Writes the fixture's 300 sentences into `sizes.count` shards of those sizes (the rest
    /// dropped), with args.json and metadata.json set to match.
    static func reshard(_ dir: String, _ sizes: [Int]) throws {
        let all = sentences(try FileSystem.readText(dir + "/data/full_text_0.txt"))
        var at = 0
        for (k, n) in sizes.enumerated() {
            try FileSystem.writeText(dir + "/data/full_text_\(k).txt", all[at..<(at + n)].joined())
            at += n
        }
        try setKey(dir, "metadata/args.json", "shards", "\(sizes.count)")
        // The official total_num_tokens with that many shards: 3600 for one, one less per extra shard.
        try setKey(dir, "metadata/metadata.json", "total_num_tokens", "\(3600 - (sizes.count - 1))")
    }

    @Test func shardsHoldTheirShareAsTheOfficialGeneratorOrOurExportWritesThem() throws {
        // 300 sentences in 7 shards: 42 each; the official generator drops the 6 left over, our
        // export puts them in the last shard. total_num_tokens counts all 300 either way.
        for (sizes, ok) in [([Int](repeating: 42, count: 7), true), ([Int](repeating: 42, count: 6) + [48], true),
                            ([42, 42, 41, 42, 42, 42, 42], false), ([Int](repeating: 42, count: 6) + [47], false)] {
            let dir = DataTest.tempDir("shards")
            defer { DataTest.removeTree(dir) }
            try DataTest.copyTree(DataTest.fixture("independent-s50-r3-o10"), dir)
            try Self.reshard(dir, sizes)
            do {
                let ds = try Dataset.importReference(dir)
                #expect(ok, "\(sizes) should be refused")
                #expect(ds.numSequences == sizes.reduce(0, +))
            } catch {
                #expect(!ok, "\(sizes): \(error.message)")
                #expect(error.status == .format)
                let k = sizes.firstIndex { $0 != 42 }!
                #expect(error.message.contains("data/full_text_\(k).txt has \(sizes[k]) sentences, expected 42"), "\(error.message)")
            }
        }
    }

    @Test func totalNumTokensMayOnlyExceedTheTextByWhatWasDroppedAtSharding() throws {
        // 7 shards of 42: 6 sentences dropped. The official count for this sharding is 3594
        // (2 × 300 − 7 + 1 + 300 × (9 words + 1)); the 294 sentences kept give 3540 at least, and
        // the 6 dropped can add at most 6 × 32 words.
        for (total, ok) in [(3594, true), (3540, true), (3539, false), (3732, true), (3733, false)] {
            let dir = DataTest.tempDir("dropped")
            defer { DataTest.removeTree(dir) }
            try DataTest.copyTree(DataTest.fixture("independent-s50-r3-o10"), dir)
            try Self.reshard(dir, [Int](repeating: 42, count: 7))
            try Self.setKey(dir, "metadata/metadata.json", "total_num_tokens", "\(total)")
            do {
                _ = try Dataset.importReference(dir)
                #expect(ok, "total_num_tokens = \(total) should be refused")
            } catch {
                #expect(!ok && error.status == .format, "\(total): \(error.message)")
                #expect(error.message.contains("metadata.json: total_num_tokens = \(total), but the sentences in data/ give 3540 to 3732 (6 dropped at sharding)"), "\(error.message)")
            }
        }
    }

    @Test func exportedQuestionFilesMustCoverEveryFactOnce() throws {
        let dir = DataTest.tempDir("questions")
        defer { DataTest.removeTree(dir) }
        let ds = try DataTest.generate(#"{"preset": "tiny", "questions_frac": 0.5, "seed": 5}"#)
        try ds.exportReference(dir)
        DataTest.expectIdentical(ds, try Dataset.importReference(dir))
        try Self.editLines(dir, "questions/default_new.txt") { Array($0.dropFirst()) }
        do { _ = try Dataset.importReference(dir); Issue.record("expected an error") } catch {
            #expect(error.status == .format)
            #expect(error.message.contains("questions/default.txt and default_new.txt have \(ds.numSubjects * ds.numBaseRelations - 1) lines together, expected \(ds.numSubjects * ds.numBaseRelations) (one per fact)"), "\(error.message)")
        }
        // The subjects with questions are int(questions_entity_frac × subjects), each once.
        try ds.exportReference(dir)
        try Self.editLines(dir, "metadata/subjects_with_questions.txt") { l in var l = l; l[1] = l[0]; return l }
        do { _ = try Dataset.importReference(dir); Issue.record("expected an error") } catch {
            #expect(error.status == .format && error.message.contains("subjects_with_questions.txt line 2 duplicates line 1"), "\(error.message)")
        }
    }
}

extension ReferenceStrictImportTests {
    static let ft = "ftremapping_1overrides_5overriderepeats/"

    /// Damages of the fine-tuning folder of independent-s50-r3-o10 (paths relative to the dataset folder).
    static let fineTuningDamages: [Damage] = [
        Damage(name: "dropped training line", apply: { try editLines($0, ft + "finetuning_data/edited_data.txt") { Array($0.dropFirst()) } },
               fragments: ["metadata/edited_relationship_graph_tokenized.txt has 5 lines, but", "finetuning_data/edited_data.txt has 4 (one per training sentence)"]),
        Damage(name: "duplicated training line", apply: { try editLines($0, ft + "finetuning_data/with_same_rel_data.txt") { l in var l = l; l[2] = l[0]; return l } },
               fragments: ["finetuning_data/with_same_rel_data.txt line 3 does not match", "metadata/with_same_rel_relationship_graph_tokenized.txt line 3"]),
        Damage(name: "a LitGPT line that differs", apply: { try editLines($0, ft + "finetuning_data/edited_sro.jsonl") { l in
                   var l = l; l[1] = l[1].replacingFirst("\"output\": \" 0140\"", with: "\"output\": \" 0141\""); return l } },
               fragments: ["finetuning_data/edited_data.txt line 2 does not match", "finetuning_data/edited_sro.jsonl line 2"]),
        Damage(name: "a group dropped everywhere but train.jsonl", apply: { dir in
                   for f in ["finetuning_data/edited_data.txt", "finetuning_data/edited_sro.jsonl", "metadata/edited_relationship_graph_tokenized.txt"] {
                       try editLines(dir, ft + f) { Array($0.dropFirst()) }
                   }
               }, fragments: ["finetuning_data/train.jsonl has 37 lines, expected 36"]),
        Damage(name: "missing tokenized graph", apply: { _ = unlink($0 + "/" + ft + "metadata/reg_data_relationship_graph_tokenized.txt") },
               fragments: ["metadata/reg_data_relationship_graph_tokenized.txt is missing"]),
        Damage(name: "a training group we do not import", apply: { dir in
                   try FileSystem.writeText(dir + "/" + ft + "finetuning_data/censored_data.txt", try FileSystem.readText(dir + "/" + ft + "finetuning_data/edited_data.txt"))
               }, fragments: ["finetuning_data/censored_data.txt: training group 'censored' is not supported"]),
        Damage(name: "duplicated test line", apply: { try editLines($0, ft + "ft_validations/reg_data_sro.txt") { $0 + [$0[1]] } },
               fragments: ["ft_validations/reg_data_sro.txt line 36 duplicates line 2"]),
        Damage(name: "truncated with_same_rel test", apply: { try editLines($0, ft + "ft_validations/with_same_rel_sro.txt") { Array($0.dropLast(2)) } },
               fragments: ["ft_validations/with_same_rel_sro.txt has 22 lines, expected 24", "with_same_rel_data.txt trains on"]),
        Damage(name: "dropped same_edges_diff_rel line", apply: { try editLines($0, ft + "ft_validations/same_edges_diff_rel_sro.txt") { Array($0.dropLast()) } },
               fragments: ["ft_validations/same_edges_diff_rel_sro.txt has 1 lines, expected 2 (the edited subjects' other relationships)"]),
        Damage(name: "missing edited test", apply: { _ = unlink($0 + "/" + ft + "ft_validations/edited_sro.txt") },
               fragments: ["ft_validations/edited_sro.txt is missing, but", "edited_data.txt trains edits"]),
        Damage(name: "an edited line that is no edit", apply: { dir in
                   // Line 1 of edited becomes line 1 of reg_data in all four records, so only the edit check can tell.
                   for (f, g) in [("finetuning_data/edited_data.txt", "finetuning_data/reg_data_data.txt"),
                                  ("finetuning_data/edited_sro.jsonl", "finetuning_data/reg_data_sro.jsonl"),
                                  ("metadata/edited_relationship_graph_tokenized.txt", "metadata/reg_data_relationship_graph_tokenized.txt")] {
                       let reg = lines(try FileSystem.readText(dir + "/" + ft + g))[0]
                       let old = lines(try FileSystem.readText(dir + "/" + ft + f))[0]
                       try editLines(dir, ft + f) { l in var l = l; l[0] = reg; return l }
                       if f.hasSuffix(".jsonl") {
                           for t in ["train", "val", "test"] { try edit(dir, ft + "finetuning_data/\(t).jsonl") { $0.replacingFirst(old, with: reg) } }
                       }
                   }
               }, fragments: ["finetuning_data/edited_data.txt line 1 is not one of the edits in", "ft_validations/edited_sro.txt"]),
    ]

    @Test(arguments: fineTuningDamages)
    func aDamagedFineTuningFolderIsRefusedNamingTheFileAndTheMismatch(_ damage: Damage) throws {
        let dir = DataTest.tempDir("strict-ft")
        defer { DataTest.removeTree(dir) }
        try DataTest.copyTree(DataTest.fixture(damage.fixture), dir)
        let ds = try Dataset.importReference(dir)
        _ = try EditSetBuilder.importReference(dir + "/" + Self.ft.dropLast(), dataset: ds)   // imports before the damage
        try damage.apply(dir)
        do {
            _ = try EditSetBuilder.importReference(dir + "/" + Self.ft.dropLast(), dataset: ds)
            Issue.record("\(damage.name): expected an error")
        } catch {
            #expect(error.status == .format, "\(damage.name): \(error.message)")
            for f in damage.fragments { #expect(error.message.contains(f), "\(damage.name): \(error.message)") }
        }
    }
}

extension String {
    func replacingFirst(_ s: String, with r: String) -> String {
        guard let range = firstRange(of: s) else { return self }
        return String(self[..<range.lowerBound]) + r + String(self[range.upperBound...])
    }
}
