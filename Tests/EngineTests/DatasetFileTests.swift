import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatasetFileTests {
    @Test(arguments: [
        #"{"preset": "tiny", "repeats": 2, "inversion_frac": 0.3, "minority_position_entity_frac": 0.1}"#,
        #"{"preset": "tiny", "num_nested_objects": 2, "shuffle": false}"#,
        #"{"preset": "tiny", "questions_frac": 1.0, "phrase_creator": "nonsense"}"#,
        #"{"subjects": 3000, "relationships": 2, "objects": 5}"#,
    ])
    func saveThenLoadGivesAnIdenticalDataset(spec: String) throws {
        let ds = try DataTest.generate(spec)
        let dir = DataTest.tempDir("h5")
        defer { DataTest.removeTree(dir) }
        try ds.save(dir + "/ds.h5")
        let back = try Dataset.load(dir + "/ds.h5")
        DataTest.expectIdentical(ds, back)
        #expect(back.origin == "generated")
        #expect(try FileSystem.listDirectory(dir) == ["ds.h5"])  // no temporary file left behind
    }

    @Test func importedFixtureSurvivesHDF5() throws {
        let ds = try Dataset.importReference(DataTest.fixture("nested-s40-r2-o8-k4"))
        let dir = DataTest.tempDir("h5i")
        defer { DataTest.removeTree(dir) }
        try ds.save(dir + "/ds.h5")
        let back = try Dataset.load(dir + "/ds.h5")
        DataTest.expectIdentical(ds, back)
        #expect(back.origin == "imported")
    }

    @Test func h5pyAndH5dumpReadTheFile() throws {
        let ds = try DataTest.generate(#"{"preset": "tiny", "inversion_frac": 0.5}"#)
        let dir = DataTest.tempDir("h5r")
        defer { DataTest.removeTree(dir) }
        let path = dir + "/ds.h5"
        try ds.save(path)
        if DataTest.run("command -v h5dump >/dev/null 2>&1") == 0 {
            #expect(DataTest.run("h5dump -A '\(path)' > '\(dir)/dump.txt' 2>&1") == 0)
            let dump = try FileSystem.readText(dir + "/dump.txt")
            #expect(dump.contains("DATASET \"facts\"") && dump.contains("DATASET \"prompt_offsets\"") && dump.contains("behemoth.dataset"))
        }
        if DataTest.python("-c 'import h5py' >/dev/null 2>&1") == 0 {
            let check = """
            import h5py, json, sys
            f = h5py.File(sys.argv[1], 'r')
            assert f.attrs['format'].decode() == 'behemoth.dataset', f.attrs['format']
            assert f.attrs['format_version'] == 2
            assert f.attrs['digest'].decode().startswith('xxh64:')
            assert f.id.get_create_plist().get_version()[0] >= 2, 'superblock: the checksummed layout'
            assert f['tokens'].fletcher32 and f['facts'].fletcher32
            spec = json.loads(f.attrs['spec'])
            assert spec['subjects'] == 64 and spec['preset'] == 'tiny'
            assert f['facts'].shape == (192, 4) and f['facts'].dtype == 'int32'
            off = f['offsets'][:]
            assert off[0] == 0 and off[-1] == f['tokens'].shape[0]
            names = json.loads(f['vocab'].attrs['role_names'])
            assert names[0] == 'special' and names[-1] == 'bpe_prefix'
            assert int(f['vocab/role_first'][-1] + f['vocab/role_count'][-1]) == int(f['vocab'].attrs['vocab_size'])
            assert json.loads(f['eval'].attrs['groups']) == ['sro', 'rso']
            g = f['eval/sro']
            assert g['prompt_offsets'].shape[0] == g['targets'].shape[0] + 1 == 193
            """
            try FileSystem.writeText(dir + "/check.py", check.split(separator: "\n").map { String($0) }.joined(separator: "\n") + "\n")
            #expect(DataTest.python("'\(dir)/check.py' '\(path)'") == 0)
        }
    }

    @Test func loadRejectsMissingForeignDamagedAndInconsistentFiles() throws {
        let dir = DataTest.tempDir("h5bad")
        defer { DataTest.removeTree(dir) }
        let ds = try DataTest.generate(#"{"preset": "tiny"}"#)
        let good = dir + "/good.h5"
        try ds.save(good)

        func expectError(_ path: String, _ status: EngineError.Status, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do { _ = try Dataset.load(path); Issue.record("expected an error for \(path)", sourceLocation: sourceLocation) } catch {
                #expect(error.status == status, "\(error.message)", sourceLocation: sourceLocation)
                #expect(error.message.contains(fragment), "\(error.message)", sourceLocation: sourceLocation)
            }
        }
        expectError(dir + "/missing.h5", .io, "no such file")
        try FileSystem.writeText(dir + "/text.h5", "this is not HDF5\n")
        expectError(dir + "/text.h5", .format, "not an HDF5 file")
        // Truncated: the first half of a good file.
        DataTest.truncatedCopy(good, dir + "/truncated.h5", bytes: DataTest.fileSize(good) / 2)
        expectError(dir + "/truncated.h5", .format, "truncated")
        // Foreign HDF5 (no format attribute) and another Behemoth format.
        try H5File.writeAtomically(dir + "/foreign.h5") { (f: H5File) throws(EngineError) in try f.write("x", [Int32(1), 2]) }
        expectError(dir + "/foreign.h5", .format, "not a Behemoth file")
        try H5File.writeAtomically(dir + "/model.h5") { (f: H5File) throws(EngineError) in try f.stampFormat("behemoth.model", version: 1, spec: "{}") }
        expectError(dir + "/model.h5", .format, "format = behemoth.model, expected behemoth.dataset")
        try H5File.writeAtomically(dir + "/v9.h5") { (f: H5File) throws(EngineError) in try f.stampFormat("behemoth.dataset", version: 9, spec: "{}") }
        expectError(dir + "/v9.h5", .format, "format_version 9")
        // Missing datasets.
        for name in ["tokens", "offsets", "facts", "eval/sro/targets", "relations"] {
            let p = dir + "/no-\(name.replacing("/", with: "_")).h5"
            try H5File.writeAtomically(p) { (f: H5File) throws(EngineError) in try ds.writeContents(f, except: [name]) }
            expectError(p, .format, "missing dataset \(name)")
        }
        // Inconsistent contents.
        func damaged(_ name: String, _ fill: (H5File) throws(EngineError) -> Void) throws -> String {
            let p = dir + "/bad-\(name.replacing("/", with: "_")).h5"
            try H5File.writeAtomically(p) { (f: H5File) throws(EngineError) in
                try ds.writeContents(f, except: [name])
                try fill(f)
            }
            return p
        }
        var off = ds.offsets
        off[5] = off[4] - 1
        expectError(try damaged("offsets") { (f: H5File) throws(EngineError) in try f.write("offsets", off) }, .format, "offsets decreases at 5")
        expectError(try damaged("offsets") { (f: H5File) throws(EngineError) in try f.write("offsets", Array(ds.offsets.dropLast())) }, .format, "offsets ends at")
        var toks = ds.tokens
        toks[3] = 99_999
        expectError(try damaged("tokens") { (f: H5File) throws(EngineError) in try f.write("tokens", toks) }, .format, "tokens[3] = 99999 is outside the vocabulary")
        var facts = ds.facts
        facts[2] = 8  // an object ordinal of 0..<8
        expectError(try damaged("facts") { (f: H5File) throws(EngineError) in try f.write("facts", facts, shape: [ds.numFacts, 4]) }, .format, "fact 0 has tail 8")
        expectError(try damaged("facts") { (f: H5File) throws(EngineError) in try f.write("facts", ds.facts) }, .format, "facts has shape")
        var moved = ds.facts
        moved[4] = 5  // fact 1 must be (subject 0, relation 1)
        expectError(try damaged("facts") { (f: H5File) throws(EngineError) in try f.write("facts", moved, shape: [ds.numFacts, 4]) }, .format, "fact 1 is (subject 5, relation 1), expected (0, 1)")
        var sf = ds.sequenceFacts
        sf[0] = -3
        expectError(try damaged("sequence_facts") { (f: H5File) throws(EngineError) in try f.write("sequence_facts", sf) }, .format, "sequence_facts[0] = -3")
        expectError(try damaged("vocab/role_count") { (f: H5File) throws(EngineError) in try f.write("vocab/role_count", [Int32(1)]) }, .format, "vocabulary roles")
        let badSpec = dir + "/badspec.h5"
        try H5File.writeAtomically(badSpec) { (f: H5File) throws(EngineError) in
            try ds.writeContents(f)
            try f.setAttribute("spec", string: #"{"subjects": -1}"#)
        }
        expectError(badSpec, .format, "'spec' attribute is not a valid dataset spec")
        // The good file still loads.
        _ = try Dataset.load(good)
    }
}
