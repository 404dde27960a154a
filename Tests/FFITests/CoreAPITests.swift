import Testing
import CBehemoth
@testable import BehemothFFI
@testable import Engine

@Suite struct CoreAPITests {
    @Test func versionMatchesHeader() {
        #expect(String(cString: bh_version()!) == BH_VERSION)
        #expect(Version.string == BH_VERSION)
        #expect(bh_abi_version() == BH_ABI_VERSION)
    }

    @Test func badThreadCountIsAnErrorWithMessage() {
        #expect(bh_set_num_threads(0) == BH_ERR_INVALID)
        #expect(String(cString: bh_last_error()!).contains("bh_set_num_threads"))
        #expect(bh_set_num_threads(2) == BH_OK)
        #expect(String(cString: bh_last_error()!) == "")
        #expect(String(cString: bh_status_str(BH_ERR_FORMAT)!) == "bad file format")
        #expect(String(cString: bh_status_str(12345)!) == "unknown status")
    }
}

@Suite struct RuntimeInfoTests {
    @Test func reportsCoreAndCPU() throws {
        var p: UnsafeMutablePointer<CChar>? = nil
        #expect(bh_runtime_info(&p) == BH_OK)
        let json = try JSON.parse(String(cString: p!), what: "runtime info")
        bh_string_free(p)
        guard case let .string(core)? = json["blas_core"] else { Issue.record("no blas_core"); return }
        #expect(!core.isEmpty)
        #expect(json["threads"] != nil)
        #expect(bh_runtime_info(nil) == BH_ERR_INVALID)
    }

    @Test func recommendsCoreByInstructionSet() {
        #expect(Runtime.recommendedCore(flags: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"]) == "SkylakeX")
        #expect(Runtime.recommendedCore(flags: ["avx2", "fma"]) == "Haswell")
        #expect(Runtime.recommendedCore(flags: ["sse2"]) == nil)
    }
}
