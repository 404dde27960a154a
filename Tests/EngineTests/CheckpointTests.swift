import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

@Suite struct CheckpointTests {
    let table = TensorTable([TensorEntry(name: "a.weight", offset: 0, shape: [2, 3]), TensorEntry(name: "a.bias", offset: 6, shape: [2])])

    func tempPath(_ name: String) -> String { "/tmp/bh-ckpt-\(getpid())-\(name).h5" }

    @Test func roundTripWithOptimizerAndHistory() throws {
        var c = Checkpoint(configJSON: #"{"layers":1}"#, table: table, weights: (0..<8).map { Float($0) })
        c.optimizerM = [Float](repeating: 0.5, count: 8)
        c.optimizerV = [Float](repeating: 0.25, count: 8)
        c.optimizerStep = 7
        c.trainerState = #"{"epoch":3}"#
        c.history.step = [1, 2]; c.history.loss = [2.5, 2.0]; c.history.learningRate = [1e-3, 1e-3]; c.history.gradNorm = [1, 0.5]
        c.history.recordEvaluation(step: 2, epoch: 1, accuracies: [("sro", 0.75)])
        c.history.recordDataset("xxh64:0123456789abcdef")
        c.history.recordDataset("xxh64:0123456789abcdef")
        let path = tempPath("rt")
        try c.save(path)
        defer { unlink(path) }
        let d = try Checkpoint.load(path) { (_: String) throws(EngineError) in table }
        #expect(d.weights == c.weights)
        #expect(d.optimizerM! == c.optimizerM!)
        #expect(d.optimizerStep == 7)
        #expect(d.trainerState == c.trainerState)
        #expect(d.history.loss == [2.5, 2.0])
        #expect(d.history.evalGroups == ["sro"])
        #expect(d.history.evalAccuracy == [0.75])
        #expect(d.history.datasets == ["xxh64:0123456789abcdef"], "each training dataset once")
    }

    @Test func shapeMismatchAndForeignFilesAreFormatErrors() throws {
        let c = Checkpoint(configJSON: "{}", table: table, weights: [Float](repeating: 1, count: 8))
        let path = tempPath("mismatch")
        try c.save(path)
        defer { unlink(path) }
        let other = TensorTable([TensorEntry(name: "a.weight", offset: 0, shape: [3, 2]), TensorEntry(name: "a.bias", offset: 6, shape: [2])])
        do { _ = try Checkpoint.load(path) { (_: String) throws(EngineError) in other }; Issue.record("expected error") } catch {
            #expect(error.status == .format)
            #expect(error.message.contains("a.weight"))
        }
        let foreign = tempPath("foreign")
        try H5File.writeAtomically(foreign) { (f: H5File) throws(EngineError) in try f.write("/x", [Float(1)]) }
        defer { unlink(foreign) }
        do { _ = try Checkpoint.load(foreign) { (_: String) throws(EngineError) in table }; Issue.record("expected error") } catch {
            #expect(error.status == .format)
            #expect(error.message.contains("not a Behemoth file"))
        }
        do { _ = try Checkpoint.load("/tmp/does-not-exist.h5") { (_: String) throws(EngineError) in table }; Issue.record("expected error") } catch {
            #expect(error.status == .io)
        }
    }
}
