import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Issue 7: files, sizes and specs that cannot crash the host or pass as good when they are not.
@Suite struct TrustTests {
    // MARK: digests

    @Test func xxh64MatchesThePublishedVectors() {
        func hex(_ bytes: [UInt8], chunk: Int) -> String {
            var h = XXH64()
            var i = 0
            while i < bytes.count { h.update(Array(bytes[i..<min(i + chunk, bytes.count)])); i += chunk }
            return String(h.digest(), radix: 16)
        }
        let long = Array((0..<768).map { UInt8($0 % 256) })
        for chunk in [1, 7, 32, 1000] {
            #expect(hex([], chunk: chunk) == "ef46db3751d8e999")
            #expect(hex(Array("a".utf8), chunk: chunk) == "d24ec4f1a98c6e5b")
            #expect(hex(Array("abc".utf8), chunk: chunk) == "44bc2cf5ad770999")
            #expect(hex(Array("Nobody inspects the spammish repetition".utf8), chunk: chunk) == "fbcea83c8a378bf1")
            #expect(hex(long, chunk: chunk) == "8e03c838c596036f")
        }
    }

    @Test func fileDigestEqualsTheObjectsAndCatchesEditsMadeWithH5py() throws {
        let dir = DataTest.tempDir("digest")
        defer { DataTest.removeTree(dir) }
        let ds = try DataTest.generate(#"{"preset": "tiny"}"#)
        let path = dir + "/ds.h5"
        try ds.save(path)
        let f = try H5File.open(path)
        let stored = try f.stringAttribute("digest")
        #expect(stored == ds.contentDigest())
        #expect(try f.computeDigest() == stored)
        f.close()
        #expect(try DataTest.generate(#"{"preset": "tiny", "seed": 7}"#).contentDigest() != stored)

        let model = try LanguageModel(config: ModelConfig(text: #"{"preset": "tiny", "vocab_size": 200}"#, path: "test"))
        let mpath = dir + "/m.h5"
        try model.save(mpath)
        #expect(try BehemothFile.verify(mpath)["digest"] == .string(model.contentDigest))

        guard DataTest.python("-c 'import h5py' >/dev/null 2>&1") == 0 else { return }
        // The spec rewritten to another seed, the arrays left: refused by the digest.
        let edits: [(String, String)] = [
            ("spec", """
             s = json.loads(f.attrs['spec']); s['seed'] += 1; t = json.dumps(s).encode()
             f.attrs.create('spec', np.array(t, dtype=h5py.string_dtype('utf-8', len(t))))
             """),
            ("swap", """
             a = f['eval/sro/targets'][()]; f['eval/sro/targets'][...] = a[::-1]
             """),
        ]
        for (name, body) in edits {
            let copy = "\(dir)/\(name).h5"
            #expect(DataTest.run("cp '\(path)' '\(copy)'") == 0)
            let script = "import h5py, json, numpy as np\nf = h5py.File('\(copy)', 'r+')\n" + body.split(separator: "\n").map { $0.trimmingPrefix(" ") }.joined(separator: "\n") + "\nf.close()\n"
            try FileSystem.writeText("\(dir)/\(name).py", script)
            #expect(DataTest.python("'\(dir)/\(name).py'") == 0)
            do { _ = try Dataset.load(copy); Issue.record("\(name): an edited file loaded") } catch {
                #expect(error.status == .format)
                #expect(error.message.contains("digest mismatch"), "\(error.message)")
            }
        }
    }

    // MARK: files of format version 1

    @Test func formatVersion1FilesLoadThroughTheTool() throws {
        let legacy = DataTest.fixture("../legacy-v1")
        guard LegacyFiles.toolPath() != nil else { Issue.record("the behemoth tool was not built beside the tests"); return }
        let ds = try Dataset.load(legacy + "/dataset.h5")
        #expect(ds.numFacts > 0)
        let (m, c) = try LanguageModel.load(legacy + "/checkpoint.h5")
        #expect(c.optimizerM != nil && m.parameterCount > 0)
        #expect(try BehemothFile.verify(legacy + "/edit.h5")["format"] == .string("behemoth.edit"))

        // The upgrade gives a current file with the same content.
        let dir = DataTest.tempDir("upgrade")
        defer { DataTest.removeTree(dir) }
        try BehemothFile.upgrade(legacy + "/dataset.h5", to: dir + "/ds.h5")
        #expect(LegacyFiles.superblockVersion(dir + "/ds.h5") == 3)
        DataTest.expectIdentical(ds, try Dataset.load(dir + "/ds.h5"))
        #expect(try Dataset.load(dir + "/ds.h5").contentDigest() == ds.contentDigest())

        // Damage in the unchecksummed layout is a format error from the tool, never a crash here.
        let bytes = try FileSystem.readBytes(legacy + "/dataset.h5")
        var rng = RNG(seed: 11)
        var refused = 0, loaded = 0
        for i in 0..<12 {
            var b = bytes
            let at = Int(rng.next() % UInt64(min(b.count, 4096)))
            b[at] ^= UInt8(1 + rng.next() % 255)
            let p = "\(dir)/flip\(i).h5"
            try FileSystem.writeBytes(p, b)
            do { DataTest.expectIdentical(ds, try Dataset.load(p)); loaded += 1 } catch {
                #expect(error.status == .format, "\(error.message)")
                refused += 1
            }
        }
        #expect(refused + loaded == 12 && refused > 0)
    }

    // MARK: sizes and specs

    @Test func oversizedModelConfigsAreRefusedWithTheSizeNeeded() throws {
        let cfg = try ModelConfig(text: #"{"preset": "tiny", "vocab_size": 1407, "hidden": 65536}"#, path: "test")
        do { _ = try LanguageModel(config: cfg); Issue.record("a 138 GB model was allocated") } catch {
            #expect(error.status == .noMemory)
            #expect(error.message.contains("needs") && error.message.contains("GB") && error.message.contains("BEHEMOTH_MAX_MEMORY_GB"), "\(error.message)")
        }
        let huge = try ModelConfig(text: #"{"preset": "tiny", "vocab_size": 1407}"#, path: "test")
        do { _ = try LanguageModel(config: huge, batch: 1 << 20, seq: 64); Issue.record("huge activations were allocated") } catch {
            #expect(error.status == .noMemory, "\(error.message)")
        }
    }

    @Test func oversizedDatasetsAreRefusedBeforeGenerating() {
        do { _ = try DataTest.generate(#"{"subjects": 2000000, "relationships": 100, "objects": 10}"#); Issue.record("generated") } catch {
            #expect(error.status == .invalid || error.status == .noMemory, "\(error.message)")
        }
    }

    @Test func specsWith200000KeysAreRefusedQuickly() {
        var text = "{"
        for i in 0..<200_000 { text += "\"key\(i)\": \(i)," }
        text += "\"last\": 0}"
        let start = monotonicSeconds()
        #expect(throws: EngineError.self) { _ = try DatasetSpec.parse(text) }
        #expect(throws: EngineError.self) { _ = try ModelConfig(text: text, path: "model config") }
        #expect(monotonicSeconds() - start < 1.0)
        let big = "{\"x\": \"" + String(repeating: "a", count: JSON.maxInputBytes) + "\"}"
        do { _ = try JSON.parse(big, what: "spec"); Issue.record("a 16 MB spec was parsed") } catch {
            #expect(error.message.contains("limit"), "\(error.message)")
        }
    }

    // MARK: checkpoints

    @Test func badOptimizerMomentsAreRefused() throws {
        let table = TensorTable([TensorEntry(name: "a.weight", offset: 0, shape: [2, 3])])
        for (m, v, fragment) in [(Float.nan, Float(1), "/optimizer/m"), (Float(0), Float(-1), "/optimizer/v"),
                                 (Float(0), Float.infinity, "/optimizer/v"), (Float(0), Float.nan, "/optimizer/v")] {
            var c = Checkpoint(configJSON: "{}", table: table, weights: [Float](repeating: 1, count: 6))
            c.optimizerM = [0, 0, m, 0, 0, 0]
            c.optimizerV = [0, v, 0, 0, 0, 0]
            let path = "/tmp/bh-trust-\(getpid())-moments.h5"
            defer { unlink(path) }
            try c.save(path)
            do { _ = try Checkpoint.load(path) { (_: String) throws(EngineError) in table }; Issue.record("moments \(m), \(v) loaded") } catch {
                #expect(error.status == .format)
                #expect(error.message.contains(fragment), "\(error.message)")
            }
        }
    }

    @Test func aConfigLargerThanTheFileIsRefusedBeforeAllocating() throws {
        // A well-formed file (valid checksums and digests) whose config asks for far more weights
        // than it holds: refused from the table alone, nothing of the config's size is allocated.
        let table = TensorTable([TensorEntry(name: "a.weight", offset: 0, shape: [2, 3])])
        let c = Checkpoint(configJSON: #"{"preset": "tiny", "vocab_size": 1407, "hidden": 8192, "heads": 8}"#, table: table, weights: [Float](repeating: 1, count: 6))
        let path = "/tmp/bh-trust-\(getpid())-bigconfig.h5"
        defer { unlink(path) }
        try c.save(path)
        let start = monotonicSeconds()
        do { _ = try LanguageModel.load(path); Issue.record("loaded") } catch {
            #expect(error.status == .format)
            #expect(error.message.contains("more than the"), "\(error.message)")
        }
        #expect(monotonicSeconds() - start < 2)
    }

    @Test func editsOutsideTheContentDigestAreRefusedByTheFileDigest() throws {
        guard DataTest.python("-c 'import h5py' >/dev/null 2>&1") == 0 else { return }
        let dir = DataTest.tempDir("filedigest")
        defer { DataTest.removeTree(dir) }
        let table = TensorTable([TensorEntry(name: "a.weight", offset: 0, shape: [2, 3])])
        var c = Checkpoint(configJSON: "{}", table: table, weights: [Float](repeating: 1, count: 6))
        c.optimizerM = [Float](repeating: 0, count: 6)
        c.optimizerV = [Float](repeating: 0, count: 6)
        c.history.step = [1]; c.history.loss = [2]; c.history.learningRate = [1e-3]; c.history.gradNorm = [1]
        let path = dir + "/ck.h5"
        try c.save(path)
        _ = try Checkpoint.load(path) { (_: String) throws(EngineError) in table }
        for (name, edit) in [("moments", "f['optimizer/m/a.weight'][0, 0] = 0.5"), ("history", "del f['history/step']"),
                             ("attribute", "f.attrs['library_version'] = np.array(b'9.9.9', dtype=h5py.string_dtype('utf-8', 5))")] {
            let copy = "\(dir)/\(name).h5"
            #expect(DataTest.run("cp '\(path)' '\(copy)'") == 0)
            try FileSystem.writeText("\(dir)/\(name).py", "import h5py, numpy as np\nf = h5py.File('\(copy)', 'r+')\n\(edit)\nf.close()\n")
            #expect(DataTest.python("'\(dir)/\(name).py'") == 0)
            do { _ = try Checkpoint.load(copy) { (_: String) throws(EngineError) in table }; Issue.record("\(name): an edited checkpoint loaded") } catch {
                #expect(error.status == .format)
                #expect(error.message.contains("file digest mismatch") || error.message.contains("missing /history"), "\(name): \(error.message)")
            }
        }
    }

    @Test func largeStringAttributesRoundTrip() throws {
        // An edit report can outgrow the 64 KB an object header holds.
        let path = "/tmp/bh-trust-\(getpid())-bigattr.h5"
        defer { unlink(path) }
        let text = "{\"x\": \"" + String(repeating: "é", count: 150_000) + "\"}"
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(BehemothFile.editFormat, version: BehemothFile.editFormatVersion, spec: "{}")
            try f.setAttribute("report", string: text)
            try f.setAttribute("edit_set", string: "{}")
            try f.write("/groups/g/x", [Int32(1), 2, 3])
        }
        #expect(try BehemothFile.verify(path)["format"] == .string(BehemothFile.editFormat))
        let f = try H5File.open(path)
        #expect(try f.stringAttribute("report") == text)
    }

    // MARK: atomic writes

    @Test func staleTemporaryFilesOfDeadProcessesAreRemovedOnTheNextSave() throws {
        let dir = DataTest.tempDir("stale")
        defer { DataTest.removeTree(dir) }
        let path = dir + "/ds.h5"
        // A process that has exited: its pid is free (pids are not reused this quickly).
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, &argv, environ) == 0)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let stale = "\(path).tmp-\(pid)-42", mine = "\(path).tmp-\(getpid())-43", other = dir + "/other.h5.tmp-\(pid)-44"
        for p in [stale, mine, other] { try FileSystem.writeText(p, "partial") }
        try DataTest.generate(#"{"preset": "tiny"}"#).save(path)
        #expect(!FileSystem.exists(stale))
        #expect(FileSystem.exists(mine))   // a live process's (ours) is left alone
        #expect(FileSystem.exists(other))  // another target's is not this save's business
    }
}
