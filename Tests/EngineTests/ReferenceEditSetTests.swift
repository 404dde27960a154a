import Testing
@testable import Engine

@Suite struct ReferenceEditSetTests {
    static func fixture(_ name: String, file: String = #filePath) -> String {
        let tests = String(file.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/"))
        return "\(tests)/Fixtures/official-generator/\(name)"
    }

    static func lines(_ path: String) throws -> [String] {
        try FileSystem.readText(path).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    @Test(arguments: ["independent-s50-r3-o10", "correlated-s60-r3-o8-c1"])
    func officialFineTuningFoldersImportExactly(_ name: String) throws {
        let root = Self.fixture(name)
        let ft = root + "/" + (try FileSystem.listDirectory(root).first { $0.hasPrefix("ftremapping") })!
        let ds = try Dataset.importReference(root)
        let set = try EditSetBuilder.importReference(ft, dataset: ds)
        // Every training line and every validation line is there, in order, with the same text.
        let counts = Dictionary(uniqueKeysWithValues: set.trainingCounts())
        let editedLines = try Self.lines(ft + "/finetuning_data/edited_data.txt").count
        let sameRelLines = try Self.lines(ft + "/finetuning_data/with_same_rel_data.txt").count
        #expect(counts["edited"] == editedLines)
        #expect(counts["with_same_rel"] == sameRelLines)
        for (official, ours) in EditSetBuilder.officialTestNames {
            let path = "\(ft)/ft_validations/\(official)_sro.txt"
            guard FileSystem.exists(path) else { continue }
            let expected = try Self.lines(path)
            let g = try #require(set.group(ours))
            #expect(g.count == expected.count)
            for i in 0..<g.count {
                let text = try ds.decode(g.prompts[Int(g.offsets[i])..<Int(g.offsets[i + 1])]) + "\t" + ds.decode([g.targets[i]])
                #expect(text == expected[i])
            }
        }
        // The edit: old object from the dataset, new from the edited target.
        #expect(set.edits.count == 1)
        let e = set.edits[0]
        #expect(e.oldObject != e.newObject)
        #expect(set.group("edited")!.targets[0] == ds.objectToken(relation: e.relation, ordinal: e.newObject))
        if name.hasPrefix("correlated") {
            #expect(set.group("correlated_dependent")!.targets[0] == ds.objectToken(relation: 1, ordinal: e.newObject))
        }
        #expect(set.source == ft)
    }

    @Test func aFolderThatIsNotAFineTuningFolderIsAnError() throws {
        let ds = try Dataset.importReference(Self.fixture("independent-s50-r3-o10"))
        #expect(throws: EngineError.self) { _ = try EditSetBuilder.importReference(Self.fixture("independent-s50-r3-o10"), dataset: ds) }
    }
}
