#if canImport(Glibc)
import Glibc
#endif

/// The unlearning editors: dedicated objectives on the fine-tuning machinery (every tensor of the
/// layer selection, or LoRA adapters on its matrices), trained on an unlearn set (ForgetSet.swift).
/// Each step draws a forget batch (the forget set in a fresh order each epoch) and a retain batch
/// of the same size (drawn at random from the retain pool), and sums the two passes' gradients
/// into one AdamW step. The losses score each sentence's answer (object) token, as TOFU and
/// open-unlearning score the answer and not the question; with one answer token, a sequence's
/// summed NLL ℓ_i is that token's NLL. B = the batch size, σ = the logistic function.
///
///   grad_ascent   L = −γ · mean_i ℓ_i(forget)
///   grad_diff     L = −γ · mean_i ℓ_i(forget) + α · R
///   kl            L = −γ · mean_i ℓ_i(forget) + α · mean_j KL(p_orig ‖ p_θ)(retain answer position j)
///   npo           L = −(2/β)·γ · mean_i log σ(β(ℓ_θ,i − ℓ_ref,i)) + α · R       (ℓ_ref: the original model)
///   simnpo        L = −(2/β)·γ · mean_i log σ(β(ℓ_θ,i/|y_i| − δ)) + α · R       (|y_i| = 1 answer token)
///   rmu           L = γ · mean_{forget tokens} ‖h_ℓ − c·u‖²/D + α · mean_{retain tokens} ‖h_ℓ − h_ℓ,orig‖²/D
///                 (h_ℓ: the residual stream after block ℓ, D its width, u a fixed random unit vector
///                  with entries drawn uniform in [0, 1) then normalised, c = steering_coeff)
///   relabel       L = γ · mean_i NLL(relabel object | forget prompt i) + α · R  (the paper's forgetting:
///                 every forgotten fact remapped to its relation's object `forced_object`)
///
/// R is the retain loss: mean_j ℓ_j(retain) ("nll") or the KL term above ("kl"). Defaults are the
/// reference's (open-unlearning's configs): β = 0.1, α = γ = 1 for NPO; β = 4.5, γ = 0.125, δ = 0
/// for SimNPO; steering_coeff = 2 for RMU; α = γ = 1 elsewhere.
public enum UnlearnObjective: String, CaseIterable, Sendable {
    case gradAscent = "grad_ascent", gradDiff = "grad_diff", kl, npo, simnpo, rmu, relabel
}

/// The relearning attack run after an unlearning edit (EditExperiment): fine-tune every tensor of
/// the layer selection (biases included, also after a LoRA edit: the attacker holds the weights) on `fraction` × |forget set| facts for `steps` optimizer steps (NLL on their answers),
/// measure the forget set again, and put the weights back.
public struct RelearnSpec {
    public enum Data: String, CaseIterable, Sendable {
        /// A part of the forget set (the rest is what relearned_fraction is measured on).
        case forget
        /// Unrelated facts: retained facts of subjects and relations with nothing forgotten.
        case retain
    }
    public var steps = 0
    public var data = Data.forget
    public var fraction = 0.1
    public var learningRate = 1e-4
    public var batchSize = 16
    public var seed: UInt64 = 0

    public init() {}

    static let fields: [SpecField<RelearnSpec>] = [
        .int("steps", \.steps, min: 0, max: 1_000_000),
        .choice("data", \.data),
        .double("fraction", \.fraction, min: 0, max: 1, exclusiveMin: true),
        .double("learning_rate", \.learningRate, min: 0, max: 1, exclusiveMin: true),
        .int("batch_size", \.batchSize, min: 1, max: 1_000_000),
        .seed("seed", \.seed),
    ]
}

/// Every unlearning method's settings; each method's spec declares the keys that apply to it
/// (`UnlearnSettings.fields(for:)`), with its own defaults.
public struct UnlearnSettings {
    public enum Adapter: String, CaseIterable, Sendable { case full, lora }
    public enum RetainLoss: String, CaseIterable, Sendable { case nll, kl }
    public var objective: UnlearnObjective
    public var adapter = Adapter.full
    public var rank = 32
    public var alpha = 16.0
    public var dropout = 0.0
    public var beta = 0.1
    public var gamma = 1.0
    public var delta = 0.0
    public var retainWeight = 1.0
    public var retainLoss = RetainLoss.nll
    public var steeringCoeff = 2.0
    /// RMU's block (−1: the middle selected block, as the reference steers an early-middle layer).
    public var layer = -1
    public var optimizer = EditOptimizerSpec(epochs: 10, learningRate: 1e-4)
    public var relearn = RelearnSpec()

