import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Effective rank under every definition: known synthetic ranks, real LoRA and ROME deltas, the
/// rank file, and bad input.
@Suite struct RankTests {
    func analyse(_ m: [Float], _ r: Int, _ c: Int) throws -> RankAnalysis {
        try m.withUnsafeBufferPointer { try analyseRank($0, rows: r, cols: c) }
    }

    @Test func syntheticMatricesOfKnownRank() throws {
        var rng = RNG(seed: 5)
        for k in [1, 3, 7] {
            // a rank-k product U[30, k]·V[k, 20]
            let u = (0..<(30 * k)).map { _ in Float(rng.normal()) }, v = (0..<(k * 20)).map { _ in Float(rng.normal()) }
            var m = [Float](repeating: 0, count: 600)
            for i in 0..<30 { for j in 0..<20 { for t in 0..<k { m[i * 20 + j] += u[i * k + t] * v[t * 20 + j] } } }
            let r = try analyse(m, 30, 20)
            #expect(r.numericalRank == k)
            #expect(r.singularValues[k...].allSatisfy { $0 < 1e-4 * r.singularValues[0] })
            #expect(r.energyRank90 <= k && r.energyRank99 <= k)
            #expect(r.effectiveRank <= Double(k) + 1e-3 && r.stableRank <= Double(k) + 1e-3)
        }
        // the identity: every definition gives its size; a rank-one matrix gives 1 under every definition
        var eye = [Float](repeating: 0, count: 64)
        for i in 0..<8 { eye[i * 8 + i] = 1 }
        let e = try analyse(eye, 8, 8)
        #expect(abs(e.effectiveRank - 8) < 1e-4 && abs(e.stableRank - 8) < 1e-4)
        #expect(e.energyRank90 == 8 && e.energyRank99 == 8 && e.numericalRank == 8)
        let one = try analyse((0..<12).map { Float(($0 / 4) + 1) * Float(($0 % 4) - 1) }, 3, 4)
        #expect(one.numericalRank == 1 && one.energyRank90 == 1 && abs(one.effectiveRank - 1) < 1e-3 && abs(one.stableRank - 1) < 1e-4)
        // a spectrum 3, 1, 1, 1 (diagonal): energy 9 of 12 → 90% needs 3 values, entropy rank exp(H(½, ⅙, ⅙, ⅙))
        var d = [Float](repeating: 0, count: 16)
        d[0] = 3; d[5] = 1; d[10] = 1; d[15] = 1
        let s = try analyse(d, 4, 4)
        #expect(s.energyRank90 == 4 - 1 && s.energyRank99 == 4)
        let h = -(0.5 * log(0.5) + 3 * (1.0 / 6) * log(1.0 / 6))
        #expect(abs(s.effectiveRank - exp(h)) < 1e-5 && abs(s.stableRank - 12.0 / 9) < 1e-5)
    }

    @Test func loraAndROMEDeltasAndTheRankFile() throws {
        let (ds, m) = try TinyRun.trained()
        let es = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "relation": 0, "count": 1, "seed": 2}"#), facts: ds.factView())
        let dir = DataTest.tempDir("rank")
        defer { DataTest.removeTree(dir) }
        for (method, bound) in [(#"{"method": "lora", "rank": 4, "layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"epochs": 5}}"#, 4),
                                (#"{"method": "rome"}"#, 1)] {
            let model = try m.clone()
            let spec = try EditMethodSpec(json: method, layers: model.config.layers)
            let ex = try EditExperiment(model: model, editSet: es, facts: ds.factView(), method: spec, dataset: ds)
            while try ex.step() != nil {}
            let result = try ex.finish()
            let fromEdit = try RankReport.edit(result, method: spec.method)
            let fromModels = try RankReport.models(m, model)
            #expect(!fromEdit.entries.isEmpty)
            for e in fromEdit.entries { #expect(e.rank.numericalRank <= bound, "\(spec.method) \(e.name): \(e.rank.numericalRank)") }
            #expect(fromModels.entries.map { $0.name } == fromEdit.entries.map { $0.name })
            let path = "\(dir)/\(spec.method).h5"
            try fromEdit.save(path)
            _ = try BehemothFile.verify(path)
            let f = try H5File.open(path)
            defer { f.close() }
            let names: String = try f.stringAttribute("names", at: "/table")
            #expect(names.contains(fromEdit.entries[0].name))
            #expect(try f.read("/table/numerical_rank", as: Double.self).data.allSatisfy { $0 <= Double(bound) })
        }
    }

    @Test func badInputIsAnError() throws {
        let (ds, m) = try TinyRun.trained()
        var cfg = m.config
        cfg.hidden = 2 * cfg.hidden
        let other = try LanguageModel(config: cfg)
        #expect(throws: EngineError.self) { _ = try RankReport.models(m, other) }
        #expect(throws: EngineError.self) { _ = try analyse([1, 2, 3], 2, 2) }
        #expect(throws: EngineError.self) { _ = try analyse([1, .nan, 3, 4], 2, 2) }
        #expect(throws: EngineError.self) { _ = try RankReport(deltas: [("w", [2, 2], [1, 2, 3])], source: .null) }
        _ = ds
    }
}
