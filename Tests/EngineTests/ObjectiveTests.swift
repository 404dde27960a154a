import Testing
@testable import Engine

/// Objectives (weighted NLL, KL, sums, a caller's d loss / d logits) and gradients injected at hook
/// points: central finite differences in float32 on the tiny model of ModelGradCheckTests (same eps
/// and tolerance), the cross-entropy default bit-identical to the old path, errors thrown.
@Suite struct ObjectiveTests {
    let b = 3, t = 5, vocab = 23

    /// Checks `m.grads` (filled by `run`) against central differences of `loss` on the two
    /// largest-gradient coordinates and one random coordinate of every tensor; tensors whose gradient
    /// is all zero get one random coordinate checked to be flat. Returns the worst relative difference.
    @discardableResult
    func gradCheck(_ m: GPTNeoX, _ what: String, run: () throws -> Void, loss: () throws -> Double) throws -> Double {
        m.zeroGrad()
        try run()
        let eps: Float = 1e-2
        var rng = RNG(seed: 17)
        var worst = 0.0
        for (k, info) in m.table.tensors.enumerated() {
            let g = Array(m.grads.view(k))
            let p = m.params.view(k)
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            let coords = g[order[0]] == 0 ? [rng.below(g.count)] : [order[0], order[1], rng.below(g.count)]
            for i in coords {
                let saved = p[i]
                p[i] = saved + eps
                let lp = try loss()
                p[i] = saved - eps
                let lm = try loss()
                p[i] = saved
                let fd = (lp - lm) / Double(2 * eps)
                let an = Double(g[i])
                let tol = 0.02 * abs(an) + 3e-4
                #expect(abs(fd - an) <= tol, "\(what): \(info.name)[\(i)]: finite difference \(fd) vs backward \(an)")
                worst = max(worst, abs(fd - an) / max(abs(an), 1e-6))
            }
        }
        return worst
    }