    public init(_ objective: UnlearnObjective) {
        self.objective = objective
        if objective == .simnpo { beta = 4.5; gamma = 0.125 }
        if objective == .kl { retainLoss = .kl }
    }

    /// The method's keys, in the documented order.
    static func fields<S>(for objective: UnlearnObjective, _ p: WritableKeyPath<S, UnlearnSettings>) -> [SpecField<S>] {
        var out: [SpecField<S>] = [
            // LoRA's default learning rate is 10× full fine-tuning's (read before "optimizer", which overrides it)
            SpecField("adapter", read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
                let a = Adapter(rawValue: try r.string("adapter", default: s[keyPath: p].adapter.rawValue, oneOf: Adapter.allCases.map(\.rawValue)))!
                s[keyPath: p].adapter = a
                s[keyPath: p].optimizer.training.learningRate = a == .lora ? 1e-3 : 1e-4
            }, write: { .string($0[keyPath: p].adapter.rawValue) }),
            .int("rank", p.appending(path: \.rank), min: 1, max: 1 << 20),
            .double("alpha", p.appending(path: \.alpha), min: 0, max: 1e6, exclusiveMin: true),
            .double("dropout", p.appending(path: \.dropout), min: 0, max: 0.9),
        ]
        let beta: SpecField<S> = SpecField("beta", read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            let b = try r.double("beta", default: s[keyPath: p].beta)
            guard b > 0, b.isFinite, b <= 1e6 else {
                throw .invalid("edit method: beta = \(b) must be positive (\(objective.rawValue)'s inverse temperature; the reference default is \(UnlearnSettings(objective).beta))")
            }
            s[keyPath: p].beta = b
        }, write: { .number($0[keyPath: p].beta) })
        let gamma: SpecField<S> = .double("gamma", p.appending(path: \.gamma), min: 0, max: 1e6)
        let retain: SpecField<S> = .double("retain_weight", p.appending(path: \.retainWeight), min: 0, max: 1e6)
        let retainLoss: SpecField<S> = .choice("retain_loss", p.appending(path: \.retainLoss))
        switch objective {
        case .gradAscent: out += [gamma]
        case .gradDiff, .relabel: out += [gamma, retain, retainLoss]
        case .kl: out += [gamma, retain]
        case .npo: out += [beta, gamma, retain, retainLoss]
        case .simnpo: out += [beta, gamma, .double("delta", p.appending(path: \.delta), min: -1e6, max: 1e6), retain, retainLoss]
        case .rmu: out += [.double("steering_coeff", p.appending(path: \.steeringCoeff), min: 0, max: 1e6), gamma, retain,
                           .int("layer", p.appending(path: \.layer), min: -1, max: 100_000)]
        }
        out.append(EditOptimizerSpec.field(p.appending(path: \.optimizer)))
        out.append(SpecField("relearn", read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            var o = try r.object("relearn")
            try SpecFields.decode(RelearnSpec.fields, into: &s[keyPath: p].relearn, from: &o)
            try o.finish()
        }, write: { .object(SpecFields.echo(RelearnSpec.fields, $0[keyPath: p].relearn)) }))
        return out
    }

    var hasRetainTerm: Bool { objective != .gradAscent && retainWeight > 0 }

    /// The block RMU steers.
    func rmuLayer(_ selection: LayerSelection, layers: Int) -> Int {
        if layer >= 0 { return layer }
        let blocks = selection.blocks.sorted()
        return blocks.isEmpty ? layers / 2 : blocks[(blocks.count - 1) / 2]
    }

    func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] {
        adapter == .lora ? selection.matrixNames(layers: layers) : selection.tensorNames(layers: layers)
    }

    func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) {
        if adapter == .lora && selection.matrixNames(layers: layers).isEmpty {
            throw .invalid("edit method: adapter \"lora\" needs at least one selected matrix (attention or MLP)")
        }
        if objective == .rmu {
            let l = rmuLayer(selection, layers: layers)
            guard l < layers else { throw .invalid("edit method: layer = \(l) but the model has \(layers) blocks (0...\(layers - 1))") }
            if let low = selection.blocks.min(), low > l, !selection.embeddings {
                throw .invalid("edit method: RMU steers block \(l)'s output but every selected block is above it (lowest \(low)): no selected weight affects it; select a block at or below \(l), or set layer")
            }
        }
    }
}

