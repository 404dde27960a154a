import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the dataset tests.
enum DataTest {
    /// Tests/Fixtures/official-generator/<name>
    static func fixture(_ name: String, file: String = #filePath) -> String {
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)  // EngineTests/<file>.swift
        return parts.joined(separator: "/") + "/Fixtures/official-generator/" + name
    }

    static func script(_ name: String, file: String = #filePath) -> String {
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/Fixtures/scripts/" + name
    }

    static let fixtures = ["independent-s50-r3-o10", "correlated-s60-r3-o8-c1", "nested-s40-r2-o8-k4",
                           "twotoken-s2000-r2-o10", "inverted-s50-r3-o10-i03"]

    /// HDF5 locks files with flock(); a child process forked by any test (python, h5dump) inherits
    /// the open files of the moment and keeps their locks, so a file written by one thread can
    /// then not be reopened by another. Tests turn HDF5's file locking off (they run in one process).
    static let setUp: Void = { setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1); return () }()

    static func tempDir(_ tag: String) -> String {
        _ = setUp
        var template = Array("/tmp/behemoth-\(tag)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: p!)
    }

    static func removeTree(_ path: String) { FileSystem.removeTree(path) }

    static func copyTree(_ from: String, _ to: String) throws {
        if FileSystem.isDirectory(from) {
            try FileSystem.makeDirectories(to)
            for name in try FileSystem.listDirectory(from) { try copyTree(from + "/" + name, to + "/" + name) }
        } else {
            try FileSystem.writeText(to, try FileSystem.readText(from))
        }
    }

    /// Writes the first `bytes` bytes of a file to another.
    static func truncatedCopy(_ from: String, _ to: String, bytes: Int) {
        guard let f = fopen(from, "rb"), let g = fopen(to, "wb") else { return }
        var buf = [UInt8](repeating: 0, count: bytes)
        let n = fread(&buf, 1, bytes, f)
        fwrite(&buf, 1, n, g)
        fclose(f); fclose(g)
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Runs a shell command line in bash after closing every inherited descriptor above 2 (so the
    /// child does not hold HDF5 files that other test threads have open). Returns the exit status.
    static func run(_ command: String) -> Int32 {
        _ = setUp
        let script = "for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ \"$fd\" -gt 2 ] 2>/dev/null && eval \"exec $fd>&-\"; done 2>/dev/null; " + command
        var pid: pid_t = 0
        let args = ["/bin/bash", "-c", script]
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        guard posix_spawn(&pid, "/bin/bash", nil, nil, &cargs, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -1
    }

    static func generate(_ json: String) throws(EngineError) -> Dataset {
        _ = setUp
        return try Dataset.generate(specJSON: json)
    }

    /// Every array and attribute that defines a dataset, compared one by one (names the first difference).
    static func expectIdentical(_ a: Dataset, _ b: Dataset, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.spec == b.spec, sourceLocation: sourceLocation)
        #expect(a.vocabulary == b.vocabulary, sourceLocation: sourceLocation)
        #expect(a.relations == b.relations, sourceLocation: sourceLocation)
        #expect(a.facts == b.facts, sourceLocation: sourceLocation)
        #expect(a.tokens == b.tokens, sourceLocation: sourceLocation)
        #expect(a.offsets == b.offsets, sourceLocation: sourceLocation)
        #expect(a.sequenceFacts == b.sequenceFacts, sourceLocation: sourceLocation)
        #expect(a.evalGroups.map(\.name) == b.evalGroups.map(\.name), sourceLocation: sourceLocation)
        #expect(a.evalGroups == b.evalGroups, sourceLocation: sourceLocation)
        #expect(a.questionSubjects == b.questionSubjects, sourceLocation: sourceLocation)
        #expect(a.nestedMap == b.nestedMap, sourceLocation: sourceLocation)
    }

    /// Parses a sentence or prompt by its markers: head words after SS, relation after RR, object after OO.
    static func parse(_ t: ArraySlice<Int32>, _ ds: Dataset) -> (head: [Int32], relation: Int32, object: Int32?) {
        var head: [Int32] = [], rel: Int32 = -1, obj: Int32? = nil
        let v = ds.vocabulary
        func isEntity(_ x: Int32) -> Bool {
            guard let r = v.roleIndex(of: Int(x)) else { return false }
            let n = v.roles[r].name
            return n == "subject" || n == "subject_first" || n == "subject_second" || n.hasPrefix("object/")
        }
        var i = t.startIndex
        while i < t.endIndex {
            if t[i] == Vocabulary.ss {
                i += 1
                while i < t.endIndex && isEntity(t[i]) { head.append(t[i]); i += 1 }
                continue
            }
            if t[i] == Vocabulary.rr && i + 1 < t.endIndex { rel = t[i + 1]; i += 2; continue }
            if t[i] == Vocabulary.oo && i + 1 < t.endIndex && t[i + 1] >= 85 { obj = t[i + 1]; i += 2; continue }
            i += 1
        }
        return (head, rel, obj)
    }

    /// Checks that every training sequence is one sentence that states its fact.
    static func expectSentencesDecodeToFacts(_ ds: Dataset, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var bad = 0
        for i in 0..<ds.numSequences {
            let s = ds.sequence(i)
            let f = Int(ds.sequenceFacts[i])
            let p = parse(s, ds)
            let rel = ds.relations[Int(ds.fact(f).relation)]
            let okObject = p.object == ds.tailToken(ofFact: f) || (ds.fact(f).alt >= 0 && p.object == ds.tailToken(ofFact: f, alt: true))
            let okShape = s.last == Vocabulary.eos && s.dropLast().last == Vocabulary.dot && s.filter({ $0 == Vocabulary.eos }).count == 1
            if p.head != ds.headTokens(ofFact: f) || p.relation != rel.token || !okObject || !okShape {
                if bad < 3 { Issue.record("sequence \(i) \(try ds.decode(s)) does not state fact \(f) \(ds.fact(f))", sourceLocation: sourceLocation) }
                bad += 1
            }
            // The text round-trips through the official tokenizer grammar.
            if i < 200 {
                var again: [Int32] = []
                try OfficialText.tokenize(Array(try ds.decode(s).utf8), layout: ds.layout, into: &again, what: "test")
                #expect(again == Array(s), sourceLocation: sourceLocation)
            }
        }
        #expect(bad == 0, sourceLocation: sourceLocation)
    }

    static func python(_ args: String) -> Int32 { run("python3 \(args)") }

    static var hasPythonTokenizers: Bool { python("-c 'import tokenizers' >/dev/null 2>&1") == 0 }
}