    func setup(parallel: Bool = true, seed: UInt64 = 5) throws -> (GPTNeoX, [Int32], [Int32]) {
        let m = try tinyModel(vocab: vocab, parallel: parallel, batch: b, seq: t, seed: seed)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 3)
        var targets = randomTokens(b * t, vocab: vocab, seed: 4)
        targets[7] = -100; targets[14] = -1
        return (m, tokens, targets)
    }

    func uniform(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
        var r = RNG(seed: seed)
        return (0..<n).map { _ in Float((r.uniform() * 2 - 1) * scale) }
    }

    /// Checks an objective's gradient against finite differences of its value.
    func checkObjective(_ objective: Objective, _ what: String, parallel: Bool = true) throws {
        let (m, tokens, targets) = try setup(parallel: parallel)
        let worst = try gradCheck(m, what, run: {
            try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: objective)
            try m.backward()
        }, loss: {
            Double(try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: objective).total)
        })
        print("objective gradcheck \(what) parallel=\(parallel): worst relative diff \(worst)")
    }

    @Test(arguments: [true, false])
    func weightedNLLWithMixedSigns(parallel: Bool) throws {
        let w = uniform(b * t, seed: 21)
        #expect(w.contains { $0 < 0 } && w.contains { $0 > 0 })
        try checkObjective(Objective([.tokenNLL(weights: w)]), "weighted NLL", parallel: parallel)
        try checkObjective(Objective([.tokenNLL(weights: w, normalizer: 2.5)]), "weighted NLL / 2.5", parallel: parallel)
    }

    @Test func negatedLossIsGradientAscent() throws {
        let (m, tokens, targets) = try setup()
        let ce = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        let gce = m.grads.storage.toArray()
        let minus = Objective([.tokenNLL(weights: [Float](repeating: -1, count: b * t))])
        let v = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: minus)
        m.zeroGrad(); try m.backward()
        #expect(abs(v.total + ce) <= 1e-5 * abs(ce))
        #expect(relError(m.grads.storage.toArray(), gce.map { -$0 }) < 1e-5)
        // all-one weights are the cross-entropy
        let plus = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t,
                                 objective: Objective([.tokenNLL(weights: [Float](repeating: 1, count: b * t))]))
        #expect(abs(plus.total - ce) <= 1e-5 * abs(ce))
        try checkObjective(minus, "negated NLL")
    }

    func klTerm(_ direction: KLDirection, logits: Bool, weight: Float = 0.7) -> Objective.Term {
        let positions = [(b: 0, t: 4), (b: 2, t: 1), (b: 1, t: 2)]
        var q = uniform(positions.count * vocab, seed: 31, scale: 2)
        if !logits {
            for i in 0..<positions.count {
                let lse = Float(GPTNeoX.logSumExp(q[(i * vocab)..<((i + 1) * vocab)]))
                for j in 0..<vocab { q[i * vocab + j] -= lse }
            }
        }
        return .kl(positions: positions, reference: logits ? .logits(q) : .logProbs(q), weight: weight, direction: direction)
    }

    @Test(arguments: [KLDirection.modelToReference, .referenceToModel])
    func klTermToReference(direction: KLDirection) throws {
        try checkObjective(Objective([klTerm(direction, logits: true)]), "KL \(direction.rawValue)")
        try checkObjective(Objective([klTerm(direction, logits: false)]), "KL \(direction.rawValue) log-probs", parallel: false)
        // logits and log-probs give the same term
        let (m, tokens, targets) = try setup()
        let a = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: Objective([klTerm(direction, logits: true)]))
        let c = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: Objective([klTerm(direction, logits: false)]))
        #expect(abs(a.total - c.total) <= 1e-5 * abs(a.total) && a.total > 0)
    }

    @Test func klToTheModelItselfIsZero() throws {
        let (m, tokens, _) = try setup()
        try m.forward(tokens: tokens, batch: b, seq: t)
        let positions = [(b: 1, t: 3), (b: 2, t: 0)]
        var ref: [Float] = []
        for p in positions { ref += Array(m.logits[((p.b * t + p.t) * vocab)..<((p.b * t + p.t + 1) * vocab)]) }
        for d in [KLDirection.modelToReference, .referenceToModel] {
            try m.forward(tokens: tokens, batch: b, seq: t)
            let v = try m.applyObjective(Objective([.kl(positions: positions, reference: .logits(ref), direction: d)]))
            #expect(abs(v.total) < 1e-6)
            #expect(m.logits.allSatisfy { abs($0) < 1e-6 })
        }
    }

    @Test(arguments: [true, false])
    func sumOfTerms(parallel: Bool) throws {
        let w = uniform(b * t, seed: 22)
        let terms: [Objective.Term] = [.crossEntropy, .tokenNLL(weights: w, normalizer: 4),
                                       klTerm(.modelToReference, logits: true, weight: 0.0625), klTerm(.referenceToModel, logits: true, weight: 2)]
        try checkObjective(Objective(terms), "CE + weighted NLL + two KL", parallel: parallel)
        // the total is the sum of the terms, each as if alone
        let (m, tokens, targets) = try setup(parallel: parallel)
        let v = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: Objective(terms))
        #expect(v.terms.count == 4)
        for (k, term) in terms.enumerated() {
            let alone = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: Objective([term]))
            #expect(abs(alone.total - v.terms[k]) <= 1e-6 * max(1, abs(alone.total)), "term \(k)")
        }
        #expect(abs(v.total - v.terms.reduce(0, +)) <= 1e-5)
        // the NPO hook: per-position NLL readable after the objective
        let nll = Array(m.positionLoss)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        #expect(relError(nll, Array(m.positionLoss)) < 1e-6)
        #expect(nll[7] == 0 && nll[14] == 0)
    }

    @Test func callerLogitsGradient() throws {
        // f(logits) = ½ Σ c·z², d f / d z = c·z
        let (m, tokens, _) = try setup()
        let c = uniform(b * t * vocab, seed: 41, scale: 0.05)
        func f() throws -> Double {
            try m.forward(tokens: tokens, batch: b, seq: t)
            var s = 0.0
            for (i, z) in m.logits.enumerated() { s += 0.5 * Double(c[i]) * Double(z) * Double(z) }
            return s
        }
        try gradCheck(m, "caller dlogits", run: {
            try m.forward(tokens: tokens, batch: b, seq: t)
            let z = Array(m.logits)
            try m.backward(dLogits: (0..<z.count).map { c[$0] * z[$0] })
        }, loss: f)
    }

    /// A representation loss at two sites: Σ d·h₁ + ½ α‖h₂‖², optionally plus cross-entropy.
    func checkInjection(_ p1: HookPoint, _ p2: HookPoint, parallel: Bool, withLogits: Bool) throws {
        let (m, tokens, targets) = try setup(parallel: parallel, seed: 6)
        let w1 = p1.site == .mlpHidden ? 32 : 16, w2 = p2.site == .mlpHidden ? 32 : 16
        let d = uniform(b * t * w1, seed: 51)
        let alpha: Float = 0.3
        let tg: [Int32]? = withLogits ? targets : nil
        func rep() -> Double {
            let h1 = m.activation(at: p1).toArray(), h2 = m.activation(at: p2).toArray()
            var s = 0.0
            for i in 0..<h1.count { s += Double(d[i]) * Double(h1[i]) }
            for x in h2 { s += 0.5 * Double(alpha) * Double(x) * Double(x) }
            return s
        }
        let what = "inject \(p1.site.rawValue) \(p1.layer) + \(p2.site.rawValue) \(p2.layer) parallel=\(parallel) logits=\(withLogits)"
        try gradCheck(m, what, run: {
            try m.forward(tokens: tokens, targets: tg, batch: b, seq: t)
            let h2 = m.activation(at: p2).toArray()
            try m.backward(injecting: [p1: d, p2: h2.map { alpha * $0 }])
        }, loss: {
            let ce = try m.forward(tokens: tokens, targets: tg, batch: b, seq: t)
            return rep() + (withLogits ? Double(ce) : 0)
        })
        if !withLogits {
            // nothing above the highest site gets a gradient (the final LayerNorm does from an injection at its output)
            let above = [p1, p2].contains { $0.site == .finalNorm } ? [m.table.embedOut] : [m.table.embedOut, m.table.finalLnW, m.table.finalLnB]
            for k in above { #expect(m.grads.view(k).allSatisfy { $0 == 0 }) }
        }
    }

    static let sitePairs: [(HookPoint, HookPoint)] = [
        (HookPoint(.blockOutput, layer: 1), HookPoint(.mlpHidden, layer: 0)),
        (HookPoint(.attnOutput, layer: 1), HookPoint(.mlpOutput, layer: 0)),
        (HookPoint(.attnInput, layer: 0), HookPoint(.mlpInput, layer: 1)),
        (HookPoint(.blockInput, layer: 1), HookPoint(.embeddings)),
        (HookPoint(.blockOutput, layer: 0), HookPoint(.blockInput, layer: 1)),  // one tensor, two names
        (HookPoint(.mlpOutput, layer: 1), HookPoint(.attnOutput, layer: 1)),
        (HookPoint(.finalNorm), HookPoint(.mlpHidden, layer: 0)),
        (HookPoint(.blockOutput, layer: 1), HookPoint(.finalNorm)),
    ]

    @Test(arguments: [true, false])
    func activationGradientsInjectedAtTwoSites(parallel: Bool) throws {
        for (p1, p2) in Self.sitePairs {
            for withLogits in [false, true] { try checkInjection(p1, p2, parallel: parallel, withLogits: withLogits) }
        }
    }

    @Test func injectionOnlyReachesBelowItsSiteAndIsCaptured() throws {
        let (m, tokens, _) = try setup(seed: 7)
        let p = HookPoint(.blockOutput, layer: 0)
        try m.captureGradients(at: [p, HookPoint(.blockInput, layer: 1), HookPoint(.mlpOutput, layer: 0), HookPoint(.blockOutput, layer: 1)])
        let g = uniform(b * t * 16, seed: 61)
        try m.forward(tokens: tokens, batch: b, seq: t)
        m.zeroGrad()
        try m.backward(injecting: [p: g])
        #expect(m.activationGradient(at: p)!.toArray() == g)
        #expect(m.activationGradient(at: HookPoint(.mlpOutput, layer: 0))!.toArray() == g)
        // block 1's input is the same tensor, but its hook runs after block 0's output hook: downstream
        #expect(m.activationGradient(at: HookPoint(.blockInput, layer: 1))!.toArray().allSatisfy { $0 == 0 })
        for (k, info) in m.table.tensors.enumerated() {
            let zero = m.grads.view(k).allSatisfy { $0 == 0 }
            let above = info.layer == 1 || [m.table.embedOut, m.table.finalLnW, m.table.finalLnB].contains(k)
            #expect(zero == above, "\(info.name)")
        }
        // and the other way round
        try m.backward(injecting: [HookPoint(.blockInput, layer: 1): g])
        #expect(m.activationGradient(at: HookPoint(.blockInput, layer: 1))!.toArray() == g)
        #expect(m.activationGradient(at: p)!.toArray() == g)
    }

    @Test func capturedGradientWithInjectionMatchesFiniteDifferenceOfADelta() throws {
        // loss = CE + Σ d·mlp_out(1); its gradient at block 0's output, against a delta added there
        let (m, tokens, targets) = try setup(seed: 8)
        let site = HookPoint(.mlpOutput, layer: 1), below = HookPoint(.blockOutput, layer: 0)
        let d = uniform(b * t * 16, seed: 71)
        try m.captureGradients(at: [below])
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward(injecting: [site: d])
        let g = try m.activationGradient(at: below)!.rowArray(1, 2)
        func loss(_ hooks: ForwardHooks) throws -> Float {
            let ce = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, hooks: hooks)
            return ce + zip(d, m.activation(at: site).toArray()).map { $0 * $1 }.reduce(0, +)
        }
        let eps: Float = 1e-2
        for j in [0, 7, 13] {
            var delta = [Float](repeating: 0, count: 16)
            delta[j] = eps
            let hp = ForwardHooks(); hp.addDelta(.blockOutput, layer: 0, at: [(1, 2)], delta: delta)
            delta[j] = -eps
            let hm = ForwardHooks(); hm.addDelta(.blockOutput, layer: 0, at: [(1, 2)], delta: delta)
            let fd = (try loss(hp) - loss(hm)) / (2 * eps)
            #expect(abs(fd - g[j]) <= 0.02 * abs(g[j]) + 3e-4, "d loss / d block_output[\(j)]: fd \(fd) vs \(g[j])")
        }
    }

    /// Against PyTorch (tools/make_objective_fixture.py) on the parity fixture's model and batch.
    @Test func weightedAndKLObjectivesMatchTransformers() throws {
        let L = try ModelParityTests.load("parity_parallel.h5")
        let m = L.model
        let f = try H5File.open(Fixture.path("objectives.h5"))
        func floats(_ p: String) throws -> [Float] { try f.read(p, as: Float.self).data }
        func positions(_ p: String) throws -> [(b: Int, t: Int)] {
            let d = try f.read(p, as: Int32.self).data
            return stride(from: 0, to: d.count, by: 2).map { (b: Int(d[$0]), t: Int(d[$0 + 1])) }
        }
        let kw = try floats("/kl_sum/kl_weights")
        let cases: [(String, Objective)] = [
            ("weighted_nll", Objective([.tokenNLL(weights: try floats("/weighted_nll/weights"))])),
            ("kl_sum", Objective([
                .tokenNLL(weights: try floats("/kl_sum/weights"), normalizer: 1),
                .kl(positions: try positions("/kl_sum/positions1"), reference: .logits(try floats("/kl_sum/reference1_logits")),
                    weight: kw[0], direction: .modelToReference),
                .kl(positions: try positions("/kl_sum/positions2"), reference: .logProbs(try floats("/kl_sum/reference2_logprobs")),
                    weight: kw[1], direction: .referenceToModel),
            ])),
        ]
        for (name, objective) in cases {
            let v = try m.forward(tokens: L.ids, targets: L.targets, batch: L.b, seq: L.t, objective: objective)
            m.zeroGrad()
            try m.backward()
            let refTerms = try floats("/\(name)/terms")
            #expect(relError([v.total], try floats("/\(name)/loss")) < 1e-5, "\(name): loss \(v.total)")
            #expect(relError(v.terms, refTerms) < 1e-5, "\(name): terms \(v.terms) vs \(refTerms)")
            var worst = 0.0, worstName = ""
            for (k, info) in m.table.tensors.enumerated() {
                let e = relError(Array(m.grads.view(k)), try floats("/\(name)/grads/\(info.name)"))
                #expect(e < 1e-5, "\(name): grad \(info.name): rel err \(e)")
                if e > worst { worst = e; worstName = info.name }
            }
            print("objective parity \(name): loss \(v.total), worst gradient rel err \(worst) (\(worstName))")
        }
    }

    @Test func crossEntropyDefaultIsBitIdentical() throws {
        let (m, tokens, targets) = try setup()
        // fused (the trainer's path)
        let l1 = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, fuseLossGradient: true)
        m.zeroGrad(); try m.backward()
        let g1 = m.grads.storage.toArray()
        let v1 = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: .crossEntropy)
        m.zeroGrad(); try m.backward()
        #expect(v1.total == l1 && v1.terms == [l1])
        #expect(m.grads.storage.toArray() == g1)
        // unfused
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad(); try m.backward()
        let g2 = m.grads.storage.toArray()
        let l2 = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        let v2 = try m.applyObjective(.crossEntropy)
        m.zeroGrad(); try m.backward()
        #expect(m.grads.storage.toArray() == g2)
        #expect(abs(v2.total - l2) <= 1e-6 * l2)
        // LanguageModel
        var c = ModelConfig.preset("tiny")!
        c.vocabSize = vocab
        let lm = try LanguageModel(config: c, batch: b, seq: t)
        let old = try tokens.withUnsafeBufferPointer { tp in
            try targets.withUnsafeBufferPointer { gp in try lm.lossAndGradients(inputs: tp.baseAddress!, targets: gp.baseAddress!, rows: b, width: t) }
        }
        let gOld = Array(lm.gradientBlock)
        let new = try tokens.withUnsafeBufferPointer { tp in
            try targets.withUnsafeBufferPointer { gp in
                try lm.lossAndGradients(inputs: tp.baseAddress!, targets: gp.baseAddress!, rows: b, width: t, objective: .crossEntropy)
            }
        }
        #expect(new.total == old)
        #expect(Array(lm.gradientBlock) == gOld)
    }

    @Test func languageModelObjectiveWithInjection() throws {
        var c = ModelConfig.preset("tiny")!
        c.vocabSize = vocab
        let lm = try LanguageModel(config: c, batch: b, seq: t)
        let (_, tokens, targets) = try setup()
        let p = HookPoint(.mlpOutput, layer: 0)
        let objective = Objective([.tokenNLL(weights: uniform(b * t, seed: 81)), klTerm(.modelToReference, logits: true)])
        let value = try tokens.withUnsafeBufferPointer { tp in
            try targets.withUnsafeBufferPointer { gp in
                try lm.lossAndGradients(inputs: tp.baseAddress!, targets: gp.baseAddress!, rows: b, width: t, objective: objective) { net in
                    [p: net.activation(at: p).toArray()]  // ½‖h‖²
                }
            }
        }
        let g = Array(lm.gradientBlock)
        let m = lm.net
        let v2 = try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, objective: objective)
        m.zeroGrad()
        try m.backward(injecting: [p: m.activation(at: p).toArray()])
        #expect(v2.total == value.total)
        #expect(m.grads.storage.toArray() == g)
    }

    @Test func backwardMistakesThrow() throws {
        let (m, tokens, _) = try setup()
        let n = b * t
        // before any forward pass
        #expect(throws: EngineError.self) { try m.backward(dLogits: [Float](repeating: 0, count: n * vocab)) }
        try m.forward(tokens: tokens, batch: b, seq: t)
        // injections: a block the model lacks, a wrong size
        #expect(throws: EngineError.self) { try m.backward(injecting: [HookPoint(.blockOutput, layer: 2): [Float](repeating: 0, count: n * 16)]) }
        #expect(throws: EngineError.self) { try m.backward(injecting: [HookPoint(.mlpHidden, layer: 0): [Float](repeating: 0, count: n * 16)]) }
        #expect(throws: EngineError.self) { try m.backward(dLogits: [Float](repeating: 0, count: n)) }
        #expect(throws: EngineError.self) { try m.backward() }  // no targets, nothing to start from
    }

    @Test func objectiveMistakesThrow() throws {
        let (m, tokens, targets) = try setup()
        let n = b * t
        #expect(throws: EngineError.self) { try m.applyObjective(.crossEntropy) }  // before any forward pass
        try m.forward(tokens: tokens, batch: b, seq: t)
        // NLL terms need targets
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.tokenNLL(weights: [Float](repeating: 1, count: n))])) }
        #expect(throws: EngineError.self) { try m.forward(tokens: tokens, targets: nil, batch: b, seq: t, objective: .crossEntropy) }
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.tokenNLL(weights: [1, 2])])) }
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.tokenNLL(weights: [Float](repeating: .nan, count: n))])) }
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.tokenNLL(weights: [Float](repeating: 1, count: n), normalizer: 0)])) }
        let q = [Float](repeating: 0, count: vocab)
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.kl(positions: [(b: 3, t: 0)], reference: .logits(q), direction: .modelToReference)])) }
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.kl(positions: [(b: 0, t: 0)], reference: .logits([1]), direction: .modelToReference)])) }
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.kl(positions: [(b: 0, t: 0)], reference: .logProbs(q), direction: .referenceToModel)])) }
        #expect(throws: EngineError.self) { try m.applyObjective(Objective([.kl(positions: [], reference: .logits([]), direction: .referenceToModel)])) }
        // the logits already hold a gradient
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t, fuseLossGradient: true)
        #expect(throws: EngineError.self) { try m.applyObjective(.crossEntropy) }
    }
}