/// The methods' specs: one type per "method" name, sharing UnlearnSettings.
public protocol UnlearnMethodSpec: EditorSpec {
    var settings: UnlearnSettings { get set }
}

extension UnlearnMethodSpec {
    public func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) { try settings.validate(selection, layers: layers) }
    public func changedTensors(_ selection: LayerSelection, layers: Int) -> [String] { settings.changedTensors(selection, layers: layers) }
    public func steps(for set: EditSet) -> Int {
        let n = set.sequenceGroup.filter { $0 == "forget" }.count
        return (n + settings.optimizer.training.batchSize - 1) / settings.optimizer.training.batchSize * settings.optimizer.training.epochs
    }
    public func check(_ model: LanguageModel, selection: LayerSelection) throws(EngineError) {
        if settings.adapter == .lora { try LoRASpec.checkRank(settings.rank, of: changedTensors(selection, layers: model.config.layers), in: model) }
    }
    public func makeEditor(_ c: EditContext) throws(EngineError) -> Editor { try UnlearnEditor(settings, context: c) }
}

/// A method's spec: the settings with that method's keys and defaults (`UnlearnSpec<NPO>` is "npo").
public struct UnlearnSpec<M: UnlearnMethod>: UnlearnMethodSpec {
    public static var method: String { M.objective.rawValue }
    public var settings = UnlearnSettings(M.objective)
    public init() {}
    public static var fields: [SpecField<UnlearnSpec<M>>] { UnlearnSettings.fields(for: M.objective, \UnlearnSpec<M>.settings) }
}

/// The registered unlearning methods, one type each (EditorRegistry lists editor types).
public protocol UnlearnMethod { static var objective: UnlearnObjective { get } }
public enum GradAscent: UnlearnMethod { public static let objective = UnlearnObjective.gradAscent }
public enum GradDiff: UnlearnMethod { public static let objective = UnlearnObjective.gradDiff }
public enum KLRetain: UnlearnMethod { public static let objective = UnlearnObjective.kl }
public enum NPO: UnlearnMethod { public static let objective = UnlearnObjective.npo }
public enum SimNPO: UnlearnMethod { public static let objective = UnlearnObjective.simnpo }
public enum RMU: UnlearnMethod { public static let objective = UnlearnObjective.rmu }
public enum Relabel: UnlearnMethod { public static let objective = UnlearnObjective.relabel }

/// Answer-scored examples: a prompt (the sentence up to its answer) and the answer token.
struct AnswerExamples {
    var prompts: [[Int32]] = []
    var answers: [Int32] = []
    var count: Int { answers.count }

    /// The training sentences of `group` in an unlearn set.
    init(_ set: EditSet, group: String) {
        for i in 0..<set.sequenceGroup.count where set.sequenceGroup[i] == group {
            let start = Int(set.offsets[i]), at = Int(set.answerPositions[i])
            prompts.append(Array(set.tokens[start..<(start + at)]))
            answers.append(set.tokens[start + at])
        }
    }

    init() {}

    /// A prompt set's prompts and targets.
    init(_ g: PromptSet, rows: [Int]? = nil) {
        for i in rows ?? Array(0..<g.count) { prompts.append(Array(g.prompt(i))); answers.append(g.targets[i]) }
    }

    /// A right-padded batch: tokens [rows, width], targets (−1 except each row's answer at its last
    /// prompt position), and each row's prompt length.
    func batch(_ rows: [Int], answers override: [Int32]? = nil) -> (tokens: [Int32], targets: [Int32], width: Int, lengths: [Int]) {
        let width = rows.map { prompts[$0].count }.max() ?? 1
        var tokens = [Int32](repeating: 1, count: rows.count * width), targets = [Int32](repeating: -1, count: rows.count * width)
        var lengths: [Int] = []
        for (b, i) in rows.enumerated() {
            let p = prompts[i]
            for (t, x) in p.enumerated() { tokens[b * width + t] = x }
            targets[b * width + p.count - 1] = override?[i] ?? answers[i]
            lengths.append(p.count)
        }
        return (tokens, targets, width, lengths)
    }
}

