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
