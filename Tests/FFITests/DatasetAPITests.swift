import Testing
import CBehemoth
@testable import BehemothFFI
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// The dataset functions of behemoth.h, called as C callers call them.
@Suite struct DatasetAPITests {
    static var lastError: String { String(cString: bh_last_error()!) }

    /// See DataTest.setUp in EngineTests: forked children of other tests must not hold HDF5 locks.
    static let setUp: Void = { setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1); return () }()

    static func removeTree(_ path: String) { FileSystem.removeTree(path) }

    static func tempDir() -> String {
        _ = setUp
        var template = Array("/tmp/behemoth-ffi-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: p!)
    }

    static func fixture(_ name: String, file: String = #filePath) -> String {
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/Fixtures/official-generator/" + name
    }

    static func generate(_ spec: String) -> OpaquePointer? {
        _ = setUp
        var ds: OpaquePointer? = nil
        let st = bh_dataset_generate(spec, &ds)
        #expect(st == BH_OK, "\(lastError)")
        return ds
    }

    static func i32(_ ds: OpaquePointer?, _ name: String) -> [Int32] {
        var n: Int64 = 0
        #expect(bh_dataset_array_i32(ds, name, nil, 0, &n) == BH_OK, "\(lastError)")
        var buf = [Int32](repeating: 0, count: Int(n))
        #expect(bh_dataset_array_i32(ds, name, &buf, n, &n) == BH_OK, "\(lastError)")
        return buf
    }

    static func i64(_ ds: OpaquePointer?, _ name: String) -> [Int64] {
        var n: Int64 = 0
        #expect(bh_dataset_array_i64(ds, name, nil, 0, &n) == BH_OK, "\(lastError)")
        var buf = [Int64](repeating: 0, count: Int(n))
        #expect(bh_dataset_array_i64(ds, name, &buf, n, &n) == BH_OK, "\(lastError)")
        return buf
    }

    static func info(_ ds: OpaquePointer?) throws -> JSON {
        var s: UnsafeMutablePointer<CChar>? = nil
        #expect(bh_dataset_info(ds, &s) == BH_OK)
        defer { bh_string_free(s) }
        return try JSON.parse(String(cString: s!), what: "info")
    }

    @Test func generateInfoArraysAndDecode() throws {
        let ds = Self.generate(#"{"preset": "tiny", "inversion_frac": 0.25, "seed": 3}"#)
        defer { bh_dataset_free(ds) }
        let info = try Self.info(ds)
        #expect(info["counts"]?["subjects"] == .int(64) && info["counts"]?["facts"] == .int(192))
        #expect(info["counts"]?["sequences"] == .int(192) && info["counts"]?["vocab_size"] == .int(1407))
        #expect(info["spec"]?["inversion_frac"] == .number(0.25) && info["spec"]?["seed"] == .int(3))
        #expect(info["spec"]?["minority_position_frac"] == .number(0.1))  // defaults filled in
        guard case let .array(roles)? = info["vocabulary"]?["roles"], case let .object(arrays)? = info["arrays"] else {
            Issue.record("info lacks roles or arrays"); return
        }
        #expect(roles.first?["name"] == .string("special") && roles.last?["name"] == .string("bpe_prefix"))
        #expect(arrays.map(\.0).contains("eval/rso/prompt_offsets"))
        #expect(info["eval_groups"] == .array([
            .object([("name", .string("sro")), ("prompts", .int(192)), ("prompt_tokens", .int(192 * 8))]),
            .object([("name", .string("rso")), ("prompts", .int(192)), ("prompt_tokens", .int(192 * 8))]),
        ]))
        // Every listed array copies out with its listed shape.
        for (name, a) in arrays {
            guard case let .array(shape)? = a["shape"] else { continue }
            let n = shape.reduce(1) { if case let .number(d) = $1 { return $0 * Int(d) }; return 0 }
            let count = a["dtype"] == .string("int64") ? Self.i64(ds, name).count : Self.i32(ds, name).count
            #expect(count == n, "\(name)")
        }
        let facts = Self.i32(ds, "facts"), tokens = Self.i32(ds, "tokens"), offsets = Self.i64(ds, "offsets")
        #expect(facts.count == 192 * 4 && offsets.count == 193 && Int(offsets.last!) == tokens.count)
        // Decode a sentence.
        var text: UnsafeMutablePointer<CChar>? = nil
        let first = Array(tokens[0..<Int(offsets[1])])
        #expect(bh_dataset_decode(ds, first, Int64(first.count), &text) == BH_OK)
        #expect(String(cString: text!).hasSuffix(".<|endoftext|>"))
        bh_string_free(text)
    }

    @Test func bufferConvention() {
        let ds = Self.generate(#"{"preset": "tiny"}"#)
        defer { bh_dataset_free(ds) }
        var n: Int64 = -1
        var small = [Int32](repeating: 0, count: 10)
        #expect(bh_dataset_array_i32(ds, "tokens", &small, 10, &n) == BH_ERR_BUFFER_TOO_SMALL)
        #expect(n == 192 * 11 && small.allSatisfy { $0 == 0 })
        #expect(Self.lastError.contains("buffer holds 10 elements but 2112 are needed"))
        #expect(bh_dataset_array_i32(ds, "tokens", nil, 5, &n) == BH_ERR_INVALID)
        #expect(bh_dataset_array_i32(ds, "tokens", &small, -1, &n) == BH_ERR_INVALID)
        #expect(bh_dataset_array_i32(ds, "tokens", &small, 10, nil) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("count pointer is NULL"))
        #expect(bh_dataset_array_i32(ds, nil, &small, 10, &n) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("name is NULL"))
        #expect(bh_dataset_array_i32(ds, "offsets", &small, 10, &n) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("holds int64; use bh_dataset_array_i64"))
        var big = [Int64](repeating: 0, count: 10)
        #expect(bh_dataset_array_i64(ds, "facts", &big, 10, &n) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("holds int32; use bh_dataset_array_i32"))
        #expect(bh_dataset_array_i32(ds, "eval/nope/targets", &small, 10, &n) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("no array named 'eval/nope/targets'") && Self.lastError.contains("eval/sro/targets"))
        #expect(bh_dataset_array_i32(nil, "tokens", &small, 10, &n) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("dataset is NULL"))
    }

    @Test func nullPointersAreErrorsNotCrashes() {
        var ds: OpaquePointer? = OpaquePointer(bitPattern: 0x1)
        #expect(bh_dataset_generate(nil, &ds) == BH_ERR_INVALID)
        #expect(ds == nil && Self.lastError.contains("spec_json is NULL"))
        #expect(bh_dataset_generate("{}", nil) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("output handle pointer is NULL"))
        #expect(bh_dataset_load(nil, &ds) == BH_ERR_INVALID)
        #expect(bh_dataset_load("", &ds) == BH_ERR_INVALID)
        #expect(bh_dataset_import_reference(nil, &ds) == BH_ERR_INVALID)
        #expect(bh_dataset_save(nil, "/tmp/x.h5") == BH_ERR_INVALID)
        #expect(bh_dataset_export_reference(nil, "/tmp/x") == BH_ERR_INVALID)
        var s: UnsafeMutablePointer<CChar>? = nil
        #expect(bh_dataset_info(nil, &s) == BH_ERR_INVALID && s == nil)
        let real = Self.generate(#"{"preset": "tiny"}"#)
        defer { bh_dataset_free(real) }
        #expect(bh_dataset_info(real, nil) == BH_ERR_INVALID)
        #expect(bh_dataset_save(real, nil) == BH_ERR_INVALID)
        #expect(bh_dataset_decode(real, nil, 3, &s) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("tokens is NULL but its count is 3"))
        var t: [Int32] = [3, 99_999]
        #expect(bh_dataset_decode(real, &t, 2, &s) == BH_ERR_INVALID && s == nil)
        #expect(Self.lastError.contains("token 99999 is outside the vocabulary"))
        #expect(bh_dataset_decode(real, &t, -1, &s) == BH_ERR_INVALID)
        #expect(bh_dataset_decode(real, &t, 1, nil) == BH_ERR_INVALID)
        bh_dataset_free(nil)
    }

    @Test func badSpecsReturnInvalidWithAMessage() {
        let cases: [(String, String)] = [
            (#"{"subjects": "#, "malformed JSON"),
            (#"{"subjects": 10, "colour": "red"}"#, "unknown key 'colour'"),
            (#"{"subjects": -1}"#, "subjects = -1 must be at least 1"),
            (#"{"subjects": 1000000000000}"#, "subjects = 1000000000000 is more than the 1000000 this generator supports"),
            (#"{"preset": "tiny", "correlated_pair": true, "correlation_strength": 0.1}"#, "must be greater than 1/objects"),
            (#"{"preset": "paper", "repeats": 100000}"#, "more than the 500000000"),
        ]
        for (spec, fragment) in cases {
            var ds: OpaquePointer? = nil
            #expect(bh_dataset_generate(spec, &ds) == BH_ERR_INVALID, "\(spec)")
            #expect(ds == nil)
            #expect(Self.lastError.contains(fragment), "\(spec): \(Self.lastError)")
        }
    }

    @Test func saveLoadImportExportThroughC() throws {
        let dir = Self.tempDir()
        defer { Self.removeTree(dir) }
        let ds = Self.generate(#"{"preset": "tiny", "num_nested_objects": 4, "repeats": 2}"#)
        defer { bh_dataset_free(ds) }
        #expect(bh_dataset_save(ds, dir + "/ds.h5") == BH_OK, "\(Self.lastError)")
        var loaded: OpaquePointer? = nil
        #expect(bh_dataset_load(dir + "/ds.h5", &loaded) == BH_OK, "\(Self.lastError)")
        defer { bh_dataset_free(loaded) }
        #expect(Self.i32(loaded, "tokens") == Self.i32(ds, "tokens"))
        #expect(Self.i32(loaded, "eval/object_nested_object_sro/facts") == Self.i32(ds, "eval/object_nested_object_sro/facts"))
        #expect(bh_dataset_export_reference(ds, dir + "/ref") == BH_OK, "\(Self.lastError)")
        var imported: OpaquePointer? = nil
        #expect(bh_dataset_import_reference(dir + "/ref", &imported) == BH_OK, "\(Self.lastError)")
        defer { bh_dataset_free(imported) }
        #expect(Self.i32(imported, "facts") == Self.i32(ds, "facts"))
        #expect(Self.i64(imported, "offsets") == Self.i64(ds, "offsets"))
        var official: OpaquePointer? = nil
        #expect(bh_dataset_import_reference(Self.fixture("twotoken-s2000-r2-o10"), &official) == BH_OK, "\(Self.lastError)")
        defer { bh_dataset_free(official) }
        let info = try Self.info(official)
        #expect(info["counts"]?["subject_width"] == .int(2) && info["origin"] == .string("imported"))
    }

    @Test func badFilesReturnTheirStatus() throws {
        let dir = Self.tempDir()
        defer { Self.removeTree(dir) }
        var ds: OpaquePointer? = nil
        #expect(bh_dataset_load(dir + "/missing.h5", &ds) == BH_ERR_IO && ds == nil)
        #expect(Self.lastError.contains("no such file"))
        try FileSystem.writeText(dir + "/junk.h5", "junk")
        #expect(bh_dataset_load(dir + "/junk.h5", &ds) == BH_ERR_FORMAT)
        #expect(Self.lastError.contains("not an HDF5 file"))
        let good = Self.generate(#"{"preset": "tiny"}"#)
        defer { bh_dataset_free(good) }
        #expect(bh_dataset_save(good, dir + "/good.h5") == BH_OK)
        if let f = fopen(dir + "/good.h5", "rb"), let g = fopen(dir + "/cut.h5", "wb") {
            var buf = [UInt8](repeating: 0, count: 4000)
            let n = fread(&buf, 1, 4000, f)
            fwrite(&buf, 1, n, g)
            fclose(f); fclose(g)
        }
        #expect(bh_dataset_load(dir + "/cut.h5", &ds) == BH_ERR_FORMAT && ds == nil)
        #expect(Self.lastError.contains("truncated"), "\(Self.lastError)")
        try H5File.writeAtomically(dir + "/other.h5") { (f: H5File) throws(EngineError) in try f.write("weights", [Float(1)]) }
        #expect(bh_dataset_load(dir + "/other.h5", &ds) == BH_ERR_FORMAT)
        #expect(Self.lastError.contains("not a Behemoth file"))
        #expect(bh_dataset_save(good, "/nonexistent-folder/x.h5") == BH_ERR_IO)
        #expect(bh_dataset_import_reference(dir, &ds) == BH_ERR_FORMAT)
        #expect(Self.lastError.contains("args.json"))
        #expect(bh_dataset_import_reference(dir + "/nope", &ds) == BH_ERR_IO)
    }
}