/// NLL of each row's target at its last prompt position, from the logits of the last forward pass (float64).
func answerNLL(_ net: GPTNeoX, targets: [Int32], width: Int, lengths: [Int]) -> [Double] {
    let v = net.config.vocabSize
    let logits = net.logits.baseAddress!
    return lengths.enumerated().map { b, len in
        let row = logits + (b * width + len - 1) * v
        var mx = row[0]
        for j in 1..<v where row[j] > mx { mx = row[j] }
        var s = 0.0
        for j in 0..<v { s += exp(Double(row[j] - mx)) }
        let y = Int(targets[b * width + len - 1])
        return Double(mx) + log(s) - Double(row[y])
    }
}

@inline(__always) func logSigmoid(_ x: Double) -> Double { x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)) }
@inline(__always) func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

/// The unlearning losses on one batch, as values and as d loss / d (per-example NLL): what the
/// editor turns into token-NLL weights. Kept apart so tests check them against hand computation.
public enum UnlearnLoss {
    /// NPO: L = −(2/β)·mean_i log σ(β(ℓ_i − ℓ_ref,i)); dL/dℓ_i = −(2/B)·σ(−β(ℓ_i − ℓ_ref,i)).
    public static func npo(nll: [Double], reference: [Double], beta: Double) -> (value: Double, gradient: [Double]) {
        let b = Double(nll.count)
        var value = 0.0, grad: [Double] = []
        for (l, r) in zip(nll, reference) {
            let x = beta * (l - r)
            value += -(2 / beta) * logSigmoid(x) / b
            grad.append(-(2 / b) * sigmoid(-x))
        }
        return (value, grad)
    }

    /// SimNPO: L = −(2/β)·mean_i log σ(β(ℓ_i/|y_i| − δ)); dL/dℓ_i = −(2/B)·σ(−β(ℓ_i/|y_i| − δ))/|y_i|.
    public static func simnpo(nll: [Double], lengths: [Double], beta: Double, delta: Double) -> (value: Double, gradient: [Double]) {
        let b = Double(nll.count)
        var value = 0.0, grad: [Double] = []
        for (l, n) in zip(nll, lengths) {
            let x = beta * (l / n - delta)
            value += -(2 / beta) * logSigmoid(x) / b
            grad.append(-(2 / b) * sigmoid(-x) / n)
        }
        return (value, grad)
    }

    /// Mean squared distance per element over the counted positions, and its gradient
    /// 2(h − target)/(N·D) at them (0 at padding): RMU's forget and retain terms.
    public static func meanSquared(_ h: UnsafeBufferPointer<Float>, target: (Int, Int) -> Float, rows: Int, width: Int, dim: Int,
                                   lengths: [Int]) -> (value: Double, gradient: [Float]) {
        let n = Double(lengths.reduce(0, +) * dim)
        var value = 0.0
        var g = [Float](repeating: 0, count: rows * width * dim)
        for b in 0..<rows { for t in 0..<lengths[b] {
            let base = (b * width + t) * dim
            for k in 0..<dim {
                let d = Double(h[base + k]) - Double(target(base, k))
                value += d * d / n
                g[base + k] = Float(2 * d / n)
            }
        } }
        return (value, g)
    }
}

/// Trains one unlearning method (see the top of this file), one optimizer step per `step()`.
final class UnlearnEditor: Editor {
    let settings: UnlearnSettings
    let model: LanguageModel
    let wrapper: EditWrapper
    let forget: AnswerExamples
    let retain: AnswerExamples
    let relabel: [Int32]
    /// The original model, for the reference terms (KL, NPO's ℓ_ref, RMU's retain activations).
    let reference: LanguageModel?
    var referenceNLL: [Double] = []
    let optimizer: AdamW
    let training: TrainSpec
    let schedule: LRSchedule
    let totalSteps: Int
    var taken = 0
    var order: [Int] = []
    var rng: RNG
    let direction: [Float]   // RMU's c·u
    let rmuPoint: HookPoint
    var accumulated: [Float]
    var lastTerms: (forget: Double, retain: Double) = (0, 0)

