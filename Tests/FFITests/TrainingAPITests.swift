import Testing
import CBehemoth
@testable import BehemothFFI
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct TrainingAPITests {
    static var lastError: String { String(cString: bh_last_error()!) }

    /// A run whose loss turns NaN stops with BH_ERR_NUMERIC and leaves the last checkpoint as it was.
    @Test func nanLossStopsTrainingAndKeepsTheLastCheckpoint() throws {
        var ds: OpaquePointer?, m: OpaquePointer?, t: OpaquePointer?
        #expect(bh_dataset_generate(#"{"preset": "tiny", "seed": 1}"#, &ds) == BH_OK)
        defer { bh_dataset_free(ds) }
        #expect(bh_model_create(#"{"preset": "tiny"}"#, ds, &m) == BH_OK)
        defer { bh_model_free(m) }
        let path = "/tmp/bh-nan-\(getpid()).h5"
        defer { unlink(path) }
        let spec = #"{"epochs": 4, "batch_size": 32, "eval_every_epochs": 1, "checkpoint_path": "\#(path)", "checkpoint_every_epochs": 1}"#
        #expect(bh_trainer_begin(m, ds, spec, &t) == BH_OK)
        defer { bh_trainer_free(t) }
        let session = try Handle.get(t, TrainingSession.self, "test")
        let perEpoch = session.trainer.batcher.batchesPerEpoch
        for _ in 0..<perEpoch { #expect(bh_trainer_step(t, nil) == BH_STEP) }   // one epoch: a checkpoint is written
        let atCheckpoint = Array(session.model.parameterBlock)
        _ = bh_trainer_step(t, nil)
        // Poison one weight: the next loss is NaN.
        session.model.parameterBlock[session.model.tensorTable.first { $0.name == "gpt_neox.final_layer_norm.weight" }!.offset] = .nan
        #expect(bh_trainer_step(t, nil) == BH_ERR_NUMERIC)
        #expect(Self.lastError.contains("loss became"))
        var loaded: OpaquePointer?
        #expect(bh_model_load(path, &loaded) == BH_OK)
        defer { bh_model_free(loaded) }
        let lm = try Handle.get(loaded, LanguageModel.self, "test")
        #expect(Array(lm.parameterBlock) == atCheckpoint)
        #expect(lm.history.evalStep.count == 1)
    }

    @Test func badTrainingAndModelInputAreErrors() {
        var ds: OpaquePointer?, m: OpaquePointer?, t: OpaquePointer?
        #expect(bh_dataset_generate(#"{"preset": "tiny"}"#, &ds) == BH_OK)
        defer { bh_dataset_free(ds) }
        #expect(bh_model_create(#"{"preset": "tiny", "hidden": 65}"#, ds, &m) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("hidden"))
        #expect(m == nil)
        #expect(bh_model_create(#"{"preset": "tiny", "layers": 0}"#, ds, &m) == BH_ERR_INVALID)
        #expect(bh_model_create(#"{"preset": "tiny", "vocab_size": 10}"#, ds, &m) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("vocabulary"))
        #expect(bh_model_create(#"{"preset": "tiny"}"#, ds, &m) == BH_OK)
        defer { bh_model_free(m) }
        #expect(bh_trainer_begin(m, ds, #"{"learning_rate": NaN}"#, &t) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("learning_rate"))
        #expect(t == nil)
        #expect(bh_trainer_begin(m, ds, #"{"epochs": 0}"#, &t) == BH_ERR_INVALID)
        #expect(bh_trainer_begin(m, m, "{}", &t) == BH_ERR_INVALID)          // a model where a dataset belongs
        #expect(Self.lastError.contains("not a"))
        var prompt: [Int32] = [3, 99_999], offsets: [Int64] = [0, 2], out: [Int32] = [0]
        var count: Int64 = 0
        #expect(bh_model_predict(m, &prompt, &offsets, 1, &out, 1, &count) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("99999"))
        #expect(bh_trainer_step(nil, nil) == BH_ERR_INVALID)
        // An edit set of another dataset (whose tokens would fit the model's vocabulary) is refused.
        var other: OpaquePointer?, es: OpaquePointer?, e: OpaquePointer?
        #expect(bh_dataset_generate(#"{"preset": "tiny", "subjects": 40, "objects": 6}"#, &other) == BH_OK)
        defer { bh_dataset_free(other) }
        #expect(bh_editset_create(other, #"{"repeats": 5}"#, &es) == BH_OK)
        defer { bh_editset_free(es) }
        #expect(bh_edit_begin(m, es, "{}", &e) == BH_ERR_INVALID)
        #expect(Self.lastError.contains("different dataset"))
        #expect(e == nil)
        bh_trainer_free(nil)
        bh_model_free(nil)
    }
}
