#if canImport(Glibc)
import Glibc
#endif

/// ROME's three computations as kmeng01/rome does them (../shared/reference/rome-tracing-metrics.md
/// §2), on token prompts: k̄ and u (compute_u), v* (compute_v) and the rank-one update. The ROME
/// editor (ROMEEditor.swift) makes the prompts from an edit set; the parity test feeds these the
/// fixture's prompts directly.

/// One fact to write, as tokens.
public struct ROMERequest {
    /// The bare prompt: the new object is the next token.
    public var prompt: [Int32]
    /// The fact token's index in `prompt` (the subject's last token, as the reference's default).
    public var lookup: Int
    /// The new object's token.
    public var target: Int32
    /// The KL ("essence") prompt and the fact token's index in it.
    public var essence: [Int32]
    public var essenceLookup: Int

    public init(prompt: [Int32], lookup: Int, target: Int32, essence: [Int32], essenceLookup: Int) {
        self.prompt = prompt; self.lookup = lookup; self.target = target; self.essence = essence; self.essenceLookup = essenceLookup
    }
}

/// compute_v's hyperparameters (the reference's names in comments).
public struct VStarSettings: Sendable {
    public var learningRate: Float = 0.5        // v_lr
    public var steps = 20                       // v_num_grad_steps: at most steps − 1 Adam steps run
    public var weightDecay: Float = 0.5         // v_weight_decay, on ‖δ‖ (not squared) / ‖target_init‖²
    public var klFactor: Float = 0.0625         // kl_factor
    public var clampNormFactor: Float = 4       // clamp_norm_factor: ‖δ‖ ≤ this × ‖target_init‖
    public var stopLoss: Float = 0.05           // the loop stops when the loss is below this
    public init() {}
}

/// What compute_v found.
public struct VStar {
    public var vStar: [Float]
    public var delta: [Float]
    /// The clean MLP output at the fact token of the first (bare) prompt.
    public var targetInit: [Float]
    /// Per iteration: total, NLL, KL and weight-decay terms, and the mean p(new object).
    public var losses: [(total: Float, nll: Float, kl: Float, decay: Float, probability: Float)] = []
    public var adamSteps = 0
}

public enum ROME {
    /// The rows of several prompts, right-padded with the padding token.
    static func batch(_ prompts: [[Int32]]) -> (tokens: [Int32], width: Int) {
        let width = prompts.map(\.count).max() ?? 1
        var t = [Int32](repeating: Vocabulary.padding, count: prompts.count * width)
        for (r, p) in prompts.enumerated() { for (i, x) in p.enumerated() { t[r * width + i] = x } }
        return (t, width)
    }

    static func checkLookups(_ prompts: [[Int32]], _ lookups: [Int], _ what: String) throws(EngineError) {
        for (p, i) in zip(prompts, lookups) where i < 0 || i >= p.count {
            throw .invalid("\(what): fact token index \(i) is outside a prompt of \(p.count) tokens")
        }
    }

    /// The vectors at `site` of `block` at each prompt's lookup index (one forward pass).
    public static func vectors(_ model: LanguageModel, block: Int, site: HookSite, prompts: [[Int32]], lookups: [Int]) throws(EngineError) -> [[Float]] {
        try checkLookups(prompts, lookups, "ROME")
        let (tokens, width) = batch(prompts)
        let store = ActivationStore(), hooks = ForwardHooks()
        hooks.record(site, layer: block, into: store)
        try tokens.withUnsafeBufferPointer { (t) throws(EngineError) in try model.run(tokens: t.baseAddress!, rows: prompts.count, width: width, hooks: hooks) }
        let v = store[site, layer: block]!, w = store.shapes[HookPoint(site, layer: block)]![2]
        return lookups.enumerated().map { (r, i) in Array(v[((r * width + i) * w)..<((r * width + i + 1) * w)]) }
    }

    /// k̄: the mean MLP key at the fact token over the prompt behind each prefix (the context
    /// templates; an empty prefix is the bare prompt).
    public static func meanKey(_ model: LanguageModel, block: Int, request: ROMERequest, prefixes: [[Int32]]) throws(EngineError) -> [Float] {
        let prompts = prefixes.map { $0 + request.prompt }
        let keys = try vectors(model, block: block, site: .mlpHidden, prompts: prompts, lookups: prefixes.map { $0.count + request.lookup })
        var mean = [Float](repeating: 0, count: keys[0].count)
        for k in keys { for i in 0..<k.count { mean[i] += k[i] } }
        for i in 0..<mean.count { mean[i] /= Float(keys.count) }
        return mean
    }