    convenience init(_ s: UnlearnSettings, context c: EditContext) throws(EngineError) {
        guard c.editSet.isForgetSet else {
            throw .invalid("edit method: \(s.objective.rawValue) unlearns a forget set: make the edit set with kind \"unlearn\" (its forget and retain sets)")
        }
        let forget = AnswerExamples(c.editSet, group: "forget")
        try self.init(s, model: c.model, selection: c.selection, run: c.run, forget: forget,
                      retain: AnswerExamples(c.editSet, group: "retain"),
                      relabel: c.editSet.group("forget")?.alternatives ?? forget.answers)
    }

    /// `stepLimit`: stop after that many steps (the relearning attack), else run every epoch.
    init(_ s: UnlearnSettings, model: LanguageModel, selection: LayerSelection, run: Int, forget: AnswerExamples,
         retain: AnswerExamples, relabel: [Int32], stepLimit: Int? = nil) throws(EngineError) {
        settings = s
        self.model = model
        self.forget = forget
        self.retain = retain
        guard forget.count > 0 else { throw .invalid("edit: the forget set is empty") }
        if s.hasRetainTerm && retain.count == 0 { throw .invalid("edit: \(s.objective.rawValue) needs a retain set, and this one is empty") }
        guard relabel.count == forget.count else { throw .internalError("unlearning: \(relabel.count) relabel targets for \(forget.count) forget examples") }
        self.relabel = relabel
        let c = (model: model, selection: selection)
        training = s.optimizer.training(run: run)
        let names = s.changedTensors(selection, layers: model.config.layers)
        let needsReference = s.objective == .npo || s.objective == .rmu || (s.hasRetainTerm && s.retainLoss == .kl)
        reference = needsReference ? try c.model.clone() : nil
        if s.adapter == .lora {
            wrapper = try LoRANetwork(base: c.model, names: names, rank: s.rank, alpha: s.alpha, dropout: s.dropout, seed: training.seed)
        } else {
            wrapper = try SubsetNetwork(base: c.model, names: names)
        }
        optimizer = AdamW(table: wrapper.tensorTable, blockSize: wrapper.parameterBlock.count, spec: training)
        let perEpoch = (forget.count + training.batchSize - 1) / training.batchSize
        totalSteps = stepLimit ?? perEpoch * training.epochs
        schedule = LRSchedule(lr: training.learningRate, minLR: training.minLearningRate, warmupSteps: training.warmup(totalSteps: totalSteps), totalSteps: totalSteps)
        rng = RNG(seed: training.seed, stream: "unlearn batches")
        accumulated = [Float](repeating: 0, count: wrapper.parameterBlock.count)
        rmuPoint = HookPoint(.blockOutput, layer: s.rmuLayer(c.selection, layers: c.model.config.layers))
        if s.objective == .rmu {
            var r = RNG(seed: training.seed, stream: "rmu direction")
            var u = (0..<c.model.config.hidden).map { _ in Float(r.uniform()) }
            let norm = Float(u.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
            u = u.map { $0 / max(norm, 1e-12) * Float(s.steeringCoeff) }
            direction = u
        } else {
            direction = []
        }
        if s.objective == .npo, let ref = reference {
            // ℓ_ref of every forget example, once
            var i = 0
            while i < forget.count {
                let rows = Array(i..<min(forget.count, i + 64))
                referenceNLL += try Self.nll(ref, forget, rows)
                i += rows.count
            }
        }
    }

    /// Per-example answer NLL of `examples[rows]` under `m` (forward only).
    static func nll(_ m: LanguageModel, _ examples: AnswerExamples, _ rows: [Int]) throws(EngineError) -> [Double] {
        let b = examples.batch(rows)
        try m.ensureCapacity(batch: rows.count, seq: b.width)
        try m.net.forward(tokens: b.tokens, targets: nil, batch: rows.count, seq: b.width, keepForBackward: false)
        return answerNLL(m.net, targets: b.targets, width: b.width, lengths: b.lengths)
    }

    func step() throws(EngineError) -> StepReport? {
        guard taken < totalSteps else { return nil }
        let bs = training.batchSize
        let perEpoch = (forget.count + bs - 1) / bs
        let epoch = taken / perEpoch, index = taken % perEpoch
        if index == 0 {
            order = Array(0..<forget.count)
            rng.shuffle(&order)
        }
        let rows = Array(order[(index * bs)..<min(forget.count, (index + 1) * bs)])
        for i in 0..<accumulated.count { accumulated[i] = 0 }

        let forgetValue = try forgetPass(rows)
        var retainValue = 0.0
        if settings.hasRetainTerm {
            let retainRows = (0..<rows.count).map { _ in rng.below(retain.count) }
            retainValue = try retainPass(retainRows)
        }
        let loss = forgetValue + retainValue
        guard loss.isFinite else { throw .numeric("unlearning: the loss became \(loss) at step \(taken + 1); lower optimizer.learning_rate") }

        let norm = accumulated.withUnsafeBufferPointer { AdamW.globalNorm($0, table: wrapper.tensorTable, trainable: wrapper.trainableMask) }
        guard norm.isFinite else { throw .numeric("unlearning: the gradient norm became \(norm) at step \(taken + 1)") }
        let lr = Float(schedule.rate(at: taken))
        accumulated.withUnsafeBufferPointer { g in
            optimizer.update(parameters: wrapper.parameterBlock, gradients: g, learningRate: lr,
                             gradientScale: AdamW.clipScale(norm: norm, maxNorm: training.gradClip), trainable: wrapper.trainableMask)
        }
        taken += 1
        lastTerms = (forgetValue, retainValue)
        var r = StepReport()
        r.step = taken; r.totalSteps = totalSteps; r.epoch = epoch
        r.loss = Float(loss); r.learningRate = lr; r.gradNorm = norm
        return r
    }

    /// Adds the wrapper's gradient of the last pass to the step's sum.
    func accumulate() {
        let g = wrapper.gradientBlock
        for i in 0..<accumulated.count { accumulated[i] += g[i] }
    }

    /// Runs `examples[rows]` through the wrapper with `loss` and accumulates the gradient.
    func pass(_ examples: AnswerExamples, _ rows: [Int], answers: [Int32]? = nil, targets withTargets: Bool = true,
              _ loss: (GPTNeoX, _ batch: (tokens: [Int32], targets: [Int32], width: Int, lengths: [Int])) throws(EngineError) -> [HookPoint: [Float]]) throws(EngineError) {
        let b = examples.batch(rows, answers: answers)
        try b.tokens.withUnsafeBufferPointer { (tk: UnsafeBufferPointer<Int32>) throws(EngineError) in
            try b.targets.withUnsafeBufferPointer { (tg: UnsafeBufferPointer<Int32>) throws(EngineError) in
                try wrapper.gradients(tokens: tk.baseAddress!, targets: withTargets ? tg.baseAddress! : nil, rows: rows.count, width: b.width) { (net: GPTNeoX) throws(EngineError) in
                    try loss(net, b)
                }
            }
        }
        accumulate()
    }

    /// Token-NLL weights: `perRow[b]` on row b's answer position.
    static func weights(_ perRow: [Double], width: Int, lengths: [Int]) -> [Float] {
        var w = [Float](repeating: 0, count: lengths.count * width)
        for (b, len) in lengths.enumerated() { w[b * width + len - 1] = Float(perRow[b]) }
        return w
    }

    func forgetPass(_ rows: [Int]) throws(EngineError) -> Double {
        let s = settings, n = Double(rows.count)
        var value = 0.0
        switch s.objective {
        case .gradAscent, .gradDiff, .kl, .relabel:
            let sign = s.objective == .relabel ? 1.0 : -1.0
            try pass(forget, rows, answers: s.objective == .relabel ? relabel : nil) { (net, b) throws(EngineError) in
                let w = Self.weights([Double](repeating: sign * s.gamma / n, count: rows.count), width: b.width, lengths: b.lengths)
                value = Double(try net.applyObjective(Objective([.tokenNLL(weights: w, normalizer: 1)])).total)
                return [:]
            }
        case .npo, .simnpo:
            try pass(forget, rows) { (net, b) throws(EngineError) in
                let nll = answerNLL(net, targets: b.targets, width: b.width, lengths: b.lengths)
                let (v, g) = s.objective == .npo
                    ? UnlearnLoss.npo(nll: nll, reference: rows.map { referenceNLL[$0] }, beta: s.beta)
                    : UnlearnLoss.simnpo(nll: nll, lengths: [Double](repeating: 1, count: rows.count), beta: s.beta, delta: s.delta)
                value = s.gamma * v
                _ = try net.applyObjective(Objective([.tokenNLL(weights: Self.weights(g.map { s.gamma * $0 }, width: b.width, lengths: b.lengths), normalizer: 1)]))
                return [:]
            }
        case .rmu:
            let point = rmuPoint, c = direction, dim = direction.count
            try pass(forget, rows, targets: false) { (net, b) throws(EngineError) in
                let h = net.activation(at: point)
                let (v, g) = UnlearnLoss.meanSquared(UnsafeBufferPointer(h.all), target: { _, k in c[k] }, rows: rows.count, width: b.width, dim: dim, lengths: b.lengths)
                value = s.gamma * v
                return [point: g.map { Float(s.gamma) * $0 }]
            }
        }
        return value
    }

    func retainPass(_ rows: [Int]) throws(EngineError) -> Double {
        let s = settings, n = Double(rows.count)
        var value = 0.0
        if s.objective == .rmu {
            let point = rmuPoint, dim = direction.count
            let ref = reference!
            let b0 = retain.batch(rows)
            try ref.ensureCapacity(batch: rows.count, seq: b0.width)
            try ref.net.forward(tokens: b0.tokens, targets: nil, batch: rows.count, seq: b0.width, keepForBackward: false)
            let target = ref.net.activation(at: point).toArray()
            try pass(retain, rows, targets: false) { (net, b) throws(EngineError) in
                let h = net.activation(at: point)
                let (v, g) = UnlearnLoss.meanSquared(UnsafeBufferPointer(h.all), target: { i, k in target[i + k] }, rows: rows.count, width: b.width, dim: dim, lengths: b.lengths)
                value = s.retainWeight * v
                return [point: g.map { Float(s.retainWeight) * $0 }]
            }
            return value
        }
        if s.retainLoss == .kl {
            // the original model's logits at each retain answer position
            let ref = reference!
            let b0 = retain.batch(rows)
            try ref.ensureCapacity(batch: rows.count, seq: b0.width)
            try ref.net.forward(tokens: b0.tokens, targets: nil, batch: rows.count, seq: b0.width, keepForBackward: false)
            let v = ref.config.vocabSize
            var q: [Float] = []
            q.reserveCapacity(rows.count * v)
            let lg = ref.net.logits.baseAddress!
            for (bi, len) in b0.lengths.enumerated() { q += UnsafeBufferPointer(start: lg + (bi * b0.width + len - 1) * v, count: v) }
            try pass(retain, rows) { (net, b) throws(EngineError) in
                let positions = b.lengths.enumerated().map { (b: $0.offset, t: $0.element - 1) }
                value = Double(try net.applyObjective(Objective([.kl(positions: positions, reference: .logits(q), weight: Float(s.retainWeight), direction: .referenceToModel)])).total)
                return [:]
            }
            return value
        }
        try pass(retain, rows) { (net, b) throws(EngineError) in
            let w = Self.weights([Double](repeating: s.retainWeight / n, count: rows.count), width: b.width, lengths: b.lengths)
            value = Double(try net.applyObjective(Objective([.tokenNLL(weights: w, normalizer: 1)])).total)
            return [:]
        }
        return value
    }

    func commit() throws(EngineError) -> EditArtifacts {
        var a = wrapper.commit()
        a.report = .object([
            ("objective", .string(settings.objective.rawValue)),
            ("adapter", .string(settings.adapter.rawValue)),
            ("steps", .int(taken)),
            ("forget_examples", .int(forget.count)),
            ("retain_pool", .int(retain.count)),
            ("last_forget_term", .number(lastTerms.forget)),
            ("last_retain_term", .number(lastTerms.retain)),
        ] + (settings.objective == .rmu ? [("rmu_block", .int(rmuPoint.layer))] : []))
        return a
    }
}
