import Testing
@testable import Engine

/// ROME against an independent PyTorch implementation of the reference's formulas
/// (tools/make_rome_fixture.py → Tests/Fixtures/parity/rome.h5), on the parity fixture's model.
@Suite(.serialized) struct ROMETests {
    struct Loaded {
        let model: LanguageModel
        let f: H5File
        let request: ROMERequest
        let prefixes: [[Int32]]
        let block: Int
    }

    static func load() throws -> Loaded {
        let p = try H5File.open(Fixture.path("parity_parallel.h5"))
        defer { p.close() }
        let cfg = try ModelConfig(text: try p.stringAttribute("config"))
        let m = try LanguageModel(config: cfg)
        for e in m.tensorTable { try m.net.params.set(e.name, try p.read("/weights/\(e.name)", as: Float.self).data) }
        let f = try H5File.open(Fixture.path("rome.h5"))
        func ints(_ n: String) throws -> [Int32] { try f.read(n, as: Int32.self).data }
        let l = try ints("/request/lookup")
        let request = ROMERequest(prompt: try ints("/request/prompt"), lookup: Int(l[0]), target: l[1],
                                  essence: try ints("/request/essence"), essenceLookup: Int(l[2]))
        let pt = try ints("/request/prefixes/tokens"), po = try f.read("/request/prefixes/offsets", as: Int64.self).data
        let prefixes = (0..<(po.count - 1)).map { Array(pt[Int(po[$0])..<Int(po[$0 + 1])]) }
        return Loaded(model: m, f: f, request: request, prefixes: prefixes, block: Int(try f.intAttribute("block")))
    }

    func floats(_ f: H5File, _ n: String) throws -> [Float] { try f.read(n, as: Float.self).data }

    func relErr(_ a: [Double], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (x - y) * (x - y); den += y * y }
        return (num / max(den, 1e-300)).squareRoot()
    }

    @Test func keyStatisticsKeyDirectionVStarAndUpdateMatchTheReference() throws {
        let L = try Self.load()
        defer { L.f.close() }
        let m = L.model, f = L.f
        // C over every position of the sentences
        let tokens = try f.read("/sentences/tokens", as: Int32.self).data, offsets = try f.read("/sentences/offsets", as: Int64.self).data
        let stats = try KeyStatistics.compute(model: m, tokens: tokens, offsets: offsets, blocks: [L.block], datasetDigest: "fixture")[0]
        let refC = try f.read("/stats/moment", as: Double.self).data
        #expect(stats.positions == Int(offsets.last!))
        #expect(relErr(stats.moment, refC) < 1e-5, "C: \(relErr(stats.moment, refC))")
        #expect(stats.rank == 64)
        // k̄ and u
        let kbar = try ROME.meanKey(m, block: L.block, request: L.request, prefixes: L.prefixes)
        #expect(relError(kbar, try floats(f, "/u/kbar")) < 1e-5)
        let u = try ROME.direction(kbar, statistics: stats, inverse: .exact, strength: 0)
        let refU = try floats(f, "/u/u")
        #expect(relError(u, refU) < 1e-4, "u: \(relError(u, refU))")
        // v* after the reference's iterations from δ₀
        var settings = VStarSettings()
        settings.steps = Int(try f.intAttribute("steps"))
        let v = try ROME.computeV(m, block: L.block, request: L.request, prefixes: L.prefixes, settings: settings,
                                  delta0: try floats(f, "/vstar/delta0"))
        let refLosses = try floats(f, "/vstar/losses")
        #expect(v.losses.count * 4 == refLosses.count)
        for (i, l) in v.losses.enumerated() {
            let ref = Array(refLosses[(4 * i)..<(4 * i + 4)])
            #expect(relError([l.total, l.nll, l.kl, l.decay], ref) < 1e-4, "iteration \(i): \([l.total, l.nll, l.kl, l.decay]) vs \(ref)")
        }
        #expect(relError(v.targetInit, try floats(f, "/vstar/target_init")) < 1e-5)
        let refDelta = try floats(f, "/vstar/delta")
        #expect(relError(v.delta, refDelta) < 1e-4, "δ: \(relError(v.delta, refDelta))")
        #expect(relError(v.vStar, try floats(f, "/vstar/vstar")) < 1e-4)
        // the rank-one update, from the reference's u and v*
        let up = try ROME.update(m, block: L.block, request: L.request, u: try floats(f, "/u/u"), vStar: try floats(f, "/vstar/vstar"))
        #expect(relError(up.kStar, try floats(f, "/update/kstar")) < 1e-5)
        #expect(relError(up.current, try floats(f, "/update/current")) < 1e-5)
        let refW = try floats(f, "/update/delta_w")
        #expect(relError(up.delta, refW) < 1e-4, "ΔW: \(relError(up.delta, refW))")
    }

    @Test func theUpdateIsRankOneAndWritesVStar() throws {
        let L = try Self.load()
        defer { L.f.close() }
        let m = L.model, f = L.f
        let vStar = try floats(f, "/vstar/vstar")
        let up = try ROME.update(m, block: L.block, request: L.request, u: try floats(f, "/u/u"), vStar: vStar)
        let D = m.config.hidden, I = m.config.intermediate
        let s = try LinearAlgebra.svd(up.delta, rows: D, cols: I, vectors: false).s
        #expect(s[1] <= 1e-6 * s[0], "singular values \(s.prefix(3))")
        // W_new k* + b = v*
        let name = "gpt_neox.layers.\(L.block).mlp.dense_4h_to_h.weight"
        let e = m.tensorTable[name]!
        let w = m.parameterBlock.baseAddress! + e.offset
        for i in 0..<e.count { w[i] += up.delta[i] }
        let after = try ROME.vectors(m, block: L.block, site: .mlpOutput, prompts: [L.request.prompt], lookups: [L.request.lookup])[0]
        #expect(relError(after, vStar) < 1e-5, "W_new k* + b vs v*: \(relError(after, vStar))")
    }
}