    /// u = C⁻¹k̄ / ‖C⁻¹k̄‖ (with the covariance adjustment; k̄ / ‖k̄‖ without), in float64 then float32.
    public static func direction(_ kbar: [Float], statistics: KeyStatistics?, inverse: KeyStatistics.Inverse, strength: Double) throws(EngineError) -> [Float] {
        var u = kbar.map(Double.init)
        if let s = statistics { u = try s.applyInverse(u, inverse, strength: strength) }
        let norm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm.isFinite, norm > 0 else { throw .numeric("ROME: C⁻¹k̄ has norm \(norm): the key is zero or lies in C's null space") }
        return u.map { Float($0 / norm) }
    }

    /// v* by Adam on a residual offset δ added at `site` of `block` (ROME: the MLP output; MEMIT's
    /// compute_z: the block output) at the fact token of every prompt (the rewriting prompts: each
    /// prefix + the bare prompt; and the essence prompt), with loss NLL(new object) + KL(p ‖ p at
    /// step 0) at the essence prompt + the ‖δ‖ decay, the norm clamp, the early stop and the
    /// last-iteration break as in the reference.
    public static func computeV(_ model: LanguageModel, block: Int, request: ROMERequest, prefixes: [[Int32]],
                                settings: VStarSettings, delta0: [Float]? = nil, site: HookSite = .mlpOutput) throws(EngineError) -> VStar {
        let net = model.net, D = model.config.hidden, V = model.vocabSize
        guard block >= 0, block < model.config.layers else {
            throw .invalid("ROME: block \(block) does not exist (the model has \(model.config.layers) blocks)")
        }
        guard !prefixes.isEmpty else { throw .invalid("ROME: no prompts (the first template is the bare prompt)") }
        let rewriting = prefixes.map { $0 + request.prompt }
        let prompts = rewriting + [request.essence]
        let lookups = prefixes.map { $0.count + request.lookup } + [request.essenceLookup]
        try checkLookups(prompts, lookups, "ROME")
        let (tokens, width) = batch(prompts)
        let rows = prompts.count, nT = rewriting.count
        // Targets: the new object after each rewriting prompt; the essence row has none.
        var targets = [Int32](repeating: -100, count: rows * width)
        var weights = [Float](repeating: 0, count: rows * width)
        for (r, p) in rewriting.enumerated() {
            targets[r * width + p.count - 1] = request.target
            weights[r * width + p.count - 1] = 1 / Float(nT)
        }
        try model.ensureCapacity(batch: rows, seq: width)
        let point = HookPoint(site, layer: block)
        // The model is frozen: only the activation gradient at the MLP output is needed.
        let trainable = net.trainable
        let captured = net.capturedPoints
        net.setTrainable(false) { _ in true }
        try net.captureGradients(at: [point])
        defer {
            net.trainable = trainable
            try? net.captureGradients(at: captured)
        }

        var delta = delta0 ?? [Float](repeating: 0, count: D)
        guard delta.count == D, delta.allSatisfy({ $0.isFinite }) else { throw .invalid("ROME: δ₀ must hold \(D) finite values (it has \(delta.count))") }
        var targetInit: [Float] = []
        var klInit: [Float] = []
        var m = [Float](repeating: 0, count: D), v = [Float](repeating: 0, count: D)
        let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        var out = VStar(vStar: [], delta: [], targetInit: [])
        for it in 0..<settings.steps {
            let hooks = ForwardHooks()
            if it == 0 {
                // the reference's hook records the clean output of the first prompt before adding δ
                hooks.add(site, layer: block) { (a: ActivationView) throws(EngineError) in
                    if a.holds(row: 0) { targetInit = try a.rowArray(0, lookups[0]) }
                }
            }
            hooks.addDelta(site, layer: block, at: lookups.enumerated().map { ($0.offset, $0.element) }, delta: delta)
            try tokens.withUnsafeBufferPointer { (tp) throws(EngineError) in
                try targets.withUnsafeBufferPointer { (tg) throws(EngineError) in
                    _ = try net.forward(tokens: tp.baseAddress!, targets: tg.baseAddress!, batch: rows, seq: width, hooks: hooks)
                }
            }
            let essenceRow = (nT * width + request.essenceLookup) * V
            if it == 0 {
                // kl_init: the log-probabilities at the essence prompt's fact token, δ₀ included
                let z = Array(net.logits[essenceRow..<(essenceRow + V)])
                let top = z.max()!
                let lse = top + Float(log(Double(z.reduce(0) { $0 + exp($1 - top) })))
                klInit = z.map { $0 - lse }
                guard klInit.allSatisfy({ $0.isFinite }) else {
                    throw .numeric("ROME: the model's output at the essence prompt is not finite: the model holds non-finite values")
                }
            }
            // p(new object) at each rewriting prompt, before the logits turn into gradients
            var prob: Float = 0
            for (r, p) in rewriting.enumerated() {
                let row = Array(net.logits[((r * width + p.count - 1) * V)..<((r * width + p.count) * V)])
                let top = row.max()!
                let sum = row.reduce(0) { $0 + exp($1 - top) }
                prob += exp(row[Int(request.target)] - top) / sum / Float(nT)
            }
            let value = try net.applyObjective(Objective([
                .tokenNLL(weights: weights, normalizer: 1),
                .kl(positions: [(b: nT, t: request.essenceLookup)], reference: .logProbs(klInit), weight: settings.klFactor, direction: .modelToReference),
            ]))
            let tiNorm = targetInit.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let dNorm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let decay = settings.weightDecay * dNorm / (tiNorm * tiNorm)
            let loss = value.total + decay
            guard loss.isFinite else {
                throw .numeric("ROME: the v* loss is \(loss) at iteration \(it): the optimisation diverged (lower v_lr or clamp_norm_factor) or the model's outputs are not finite")
            }
            out.losses.append((loss, value.terms[0], value.terms[1], decay, prob))
            if loss < settings.stopLoss || it == settings.steps - 1 { break }
            // d loss / d δ: the MLP output's gradient at every prompt's fact token, plus the decay's
            net.zeroGrad()
            try net.backward()
            let g = net.activationGradient(at: point)!
            var grad = [Float](repeating: 0, count: D)
            for (r, i) in lookups.enumerated() {
                let row = try g.row(r, i)
                for j in 0..<D { grad[j] += row[j] }
            }
            if dNorm > 0 { for j in 0..<D { grad[j] += settings.weightDecay / (tiNorm * tiNorm) * delta[j] / dNorm } }
            // Adam (torch.optim.Adam's defaults)
            let t = Float(out.adamSteps + 1)
            let c1 = 1 - pow(beta1, t), c2 = 1 - pow(beta2, t)
            for j in 0..<D {
                m[j] = beta1 * m[j] + (1 - beta1) * grad[j]
                v[j] = beta2 * v[j] + (1 - beta2) * grad[j] * grad[j]
                delta[j] -= settings.learningRate * (m[j] / c1) / ((v[j] / c2).squareRoot() + eps)
            }
            out.adamSteps += 1
            let maxNorm = settings.clampNormFactor * tiNorm
            let newNorm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if newNorm > maxNorm { for j in 0..<D { delta[j] *= maxNorm / newNorm } }
        }
        if delta.contains(where: { !$0.isFinite }) { throw .numeric("ROME: the v* optimisation diverged (δ is not finite)") }
        out.delta = delta
        out.targetInit = targetInit
        out.vStar = zip(targetInit, delta).map { $0 + $1 }
        return out
    }

