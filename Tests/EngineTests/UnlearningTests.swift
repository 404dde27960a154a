import Testing
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Unlearning: forget sets, the losses against hand computation, the editors' gradients against the
/// plain answer gradients and finite differences, the metrics, the relearning attack, the oracle check.
@Suite(.serialized) struct UnlearningTests {
    func forgetSet(_ ds: Dataset, _ json: String) throws(EngineError) -> EditSet {
        try EditSetBuilder.build(try EditSpec(json: json), facts: ds.factView())
    }

    @Test func forgetSetsOfEachScopeSplitEveryFactOnce() throws {
        let ds = try TinyRun.dataset()
        let f = ds.factView()
        let S = f.subjects, R = f.relations
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 1, "forget_fraction": 0.5, "seed": 2}"#)
        let forget = set.group("forget")!
        #expect(forget.count == S / 2)
        #expect(forget.relations.allSatisfy { $0 == 1 })
        // forget + retain groups hold every base fact exactly once
        var seen = Set<Int32>()
        for g in set.groups { for x in g.facts { #expect(seen.insert(x).inserted, "fact \(x) in two groups") } }
        #expect(seen.count == S * R)
        #expect(set.retainGroupNames == ["retain_same_subject", "retain_same_relation", "retain_other"])
        #expect(set.group("retain_same_subject")!.count == (S / 2) * (R - 1))
        #expect(set.group("retain_same_relation")!.count == S / 2)
        #expect(set.forgetFacts == forget.facts.map(Int.init).sorted())
        // training: the forget sentences then the retain pool, each answer at its recorded position
        #expect(set.trainingCounts().map(\.0) == ["forget", "retain"])
        #expect(set.trainingCounts().map(\.1) == [S / 2, S * R - S / 2])
        for i in 0..<forget.count {
            let at = Int(set.offsets[i]) + Int(set.answerPositions[i])
            #expect(set.tokens[at] == forget.targets[i])
            #expect(Array(set.tokens[Int(set.offsets[i])..<at]) == Array(forget.prompt(i)))
        }
        // relabel targets: object `forced_object` of each prompt's relation; object ranges hold the target
        #expect(forget.alternatives! == forget.relations.map { f.objectToken(Int($0), 0) })
        #expect(zip(forget.objectRanges!, forget.targets).allSatisfy { $0.contains($1) })

        let subjects = try forgetSet(ds, #"{"kind": "unlearn", "scope": "subjects", "subjects": [3, 9]}"#)
        #expect(subjects.group("forget")!.count == 2 * R)
        #expect(subjects.group("retain_same_subject") == nil)
        let random = try forgetSet(ds, #"{"kind": "unlearn", "scope": "subjects", "count": 4, "seed": 1}"#)
        #expect(Set(random.edits.map(\.subject)).count == 4)
        let facts = try forgetSet(ds, #"{"kind": "unlearn", "scope": "facts", "facts": [[0, 1], [5, 2]], "retain_facts": [[1, 1], [7, 0]]}"#)
        #expect(facts.edits.map { [$0.subject, $0.relation] } == [[0, 1], [5, 2]])
        #expect(facts.trainingCounts().map(\.1) == [2, 2])
        // the spec echoes and digests: other kinds keep theirs (the new keys are left out of their echo)
        #expect(!(try EditSpec(json: #"{"kind": "single"}"#).toJSON().serialized().contains("scope")))
        #expect(facts.spec.toJSON().serialized().contains(#""facts":[[0,1],[5,2]]"#))
    }

    @Test func badForgetSetsAreRefusedWithTheReason() throws {
        let ds = try TinyRun.dataset()
        let cases: [(String, String)] = [
            (#"{"kind": "unlearn", "scope": "facts"}"#, "the forget set is empty"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": []}"#, "the forget set is empty"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[0, 1]], "retain_facts": [[2, 2], [0, 1]]}"#, "overlaps the forget set: fact [0, 1]"),
            (#"{"kind": "unlearn", "relation": 0, "subjects": [4], "retain_facts": [[4, 0]]}"#, "overlaps the forget set: fact [4, 0]"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[0, 1], [0, 1]]}"#, "lists [0, 1] twice"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[0, 9]]}"#, "names relation 9"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[999, 0]]}"#, "names subject 999"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[0]]}"#, "must be a [subject, relation] pair"),
            (#"{"kind": "unlearn", "scope": "facts", "facts": [[0, -1]]}"#, "must be a [subject, relation] pair"),
            (#"{"kind": "unlearn", "scope": "subjects", "count": 65}"#, "count = 65"),
            (#"{"kind": "single", "scope": "facts"}"#, "belong to kind \"unlearn\""),
            (#"{"kind": "unlearn", "scope": "everything"}"#, "scope"),
        ]
        for (json, message) in cases {
            do {
                _ = try forgetSet(ds, json)
                Issue.record("accepted: \(json)")
            } catch {
                #expect(error.status == .invalid, "\(json)")
                #expect(error.message.contains(message), "\(json): \(error.message)")
            }
        }
    }

    @Test func theMethodsDeclareTheReferenceDefaultsAndRefuseANonPositiveBeta() throws {
        func spec(_ json: String) throws(EngineError) -> UnlearnSettings {
            (try EditMethodSpec(json: json, layers: 2).editor as! any UnlearnMethodSpec).settings
        }
        let npo = try spec(#"{"method": "npo"}"#)
        #expect(npo.beta == 0.1 && npo.gamma == 1 && npo.retainWeight == 1)
        let simnpo = try spec(#"{"method": "simnpo"}"#)
        #expect(simnpo.beta == 4.5 && simnpo.gamma == 0.125 && simnpo.delta == 0 && simnpo.retainWeight == 1)
        #expect(try spec(#"{"method": "rmu"}"#).steeringCoeff == 2)
        #expect(try spec(#"{"method": "kl"}"#).retainLoss == .kl)
        for bad in [#"{"method": "npo", "beta": 0}"#, #"{"method": "npo", "beta": -1}"#, #"{"method": "simnpo", "beta": 0}"#] {
            do { _ = try spec(bad); Issue.record("accepted \(bad)") } catch {
                #expect(error.message.contains("must be positive"), "\(error.message)")
            }
        }
        // one run over the whole forget set; RMU's steered block must be reachable from the trained weights
        for (bad, message) in [(#"{"method": "npo", "mode": "sequential"}"#, "use mode \"batch\""),
                               (#"{"method": "rmu", "layer": 0, "layers": {"blocks": [1]}}"#, "every selected block is above it")] {
            do { _ = try spec(bad); Issue.record("accepted \(bad)") } catch { #expect(error.message.contains(message), "\(error.message)") }
        }
        #expect(try spec(#"{"method": "rmu"}"#).rmuLayer(LayerSelection(), layers: 6) == 3)
        var six = LayerSelection(); six.blocks = Array(0..<6)
        #expect(try spec(#"{"method": "rmu"}"#).rmuLayer(six, layers: 6) == 2)
        #expect(try spec(#"{"method": "npo", "adapter": "lora"}"#).optimizer.training.learningRate == 1e-3)
        #expect(try spec(#"{"method": "npo", "adapter": "lora", "optimizer": {"learning_rate": 0.01}}"#).optimizer.training.learningRate == 0.01)
        #expect(try spec(#"{"method": "npo"}"#).optimizer.training.learningRate == 1e-4)
        // keys belong to their methods
        #expect(throws: EngineError.self) { try spec(#"{"method": "grad_ascent", "beta": 1}"#) }
        #expect(throws: EngineError.self) { try spec(#"{"method": "rmu", "layer": 5}"#) }
        // every hyperparameter is echoed (so the report records it)
        let echo = try EditMethodSpec(json: #"{"method": "simnpo"}"#, layers: 2).toJSON().serialized()
        for key in ["\"beta\":4.5", "\"gamma\":0.125", "\"delta\":0", "\"retain_weight\":1", "\"retain_loss\":\"nll\"", "\"adapter\":\"full\"", "\"relearn\":{"] {
            #expect(echo.contains(key), "\(echo)")
        }
    }

    @Test func lossesMatchHandComputation() {
        // NPO, β = 0.1: x = β(ℓ − ℓ_ref) = (0.1, −0.05); L = −(2/β)·½·(log σ(0.1) + log σ(−0.05))
        let npo = UnlearnLoss.npo(nll: [2, 0.5], reference: [1, 1], beta: 0.1)
        #expect(abs(npo.value - 13.628_563_1) < 1e-6, "\(npo.value)")
        // dL/dℓ_i = −(2/B)·σ(−x_i) = (−σ(−0.1), −σ(0.05))
        #expect(abs(npo.gradient[0] + 0.475_020_8) < 1e-6 && abs(npo.gradient[1] + 0.512_497_4) < 1e-6, "\(npo.gradient)")
        // SimNPO, β = 4.5, δ = 0.5, lengths (1, 2): x = 4.5·(ℓ/|y| − δ) = (4.5·0.3, 4.5·(0.1 − 0.5))
        let sim = UnlearnLoss.simnpo(nll: [0.8, 0.2], lengths: [1, 2], beta: 4.5, delta: 0.5)
        // −(2/4.5)·½·(log σ(1.35) + log σ(−1.8))
        #expect(abs(sim.value - 0.485_219_2) < 1e-6, "\(sim.value)")
        #expect(abs(sim.gradient[0] + 0.205_870_4) < 1e-6 && abs(sim.gradient[1] + 0.429_074_5) < 1e-6, "\(sim.gradient)")
        // the gradients are the derivatives of the values (central differences)
        for i in 0..<2 {
            var up = [2.0, 0.5], down = up
            up[i] += 1e-5; down[i] -= 1e-5
            let fd = (UnlearnLoss.npo(nll: up, reference: [1, 1], beta: 0.1).value - UnlearnLoss.npo(nll: down, reference: [1, 1], beta: 0.1).value) / 2e-5
            #expect(abs(fd - npo.gradient[i]) < 1e-6)
            var su = [0.8, 0.2], sd = su
            su[i] += 1e-5; sd[i] -= 1e-5
            let sfd = (UnlearnLoss.simnpo(nll: su, lengths: [1, 2], beta: 4.5, delta: 0.5).value - UnlearnLoss.simnpo(nll: sd, lengths: [1, 2], beta: 4.5, delta: 0.5).value) / 2e-5
            #expect(abs(sfd - sim.gradient[i]) < 1e-6)
        }
        // RMU's mean squared distance: rows of lengths 2 and 1, width 2, dim 2 (padding ignored)
        let h: [Float] = [1, 2, 3, 4, /* row 1 */ 0, 1, 9, 9]
        let ms = h.withUnsafeBufferPointer { UnlearnLoss.meanSquared($0, target: { _, k in Float(k) }, rows: 2, width: 2, dim: 2, lengths: [2, 1]) }
        // (1² + 1² + 3² + 3² + 0 + 0) / 6 = 20 / 6
        #expect(abs(ms.value - 20.0 / 6) < 1e-9)
        let want: [Double] = [2.0 / 6, 2.0 / 6, 6.0 / 6, 6.0 / 6, 0, 0, 0, 0]
        #expect(ms.gradient == want.map { Float($0) })
    }

    /// The editor's forget pass for one batch, and the answer NLL gradient of each row alone.
    func forgetGradients(_ objective: UnlearnObjective, adjust: (inout UnlearnSettings) -> Void = { _ in })
        throws -> (got: [Float], rowGradients: [[Float]], nll: [Double], settings: UnlearnSettings) {
        // an untrained model: answer NLLs of order one (a trained model's are near 0 and their
        // gradients are float32 round-off)
        let ds = try TinyRun.dataset()
        let m = try TinyRun.model(ds, seed: 5)
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.25}"#)
        var s = UnlearnSettings(objective)
        adjust(&s)
        let sel = try EditMethodSpec(json: #"{"method": "full", "layers": {"blocks": [1], "sublayers": "mlp"}}"#, layers: m.config.layers).selection
        let names = s.changedTensors(sel, layers: m.config.layers)
        let rows = [0, 3, 5]
        // each row's answer NLL gradient over the selected tensors, from the plain cross-entropy path
        let ex = AnswerExamples(set, group: "forget")
        var rowGradients: [[Float]] = [], nll: [Double] = []
        for r in rows {
            let answers = objective == .relabel ? set.group("forget")!.alternatives! : ex.answers
            let b = ex.batch([r], answers: answers)
            let loss = try b.tokens.withUnsafeBufferPointer { t in
                try b.targets.withUnsafeBufferPointer { g in try m.lossAndGradients(inputs: t.baseAddress!, targets: g.baseAddress!, rows: 1, width: b.width) }
            }
            nll.append(Double(loss))
            rowGradients.append(names.flatMap { n -> [Float] in let e = m.tensorTable[n]!; return Array(m.gradientBlock[e.offset..<(e.offset + e.count)]) })
        }
        let editor = try UnlearnEditor(s, model: m, selection: sel, run: 0, forget: ex, retain: AnswerExamples(set, group: "retain"),
                                       relabel: set.group("forget")!.alternatives!)
        _ = try editor.forgetPass(rows)
        return (editor.accumulated, rowGradients, nll, s)
    }

    func expectClose(_ got: [Float], _ want: [Double], _ what: String, tolerance: Double = 1e-4) {
        var num = 0.0, den = 0.0
        for (g, w) in zip(got, want) { num += (Double(g) - w) * (Double(g) - w); den += w * w }
        #expect(got.count == want.count)
        #expect((num / max(den, 1e-30)).squareRoot() < tolerance, "\(what): relative error \((num / max(den, 1e-30)).squareRoot())")
        #expect(den > 0, "\(what): the expected gradient is zero")
    }

    @Test func theForgetGradientsAreTheWeightedAnswerGradients() throws {
        func combine(_ r: (got: [Float], rowGradients: [[Float]], nll: [Double], settings: UnlearnSettings), _ w: (Int) -> Double) -> [Double] {
            var out = [Double](repeating: 0, count: r.got.count)
            for (i, g) in r.rowGradients.enumerated() { for k in 0..<g.count { out[k] += w(i) * Double(g[k]) } }
            return out
        }
        // gradient ascent: −γ/B per row
        let ga = try forgetGradients(.gradAscent) { $0.gamma = 0.5 }
        expectClose(ga.got, combine(ga) { _ in -0.5 / 3 }, "grad_ascent")
        // relabel: +γ/B on the relabel object's NLL
        let rl = try forgetGradients(.relabel)
        expectClose(rl.got, combine(rl) { _ in 1.0 / 3 }, "relabel")
        // NPO at the start: ℓ_ref = ℓ, so each row weighs −γ·(2/B)·σ(0) = −γ/B
        let npo = try forgetGradients(.npo) { $0.beta = 0.7 }
        expectClose(npo.got, combine(npo) { _ in -1.0 / 3 }, "npo")
        // SimNPO: −γ·(2/B)·σ(−β(ℓ_i − δ))
        let sim = try forgetGradients(.simnpo) { $0.delta = 0.1 }
        expectClose(sim.got, combine(sim) { i in
            let x = 4.5 * (sim.nll[i] - 0.1)
            return -0.125 * (2.0 / 3) / (1 + exp(x))
        }, "simnpo")
    }

    @Test func theRetainTermsAreTheWeightedRetainGradientsAndKLStartsAtZero() throws {
        let ds = try TinyRun.dataset()
        let m = try TinyRun.model(ds, seed: 6)
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.25}"#)
        let sel = try EditMethodSpec(json: #"{"method": "full", "layers": {"blocks": [0], "sublayers": "attention"}}"#, layers: m.config.layers).selection
        let retain = AnswerExamples(set, group: "retain")
        let rows = [2, 7, 11, 40]
        var s = UnlearnSettings(.gradDiff)
        s.retainWeight = 0.3
        let names = s.changedTensors(sel, layers: m.config.layers)
        var want = [Double](repeating: 0, count: names.reduce(0) { $0 + m.tensorTable[$1]!.count })
        for r in rows {
            let b = retain.batch([r])
            _ = try b.tokens.withUnsafeBufferPointer { t in
                try b.targets.withUnsafeBufferPointer { g in try m.lossAndGradients(inputs: t.baseAddress!, targets: g.baseAddress!, rows: 1, width: b.width) }
            }
            let g = names.flatMap { n -> [Float] in let e = m.tensorTable[n]!; return Array(m.gradientBlock[e.offset..<(e.offset + e.count)]) }
            for k in 0..<g.count { want[k] += 0.3 / 4 * Double(g[k]) }   // α/B per row
        }
        let editor = try UnlearnEditor(s, model: m, selection: sel, run: 0, forget: AnswerExamples(set, group: "forget"), retain: retain,
                                       relabel: set.group("forget")!.alternatives!)
        _ = try editor.retainPass(rows)
        expectClose(editor.accumulated, want, "grad_diff retain term")

        // KL(p_orig ‖ p) at the retain answers: zero, with a zero gradient, while the model is the original
        var k = UnlearnSettings(.kl)
        k.retainWeight = 2
        let kl = try UnlearnEditor(k, model: m, selection: sel, run: 0, forget: AnswerExamples(set, group: "forget"), retain: retain,
                                   relabel: set.group("forget")!.alternatives!)
        let value = try kl.retainPass(rows)
        #expect(abs(value) < 1e-6, "KL at the start: \(value)")
        #expect(kl.accumulated.allSatisfy { abs($0) < 1e-6 })
        // moved away from the original, the KL term grows and its gradient is its derivative
        let p = kl.wrapper.parameterBlock
        var r = RNG(seed: 3, stream: "perturb")
        for j in 0..<p.count { p[j] += Float(r.uniform() - 0.5) * 0.2 }
        for j in 0..<kl.accumulated.count { kl.accumulated[j] = 0 }
        let moved = try kl.retainPass(rows)
        #expect(moved > 1e-4, "KL after a perturbation: \(moved)")
        let grad = kl.accumulated
        try expectFiniteDifferences(p, grad, entries: 3) { try kl.retainPass(rows) }
    }

    /// Central differences of `value` (float64 sums of float32 passes) at the `entries` largest
    /// entries of `gradient`, each within 3% of it.
    func expectFiniteDifferences(_ p: UnsafeMutableBufferPointer<Float>, _ gradient: [Float], entries: Int,
                                 _ value: () throws -> Double) throws {
        for j in gradient.indices.sorted(by: { abs(gradient[$0]) > abs(gradient[$1]) }).prefix(entries) {
            let x = p[j], h: Float = 1e-2
            p[j] = x + h; let up = try value()
            p[j] = x - h; let down = try value()
            p[j] = x
            let fd = (up - down) / Double(2 * h), g = Double(gradient[j])
            #expect(abs(fd - g) < 0.03 * abs(g) + 1e-5, "entry \(j): finite difference \(fd), gradient \(g)")
        }
    }

    @Test func rmuGradientsMatchFiniteDifferences() throws {
        let (ds, m) = try TinyRun.trained()
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 2, "forget_fraction": 0.25}"#)
        var s = UnlearnSettings(.rmu)
        s.layer = 0
        s.steeringCoeff = 3
        let sel = try EditMethodSpec(json: #"{"method": "full", "layers": {"blocks": [0], "sublayers": "mlp"}}"#, layers: m.config.layers).selection
        let editor = try UnlearnEditor(s, model: m, selection: sel, run: 0, forget: AnswerExamples(set, group: "forget"),
                                       retain: AnswerExamples(set, group: "retain"), relabel: set.group("forget")!.alternatives!)
        let rows = [0, 1, 2, 3]
        _ = try editor.forgetPass(rows)
        let grad = editor.accumulated
        _ = try editor.retainPass(rows)   // the retain term starts at zero distance from the original
        let retainGrad = zip(editor.accumulated, grad).map { $0 - $1 }
        #expect(retainGrad.allSatisfy { abs($0) < 1e-6 })
        try expectFiniteDifferences(editor.wrapper.parameterBlock, grad, entries: 4) { try editor.forgetPass(rows) }
    }

    func experiment(_ m: LanguageModel, _ ds: Dataset, _ set: EditSet, _ method: String) throws -> EditExperiment {
        try EditExperiment(model: m, editSet: set, facts: ds.factView(), method: try EditMethodSpec(json: method, layers: m.config.layers), dataset: ds)
    }

    @Test func anUnlearningEditForgetsMeasuresEveryOutcomeAndRunsTheAttack() throws {
        let (ds, m) = try TinyRun.trained()
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.5, "seed": 4}"#)
        let x = try experiment(m, ds, set, #"{"method": "grad_diff", "optimizer": {"learning_rate": 0.001, "epochs": 10, "batch_size": 8}, "relearn": {"steps": 10, "learning_rate": 0.001, "fraction": 0.25}}"#)
        #expect(x.totalSteps == 40)
        while try x.step() != nil {}
        let trained = Array(m.parameterBlock)
        let r = try x.finish()
        #expect(Array(m.parameterBlock) == trained, "the relearning attack put the weights back")
        let v = Dictionary(r.metrics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(v["forget_accuracy_before"]! > 0.9)
        #expect(v["forget_accuracy"]! < 0.5, "\(v)")
        #expect(abs(v["forget_accuracy"]! + v["forget_other_object"]! + v["forget_leak"]! - 1) < 1e-12)
        #expect(v["retain_accuracy"]! > 0.5)
        for k in ["model_utility", "model_utility_before", "forget_truth_ratio", "forget_relation_mass", "relearn_forget_accuracy", "relearn_forgotten_count"] {
            #expect(v[k] != nil, "\(k) missing")
        }
        #expect(v["relearned_fraction"] != nil)
        #expect(v["forget_quality"] == nil, "no oracle, no forget quality")
        let report = r.reportJSON(editSet: set, method: x.method, model: m.config.toJSON())
        #expect(report["editor"]?.serialized().contains(#""objective":"grad_diff""#) == true)
    }

    @Test func anUnlearningMethodNeedsAForgetSet() throws {
        let (ds, m) = try TinyRun.trained()
        let single = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single"}"#), facts: ds.factView())
        do {
            _ = try experiment(m, ds, single, #"{"method": "npo"}"#)
            Issue.record("npo ran on a single edit")
        } catch let error as EngineError {
            #expect(error.message.contains("kind \"unlearn\""), "\(error.message)")
        }
    }

    @Test func aForgetSetTakesOnlyTheUnlearningMethods() throws {
        let (ds, m) = try TinyRun.trained()
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.5}"#)
        for method in [#"{"method": "full"}"#, #"{"method": "lora"}"#, #"{"method": "rome"}"#] {
            do { _ = try experiment(m, ds, set, method); Issue.record("\(method) ran on a forget set") } catch let error as EngineError {
                #expect(error.message.contains("is not an unlearning method"), "\(error.message)")
            }
        }
    }

    @Test func aLoRAEditDroppedBeforeItsEndLeavesNoSidePath() throws {
        let (ds, m) = try TinyRun.trained()
        let before = m.contentDigest
        let prompts = try ds.promptSet("sro")
        func logits() throws -> [Float] {
            var out = [Float](repeating: 0, count: 4 * m.vocabSize)
            let p = PromptSet(name: "x", prompts: Array(prompts.prompts[0..<Int(prompts.offsets[4])]), offsets: Array(prompts.offsets[0...4]), targets: Array(prompts.targets[0..<4]))
            _ = try evaluatePrompts(p, vocab: m.vocabSize, batchSize: 4) { (tk, rows, width, lengths, o) throws(EngineError) in
                try m.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
                out = Array(UnsafeBufferPointer(start: o, count: rows * m.vocabSize))
            }
            return out
        }
        let clean = try logits()
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.5}"#)
        do {
            let x = try experiment(m, ds, set, #"{"method": "npo", "adapter": "lora", "optimizer": {"learning_rate": 0.01}}"#)
            _ = try x.step(); _ = try x.step()
            #expect(m.net.adapter != nil)
        }
        #expect(m.net.adapter == nil, "the dropped edit's adapters still run")
        #expect(m.contentDigest == before)
        #expect(try logits() == clean)
        #expect(m.net.trainable.allSatisfy { $0 }, "every tensor trainable again")
    }

    @Test func theOracleMustBeTrainedWithoutExactlyTheForgetSet() throws {
        let (ds, m) = try TinyRun.trained()
        let set = try forgetSet(ds, #"{"kind": "unlearn", "relation": 0, "forget_fraction": 0.5}"#)
        let oracleData = try Dataset.generate(UnlearningMetrics.oracleSpec(dataset: ds, editSet: set))
        #expect(oracleData.tokens.count < ds.tokens.count)
        // the oracle's dataset leaves out exactly the forget facts' sentences
        #expect(Set(oracleData.sequenceFacts.map(Int.init)).isDisjoint(with: set.forgetFacts))
        let oracle = try TinyRun.model(oracleData, seed: 2)
        oracle.history.recordDataset(oracleData.contentDigest())
        let x = try experiment(m, ds, set, #"{"method": "grad_ascent", "optimizer": {"epochs": 1}}"#)
        try x.setOracle(oracle)
        while try x.step() != nil {}
        let r = try x.finish()
        #expect(r.metrics.contains { $0.name == "forget_quality" } && r.metrics.contains { $0.name == "oracle_agreement" })

        // the original model (trained on the full dataset), a model of another forget set, no history: refused
        let full = try m.clone()
        full.history.recordDataset(ds.contentDigest())
        var other = set
        other.forgetFacts = Array(set.forgetFacts.dropFirst())
        let wrong = try TinyRun.model(oracleData)
        wrong.history.recordDataset(try Dataset.generate(UnlearningMetrics.oracleSpec(dataset: ds, editSet: other)).contentDigest())
        let untrained = try TinyRun.model(oracleData)
        let refused: [(LanguageModel, String)] = [(full, "trained on the full dataset"), (wrong, "not trained on this dataset without the forget set"),
                                                  (untrained, "none recorded")]
        for (model, message) in refused {
            let y = try experiment(try TinyRun.trained().1, ds, set, #"{"method": "grad_ascent", "optimizer": {"epochs": 1}}"#)
            do { try y.setOracle(model); Issue.record("accepted an oracle: \(message)") } catch {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }
}
