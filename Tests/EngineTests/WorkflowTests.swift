import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// The workflow lives in Engine: resuming training, a capacity probe, a sequential edit and an
/// evaluation report, with no C layer (this test target links Engine only).
@Suite(.serialized) struct WorkflowTests {
    @Test func resumedTrainingEqualsAnUninterruptedRun() throws {
        let ds = try TinyRun.dataset()
        let dir = DataTest.tempDir("workflow")
        defer { DataTest.removeTree(dir) }
        let spec = try TrainSpec(json: #"{"epochs": 4, "batch_size": 32, "learning_rate": 0.003, "eval_every_epochs": 2}"#)
        let whole = try TinyRun.model(ds)
        let a = try TrainingSession(model: whole, dataset: ds, spec: spec)
        try a.run()

        let first = try TinyRun.model(ds)
        let b = try TrainingSession(model: first, dataset: ds, spec: spec)
        for _ in 0..<(b.trainer.totalSteps / 2) { _ = try b.step() }
        try b.save("\(dir)/half.h5")
        _ = b.end()
        #expect(throws: EngineError.self) { try b.step() }   // ended: misuse, not more training

        var resumed = spec
        resumed.resumeFrom = "\(dir)/half.h5"
        let second = try TinyRun.model(ds)
        for i in 0..<second.parameterBlock.count { second.parameterBlock[i] = 0.5 }   // the checkpoint replaces them
        let c = try TrainingSession(model: second, dataset: ds, spec: resumed)
        try c.run()
        #expect(Array(second.parameterBlock) == Array(whole.parameterBlock))
        #expect(second.history.loss == whole.history.loss)
        let report = c.end()
        #expect(report["finished"]?.serialized() == "true" && report["steps"]?.serialized() == "\(a.trainer.stepsTaken)")
    }

    @Test func aCapacityProbeTrainsAndMeasures() throws {
        let run = try CapacitySearchRun(json: #"{"dataset": {"preset": "tiny", "seed": 1}, "model": {"preset": "tiny"}, "training": {"epochs": 2, "batch_size": 32}, "search": {"min_subjects": 8, "max_subjects": 16}}"#)
        let (accuracy, details) = try run.probe(subjects: 8)
        #expect(accuracy >= 0 && accuracy <= 1)
        #expect(details["facts"]?.serialized() == "24")
        #expect(throws: EngineError.self) { try CapacitySearchRun(json: #"{"search": {"min_subjects": 9, "max_subjects": 8}}"#) }
    }

    @Test func aSequentialEditAndAnEvaluationReport() throws {
        let (ds, m) = try TinyRun.trained()
        let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "diverse", "count": 2, "relation": 1, "seed": 3}"#), facts: ds.factView())
        let method = try EditMethodSpec(json: #"{"method": "full", "mode": "sequential", "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"learning_rate": 0.002, "epochs": 5}}"#, layers: m.config.layers)
        let x = try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: method)
        var steps = 0
        while try x.step() != nil { steps += 1 }
        let r = try x.finish()
        #expect(steps == x.totalSteps && steps > 0)
        #expect(r.metrics.contains { $0.name == "edit_success" })
        let report = try Evaluation.run(m, ds, spec: try EvaluationSpec(json: #"{"groups": ["sro"]}"#, dataset: ds))
        #expect(report["groups"]?["sro"]?["accuracy"] != nil)
        #expect(throws: EngineError.self) { try EvaluationSpec(json: #"{"groups": ["sro"], "colour": 1}"#, dataset: ds) }
    }
}