    /// The rank-one update of dense_4h_to_h [D, I]: ΔW = (v* − (W k* + b)) uᵀ / (uᵀ k*), with k* and
    /// W k* + b taken at the fact token of the bare prompt. Returns ΔW and k*.
    public static func update(_ model: LanguageModel, block: Int, request: ROMERequest, u: [Float], vStar: [Float]) throws(EngineError) -> (delta: [Float], kStar: [Float], current: [Float]) {
        let kStar = try vectors(model, block: block, site: .mlpHidden, prompts: [request.prompt], lookups: [request.lookup])[0]
        let current = try vectors(model, block: block, site: .mlpOutput, prompts: [request.prompt], lookups: [request.lookup])[0]
        var dot = 0.0
        for i in 0..<u.count { dot += Double(u[i]) * Double(kStar[i]) }
        guard dot.isFinite, abs(dot) > 1e-12 else {
            throw .numeric("ROME: uᵀk* = \(dot): the key at the fact token is orthogonal to the edit direction")
        }
        let D = vStar.count, I = u.count
        var delta = [Float](repeating: 0, count: D * I)
        for i in 0..<D {
            let right = Float(Double(vStar[i] - current[i]) / dot)
            for j in 0..<I { delta[i * I + j] = right * u[j] }
        }
        if delta.contains(where: { !$0.isFinite }) { throw .numeric("ROME: the update is not finite") }
        return (delta, kStar, current)
    }
}
