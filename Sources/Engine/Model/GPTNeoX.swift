#if canImport(Glibc)
import Glibc
#endif

/// A GPT-NeoX causal language model as Hugging Face `GPTNeoXForCausalLM` computes it, or with
/// `architecture: "llama"` a Llama-style one as `LlamaForCausalLM` does (RMSNorm, SwiGLU,
/// grouped-query attention, no biases, sequential residual), with a hand-written forward and
/// backward pass over preallocated buffers (nothing allocates in a step). Both share every buffer,
/// hook site and the block loop; where they differ the loop branches on `llama`.
///
/// Buffers (row-major, N = B·T rows, row n = (b, t) with n = b·T + t):
///   tokens [B, T] Int32 in 0..<V;  targets [B, T] Int32, the token to predict at each position
///   (already shifted: targets[b, t] = label of position t+1), negative = ignored (padding).
///   Padding must be at the end of a sequence (right-padded): attention is causal only.
///   logits [B, T, V] after `forward` (unless the loss gradient was fused into them).
///   loss = mean over non-ignored positions of −log softmax(logits)[target], or any `Objective`
///   (Objective.swift); `backward` can also start from a caller's d loss / d logits and take
///   d loss / d activation at hook points.
public final class GPTNeoX {
    public let config: ModelConfig
    public let table: ParameterTable
    public let params: ParameterBlock
    public let grads: ParameterBlock
    public let maxBatch: Int, maxSeq: Int
    /// Set to collect per-phase timings (bh-bench --profile).
    public var profiler: Profiler?
    /// Per tensor: false = frozen (no gradient, its weight-gradient GEMM skipped, AdamW leaves it).
    public var trainable: [Bool]
    /// Side paths on the linear layers (LoRA): added after each adapted matrix product in the
    /// forward pass, differentiated in the backward pass. nil = none.
    public var adapter: LinearAdapter?

    // sizes
    let L: Int, D: Int, I: Int, H: Int, hs: Int, V: Int, rot: Int, maxN: Int
    /// llama: RMSNorm, SwiGLU, no biases (see ModelConfig.architecture).
    let llama: Bool
    /// Columns of the fused q|k|v product and where each head sits in it.
    let layout: Kernels.QKVLayout
    /// Columns of the first MLP product: I, or 2I for llama's gate|up.
    let fc1Out: Int
    /// Per role (Slot.rawValue): the matrices a side path adapts in its product, and their first column.
    let adaptedMembers: [[(slot: ParameterTable.Slot, column: Int)]]

    // activations, leading layer dimension, layer stride = maxN rows
    let tokensBuf: UnsafeMutablePointer<Int32>, targetsBuf: UnsafeMutablePointer<Int32>
    let res: FloatBuffer        // [L+1][N, D]
    let ln1: FloatBuffer, ln2: FloatBuffer  // [L][N, D]
    let mean1: FloatBuffer, rstd1: FloatBuffer, mean2: FloatBuffer, rstd2: FloatBuffer  // [L][N]
    let qkv: FloatBuffer        // [L][N, layout.width] post-bias, rotated q, k
    let probs: FloatBuffer      // [L][B, H, T, T]
    let attnY: FloatBuffer      // [L][N, D] merged head outputs
    let attnOut: FloatBuffer    // [L][N, D]
    let attnRes: FloatBuffer    // [L][N, D] x + attn (sequential residual only)
    let mlpPre: FloatBuffer     // [L][N, I] pre-activation, then gelu'(pre) once the GELU pass ran; llama: [L][N, 2I] gate|up
    let mlpH: FloatBuffer       // [L][N, I]
    let ones: FloatBuffer       // [N] of 1 (bias gradients as sgemv)
    let mlpOut: FloatBuffer     // [L][N, D]
    let lnf: FloatBuffer, lnfMean: FloatBuffer, lnfRstd: FloatBuffer
    let logitsBuf: FloatBuffer  // [N, V]
    let lse: FloatBuffer, lossRow: FloatBuffer
    // backward scratch
    let dres: FloatBuffer, dln1: FloatBuffer, dln2: FloatBuffer, dAttnY: FloatBuffer, dqkv: FloatBuffer, dH: FloatBuffer
    let dGateUp: FloatBuffer    // [N, 2I] llama only: d gate|up
    let dlnf: FloatBuffer
    let dSite: FloatBuffer      // [N, D] d attn_out or d mlp_out with an injected gradient (not the residual's)
    let lnPartial: FloatBuffer
    let lossPartial: UnsafeMutablePointer<Double>
    let needFlags: UnsafeMutablePointer<Bool>  // [L+1] scratch of backward()
    let cosT: FloatBuffer, sinT: FloatBuffer
    let scratchThreads: Int

    // state of the last forward pass
    public private(set) var batch = 0, seq = 0
    public private(set) var validTargets = 0
    var haveTargets = false
    var logitsHoldGradient = false
    var keptForBackward = true     // false after an evaluation-only forward (no GELU derivative kept)
    var lossGradScale: Float = 0

    // gradient captures at hook points
    private var captures: [HookPoint: FloatBuffer] = [:]

    /// Builds a model with parameters initialised as Hugging Face's `_init_weights` does (normal(0,
    /// init_range) weights and embeddings, zero biases, LayerNorm 1/0) from `config.seed`, with buffers
    /// for up to maxBatch sequences of maxSeq tokens.
    /// `initializeWeights: false` leaves the weights zero for a caller that copies its own in
    /// (growing the buffers of a trained model: drawing 18M normals first took seconds).
    public init(config: ModelConfig, maxBatch: Int, maxSeq: Int, initializeWeights: Bool = true) throws(EngineError) {
        try config.validate()
        guard config.vocabSize >= 2 else {
            throw .invalid("model config: vocab_size = \(config.vocabSize): set it from the dataset (at least 2)")
        }
        guard maxBatch >= 1, maxSeq >= 1 else { throw .invalid("model: max batch \(maxBatch) and max sequence \(maxSeq) must be at least 1") }
        guard maxSeq <= config.maxPositions else {
            throw .invalid("model: sequence length \(maxSeq) exceeds max_positions = \(config.maxPositions)")
        }
        let plannedTable = ParameterTable(config: config)
        // Priced before anything is allocated: weights, gradients and the two AdamW moments a trainer
        // adds, then the activation buffers below.
        let (L0, D0, I0, V0, H0, n0) = (config.layers, config.hidden, config.intermediate, config.vocabSize, config.heads, maxBatch &* maxSeq)
        let floats = MemoryBudget.total([[4, plannedTable.totalCount], [n0, D0, 10 * L0 + 10], [n0, I0, 3 * L0 + 3], [n0, V0],
                                         [n0, 4 * L0 + 8], [L0, maxBatch, H0, maxSeq, maxSeq]])
        try MemoryBudget.check(floats.flatMap { MemoryBudget.total([[$0, 4]]) },
                               "model config: \(L0) layers × hidden \(D0) × intermediate \(I0) × vocabulary \(V0) (\(plannedTable.totalCount) parameters, at batch \(maxBatch) × \(maxSeq))")
        self.config = config
        table = plannedTable
        params = ParameterBlock(table: table)
        grads = ParameterBlock(table: table)
        trainable = Array(repeating: true, count: table.tensors.count)
        self.maxBatch = maxBatch; self.maxSeq = maxSeq
        L = config.layers; D = config.hidden; I = config.intermediate; H = config.heads; hs = config.headSize
        V = config.vocabSize; rot = config.rotaryDims
        llama = config.isLlama
        layout = Kernels.QKVLayout(heads: H, kvHeads: config.kvHeadCount, headSize: hs, interleaved: !llama)
        fc1Out = llama ? 2 * I : I
        adaptedMembers = ParameterTable.Slot.allCases.map { plannedTable.members($0, config: config) }
        let n = try checkedProduct([maxBatch, maxSeq], what: "model: batch × sequence")
        maxN = n
        _ = try checkedProduct([n, max(V, 3 * D, I), max(L, 1) + 1, 4], what: "model: activation memory", limit: 1 << 40)
        tokensBuf = .allocate(capacity: n); tokensBuf.initialize(repeating: 0, count: n)
        targetsBuf = .allocate(capacity: n); targetsBuf.initialize(repeating: -1, count: n)
        res = FloatBuffer(count: (L + 1) * n * D)
        ln1 = FloatBuffer(count: L * n * D); ln2 = FloatBuffer(count: L * n * D)
        mean1 = FloatBuffer(count: L * n); rstd1 = FloatBuffer(count: L * n)
        mean2 = FloatBuffer(count: L * n); rstd2 = FloatBuffer(count: L * n)
        qkv = FloatBuffer(count: L * n * layout.width)
        probs = FloatBuffer(count: L * maxBatch * H * maxSeq * maxSeq)
        attnY = FloatBuffer(count: L * n * D); attnOut = FloatBuffer(count: L * n * D)
        attnRes = FloatBuffer(count: config.parallelResidual ? 0 : L * n * D)
        mlpPre = FloatBuffer(count: L * n * fc1Out); mlpH = FloatBuffer(count: L * n * I)
        mlpOut = FloatBuffer(count: L * n * D)
        lnf = FloatBuffer(count: n * D); lnfMean = FloatBuffer(count: n); lnfRstd = FloatBuffer(count: n)
        logitsBuf = FloatBuffer(count: n * V)
        lse = FloatBuffer(count: n); lossRow = FloatBuffer(count: n)
        dres = FloatBuffer(count: n * D); dln1 = FloatBuffer(count: n * D); dln2 = FloatBuffer(count: n * D)
        dAttnY = FloatBuffer(count: n * D); dqkv = FloatBuffer(count: n * layout.width); dH = FloatBuffer(count: n * I)
        dGateUp = FloatBuffer(count: llama ? n * 2 * I : 0)
        dlnf = FloatBuffer(count: n * D); dSite = FloatBuffer(count: n * D)
        ones = FloatBuffer(count: n); ones.ptr.update(repeating: 1, count: n)
        scratchThreads = max(64, Parallel.threads)
        lnPartial = FloatBuffer(count: scratchThreads * 4 * D)
        lossPartial = .allocate(capacity: scratchThreads); lossPartial.initialize(repeating: 0, count: scratchThreads)
        needFlags = .allocate(capacity: L + 1); needFlags.initialize(repeating: false, count: L + 1)
        // rotary tables [maxSeq, rot/2]
        let half = rot / 2
        cosT = FloatBuffer(count: maxSeq * half); sinT = FloatBuffer(count: maxSeq * half)
        for t in 0..<maxSeq {
            for i in 0..<half {
                let invFreq = Float(1.0 / pow(config.rotaryBase, Double(2 * i) / Double(rot)))
                let f = Float(t) * invFreq
                cosT.ptr[t * half + i] = Float(cos(Double(f)))
                sinT.ptr[t * half + i] = Float(sin(Double(f)))
            }
        }
        if initializeWeights { initialize(seed: config.seed) }
    }

    deinit {
        tokensBuf.deallocate(); targetsBuf.deallocate(); lossPartial.deallocate(); needFlags.deallocate()
    }

    /// Re-initialises every parameter from `seed` (tensor by tensor in table order, one RNG stream).
    public func initialize(seed: UInt64) {
        var rng = RNG(seed: seed, stream: "model-init")
        let std = config.initRange
        for (k, t) in table.tensors.enumerated() {
            let p = params.view(k)
            switch t.kind {
            case .embedding, .weight: for j in 0..<p.count { p[j] = Float(rng.normal() * std) }
            case .bias: p.update(repeating: 0)
            case .norm: p.update(repeating: t.name.hasSuffix(".weight") ? 1 : 0)
            }
        }
    }

    public var parameterCount: Int { table.parameterCount }

    // MARK: freezing

    /// Sets the trainable flag of every tensor matching `predicate`.
    public func setTrainable(_ flag: Bool, where predicate: (TensorEntry) -> Bool) {
        for (k, t) in table.tensors.enumerated() where predicate(t) { trainable[k] = flag }
    }

    /// Freezes everything, then makes only the tensors of the given blocks trainable
    /// (optionally only names containing one of `parts`, e.g. ["mlp."]).
    public func trainOnly(layers: [Int], parts: [String]? = nil) {
        setTrainable(false) { _ in true }
        setTrainable(true) { t in
            guard let l = t.layer, layers.contains(l) else { return false }
            return parts.map { ps in ps.contains { t.name.contains($0) } } ?? true
        }
    }

    // MARK: gradient captures

    /// After each `backward`, the gradient of the loss w.r.t. the activation at each of these points
    /// is kept (see `activationGradient(at:)`). Allocates here, not in the step.
    /// A point the backward pass does not pass (or a block that does not exist) is refused.
    public func captureGradients(at points: [HookPoint]) throws(EngineError) {
        for p in points { try checkBackwardPoint(p, "capture a gradient") }
        captures.removeAll()
        for p in points {
            let w = p.site == .mlpHidden ? I : D
            captures[p] = FloatBuffer(count: maxN * w)
        }
    }

    /// The points whose gradients are captured (kept when the model is rebuilt larger).
    public var capturedPoints: [HookPoint] { Array(captures.keys) }

    /// d loss / d activation at a captured point, [B, T, width] of the last backward pass.
    public func activationGradient(at point: HookPoint) -> ActivationView? {
        guard let b = captures[point] else { return nil }
        return ActivationView(base: b.ptr, batch: batch, seq: seq, width: point.site == .mlpHidden ? I : D)
    }

    @inline(__always)
    private func capture(_ site: HookSite, _ layer: Int, _ src: UnsafePointer<Float>) {
        if captures.isEmpty { return }
        guard let b = captures[HookPoint(site, layer: layer)] else { return }
        b.ptr.update(from: src, count: batch * seq * (site == .mlpHidden ? I : D))
    }

    // MARK: views of the last forward pass

    /// logits [B, T, V] of the last forward pass (not valid after `backward` or a fused forward).
    public var logits: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: logitsBuf.ptr, count: batch * seq * V) }
    public var logitsAreValid: Bool { !logitsHoldGradient }
    /// Per-position loss [B, T] of the last forward pass with targets (0 where ignored).
    public var positionLoss: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: lossRow.ptr, count: batch * seq) }

    /// Activation of the last forward pass at a hook point (a view into the model's buffers).
    public func activation(at p: HookPoint) -> ActivationView {
        let n = batch * seq, l = p.layer
        func v(_ b: FloatBuffer, _ off: Int, _ w: Int) -> ActivationView {
            ActivationView(base: b.ptr + off, batch: batch, seq: seq, width: w)
        }
        switch p.site {
        case .embeddings: return v(res, 0, D)
        case .blockInput: return v(res, l * maxN * D, D)
        case .blockOutput: return v(res, (l + 1) * maxN * D, D)
        case .attnInput: return v(ln1, l * maxN * D, D)
        case .mlpInput: return v(ln2, l * maxN * D, D)
        case .attnOutput: return v(attnOut, l * maxN * D, D)
        case .mlpHidden: return v(mlpH, l * maxN * I, I)
        case .mlpOutput: _ = n; return v(mlpOut, l * maxN * D, D)
        case .finalNorm: return v(lnf, 0, D)
        }
    }

    // MARK: forward

    /// Array convenience for `forward(tokens:targets:...)`.
    @discardableResult
    public func forward(tokens: [Int32], targets: [Int32]? = nil, batch: Int, seq: Int, hooks: ForwardHooks? = nil,
                        fuseLossGradient: Bool = false, keepForBackward: Bool = true) throws(EngineError) -> Float {
        guard tokens.count == batch * seq else { throw .invalid("model forward: \(tokens.count) tokens for batch \(batch) × seq \(seq)") }
        if let targets, targets.count != tokens.count {
            throw .invalid("model forward: \(targets.count) targets for \(tokens.count) tokens")
        }
        return try tokens.withUnsafeBufferPointer { (tp) throws(EngineError) -> Float in
            guard let targets else {
                return try forward(tokens: tp.baseAddress!, targets: nil, batch: batch, seq: seq, hooks: hooks, fuseLossGradient: fuseLossGradient,
                                   keepForBackward: keepForBackward)
            }
            return try targets.withUnsafeBufferPointer { (gp) throws(EngineError) -> Float in
                try forward(tokens: tp.baseAddress!, targets: gp.baseAddress!, batch: batch, seq: seq, hooks: hooks, fuseLossGradient: fuseLossGradient,
                            keepForBackward: keepForBackward)
            }
        }
    }

    /// Runs the model on tokens [batch, seq]; with targets, returns the mean loss (else NaN).
    /// `fuseLossGradient` (training): the softmax/cross-entropy pass writes d loss/d logits over the
    /// logits at once, saving a pass; `logits` is then no longer valid.
    @discardableResult
    /// `firstRow` and `totalRows`: this batch is rows firstRow..< of a run of totalRows (LanguageModel
    /// runs large inputs in chunks); hooks address rows of the whole run.
    /// `keepForBackward: false` (evaluation, recording, tracing): skips what only a backward pass
    /// reads (GELU's derivative); `backward` then refuses until a forward pass keeps it again.
    public func forward(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch b: Int, seq t: Int,
                        hooks: ForwardHooks? = nil, fuseLossGradient: Bool = false,
                        firstRow: Int = 0, totalRows: Int? = nil, keepForBackward: Bool = true) throws(EngineError) -> Float {
        guard b >= 1, b <= maxBatch, t >= 1, t <= maxSeq else {
            throw .invalid("model forward: batch \(b) × seq \(t) outside the model's buffers (\(maxBatch) × \(maxSeq))")
        }
        let n = b * t
        for i in 0..<n where tokens[i] < 0 || Int(tokens[i]) >= V {
            throw .invalid("model forward: token[\(i / t)][\(i % t)] = \(tokens[i]) outside the vocabulary 0..<\(V)")
        }
        if let targets {
            for i in 0..<n where Int(targets[i]) >= V {
                throw .invalid("model forward: target[\(i / t)][\(i % t)] = \(targets[i]) outside the vocabulary 0..<\(V)")
            }
        }
        batch = b; seq = t
        keptForBackward = keepForBackward
        tokensBuf.update(from: tokens, count: n)
        if let targets { targetsBuf.update(from: targets, count: n) } else { targetsBuf.update(repeating: -1, count: n) }
        haveTargets = targets != nil
        let hk = (hooks?.isEmpty ?? true) ? nil : hooks
        let P = params
        let pf = profiler
        pf?.start()
        func view(_ p: UnsafeMutablePointer<Float>, _ w: Int) -> ActivationView { ActivationView(base: p, batch: b, seq: t, width: w, firstRow: firstRow) }
        if let hk, firstRow == 0 {
            try hk.validate(rows: totalRows ?? b, seq: t, layers: L) { $0 == .mlpHidden ? I : D }
        }

        Kernels.embeddingForward(out: res.ptr, tokens: tokensBuf, wte: P.ptr(table.embedIn), n: n, d: D)
        pf?.stop(.embed)
        try hk?.run(.embeddings, 0, view(res.ptr, D))

        // Without hooks, a block's residual add (x + attn + mlp) is left to the next norm, which
        // writes the sum while reading it (one pass less); hooks see and may change each sum, so
        // with hooks it is written first.
        var pending: Residual? = nil
        for l in 0..<L {
            let x = res.ptr + l * maxN * D, out = res.ptr + (l + 1) * maxN * D
            try hk?.run(.blockInput, l, view(x, D))
            let ix = { (s: ParameterTable.Slot) in P.ptr(self.table.index(layer: l, s)) }
            let l1 = ln1.ptr + l * maxN * D, l2 = ln2.ptr + l * maxN * D
            let m1 = mean1.ptr + l * maxN, r1 = rstd1.ptr + l * maxN
            let qkvL = qkv.ptr + l * maxN * layout.width, pr = probs.ptr + l * maxBatch * H * maxSeq * maxSeq
            let ay = attnY.ptr + l * maxN * D, ao = attnOut.ptr + l * maxN * D
            let pre = mlpPre.ptr + l * maxN * fc1Out, hid = mlpH.ptr + l * maxN * I, mo = mlpOut.ptr + l * maxN * D
            let eps = Float(config.layerNormEps)

            if config.parallelResidual {
                Kernels.layerNormForward(out1: l1, w1: ix(.ln1W), b1: ix(.ln1B), out2: l2, w2: ix(.ln2W), b2: ix(.ln2B),
                                         mean: m1, rstd: r1, x: x, residual: pending, n: n, d: D, eps: eps)
                pf?.stop(.layerNorm)
                try hk?.run(.attnInput, l, view(l1, D))
                try hk?.run(.mlpInput, l, view(l2, D))
            } else {
                normForward(out: l1, l, .ln1W, .ln1B, mean: m1, rstd: r1, x: x, residual: pending, n: n)
                pf?.stop(.layerNorm)
                try hk?.run(.attnInput, l, view(l1, D))
            }
            // attention
            BLAS.linearForward(out: qkvL, x: l1, w: ix(.qkvW), rows: n, inDim: D, outDim: layout.width)
            adaptForward(l, .qkvW, x: l1, y: qkvL, width: layout.width, rows: n)
            pf?.stop(.qkvGemm)
            Kernels.qkvBiasRotaryForward(qkv: qkvL, bias: llama ? nil : ix(.qkvB), cosT: cosT.ptr, sinT: sinT.ptr, n: n, t: t, layout: layout, rot: rot)
            pf?.stop(.rotary)
            Kernels.attentionForward(y: ay, probs: pr, qkv: qkvL, b: b, t: t, layout: layout)
            pf?.stop(.attention)
            if !llama { Kernels.fillRows(out: ao, bias: ix(.denseB), n: n, width: D) }
            pf?.stop(.biasFill)
            BLAS.linearForward(out: ao, x: ay, w: ix(.denseW), rows: n, inDim: D, outDim: D, accumulate: !llama)
            adaptForward(l, .denseW, x: ay, y: ao, width: D, rows: n)
            pf?.stop(.denseGemm)
            try hk?.run(.attnOutput, l, view(ao, D))
            var mlpIn = l2
            if !config.parallelResidual {
                // h = x + attn, written by the norm that reads it
                let h = attnRes.ptr + l * maxN * D
                let m2 = mean2.ptr + l * maxN, r2 = rstd2.ptr + l * maxN
                normForward(out: l2, l, .ln2W, .ln2B, mean: m2, rstd: r2, x: h, residual: Residual(x, ao), n: n)
                pf?.stop(.layerNorm)
                try hk?.run(.mlpInput, l, view(l2, D))
                mlpIn = l2
            }
            // MLP
            BLAS.linearForward(out: pre, x: mlpIn, w: ix(.fc1W), rows: n, inDim: D, outDim: fc1Out)
            adaptForward(l, .fc1W, x: mlpIn, y: pre, width: fc1Out, rows: n)
            pf?.stop(.fc1Gemm)
            if llama {
                Kernels.swigluForward(h: hid, pre: pre, n: n, width: I)
            } else {
                Kernels.biasGeluForward(h: hid, pre: pre, bias: ix(.fc1B), n: n, width: I, derivative: keepForBackward)
            }
            pf?.stop(.gelu)
            try hk?.run(.mlpHidden, l, view(hid, I))
            if !llama { Kernels.fillRows(out: mo, bias: ix(.fc2B), n: n, width: D) }
            pf?.stop(.biasFill)
            BLAS.linearForward(out: mo, x: hid, w: ix(.fc2W), rows: n, inDim: I, outDim: D, accumulate: !llama)
            adaptForward(l, .fc2W, x: hid, y: mo, width: D, rows: n)
            pf?.stop(.fc2Gemm)
            try hk?.run(.mlpOutput, l, view(mo, D))
            let sum = config.parallelResidual ? Residual(x, ao, mo) : Residual(attnRes.ptr + l * maxN * D, mo)
            if hk == nil {
                pending = sum
            } else {
                Kernels.add(out: out, sum.a, sum.b, sum.c, count: n * D)
                pf?.stop(.residual)
                try hk?.run(.blockOutput, l, view(out, D))
            }
        }
        let top = res.ptr + L * maxN * D
        finalNormForward(out: lnf.ptr, mean: lnfMean.ptr, rstd: lnfRstd.ptr, x: top, residual: pending, n: n)
        pf?.stop(.layerNorm)
        try hk?.run(.finalNorm, 0, view(lnf.ptr, D))
        BLAS.linearForward(out: logitsBuf.ptr, x: lnf.ptr, w: P.ptr(table.embedOut), rows: n, inDim: D, outDim: V)
        pf?.stop(.unembedGemm)
        logitsHoldGradient = false
        guard targets != nil else { validTargets = 0; return .nan }
        var count = 0
        for i in 0..<n where targetsBuf[i] >= 0 { count += 1 }
        validTargets = count
        lossGradScale = count > 0 ? 1 / Float(count) : 0
        let total = Kernels.crossEntropyForward(logits: logitsBuf.ptr, lse: lse.ptr, lossRow: lossRow.ptr, targets: targetsBuf,
                                                n: n, v: V, gradScale: fuseLossGradient ? lossGradScale : nil, partial: lossPartial)
        pf?.stop(.crossEntropy)
        logitsHoldGradient = fuseLossGradient
        return count > 0 ? Float(total / Double(count)) : 0
    }

    // MARK: backward

    /// Zeroes the gradient block (gradients accumulate across backward passes until then).
    public func zeroGrad() { grads.zero() }

    private func anyTrainable(layer l: Int) -> Bool {
        if table.layerTensors[l].contains(where: { trainable[$0] }) { return true }
        if let a = adapter, ParameterTable.adaptable.contains(where: { a.adapts(layer: l, slot: $0.0) }) { return true }
        return false
    }

    /// Accumulates d loss / d parameter into `grads` for every trainable tensor, for the last forward
    /// pass (which must have had targets). Frozen tensors get nothing and their weight GEMMs are
    /// skipped; blocks below the lowest trainable tensor or captured point are not visited.
    public func backward() throws(EngineError) { try backward(injecting: [:]) }

    /// `backward()` plus d loss / d activation [B, T, width] at hook points (representation losses),
    /// added where the backward pass passes each site. The logits' gradient is the forward's loss
    /// (its objective, or cross-entropy when it had targets); with neither, the pass starts from the
    /// injected gradients alone and skips the blocks above the highest one. An injection at
    /// attn_output / mlp_output reaches that sublayer only, not the residual stream beside it.
    /// Captured gradients (`captureGradients`) include the injections at their site and downstream of
    /// it, in the order the forward hooks run: block l's output comes before block l+1's input (one
    /// tensor), so an injection at block l+1's input reaches a capture at block l's output, not back.
    public func backward(injecting gradients: [HookPoint: [Float]]) throws(EngineError) {
        guard batch > 0, haveTargets || logitsHoldGradient || !gradients.isEmpty else {
            throw .misuse("model backward: no forward pass with targets to differentiate")
        }
        try checkKeptForBackward()
        try checkInjections(gradients)
        backwardPass(gradients)
    }

    /// Backward from a caller's d loss / d logits [B, T, V] for the last forward pass (targets not
    /// needed), which replaces the forward's loss; plus optional injections as in `backward(injecting:)`.
    public func backward(dLogits: UnsafeBufferPointer<Float>, injecting gradients: [HookPoint: [Float]] = [:]) throws(EngineError) {
        guard batch > 0 else { throw .misuse("model backward: no forward pass to differentiate") }
        try checkKeptForBackward()
        guard dLogits.count == batch * seq * V, let src = dLogits.baseAddress else {
            throw .invalid("model backward: d loss / d logits has \(dLogits.count) values, expected [\(batch), \(seq), \(V)]")
        }
        try checkInjections(gradients)
        logitsBuf.ptr.update(from: src, count: dLogits.count)
        logitsHoldGradient = true
        backwardPass(gradients)
    }

    /// Array form of `backward(dLogits:injecting:)`.
    public func backward(dLogits: [Float], injecting gradients: [HookPoint: [Float]] = [:]) throws(EngineError) {
        try dLogits.withUnsafeBufferPointer { (d) throws(EngineError) in try backward(dLogits: d, injecting: gradients) }
    }

    private func checkKeptForBackward() throws(EngineError) {
        guard keptForBackward else {
            throw .misuse("model backward: the last forward pass was run for evaluation only (keepForBackward: false); "
                          + "run it again with keepForBackward: true to differentiate it")
        }
    }

    /// The backward pass passes every hook site: each can take an injected gradient or capture one.
    private func checkBackwardPoint(_ p: HookPoint, _ what: String) throws(EngineError) {
        if !p.site.isGlobal && (p.layer < 0 || p.layer >= L) {
            throw .invalid("model backward: cannot \(what) at \(p.site.rawValue) of block \(p.layer): the model has \(L) blocks (0...\(L - 1))")
        }
    }

    private func checkInjections(_ gradients: [HookPoint: [Float]]) throws(EngineError) {
        for (p, g) in gradients {
            try checkBackwardPoint(p, "inject a gradient")
            let w = p.site == .mlpHidden ? I : D
            guard g.count == batch * seq * w else {
                throw .invalid("model backward: gradient at \(p.site.rawValue) \(p.layer) has \(g.count) values, expected [\(batch), \(seq), \(w)]")
            }
        }
    }

    private func backwardPass(_ injections: [HookPoint: [Float]]) {
        let b = batch, t = seq, n = b * t
        let P = params, G = grads
        let pf = profiler
        pf?.start()
        // need[l]: the gradient must reach the input of block l (l = L: the top of the stack).
        let need = needFlags
        need.update(repeating: false, count: L + 1)
        var acc = trainable[table.embedIn] || captures.keys.contains { $0.site == .embeddings || ($0.site == .blockInput && $0.layer == 0) }
        for l in 0..<L {
            need[l] = acc
            acc = acc || anyTrainable(layer: l) || captures.keys.contains { !$0.site.isGlobal && ($0.layer == l || ($0.site == .blockInput && $0.layer == l + 1)) }
        }
        need[L] = acc

        // dst[N, width] += the injected gradient at (site, layer), if any
        func inject(_ site: HookSite, _ layer: Int, _ dst: UnsafeMutablePointer<Float>) {
            guard !injections.isEmpty, let g = injections[HookPoint(site, layer: layer)] else { return }
            g.withUnsafeBufferPointer { s in for i in 0..<s.count { dst[i] += s[i] } }
        }
        // d of a sublayer output: dy itself, or dy + the injection there in dSite (dy stays the residual's)
        func sublayerGradient(_ site: HookSite, _ layer: Int, _ dy: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            guard !injections.isEmpty, let g = injections[HookPoint(site, layer: layer)] else { return dy }
            g.withUnsafeBufferPointer { s in for i in 0..<s.count { dSite.ptr[i] = dy[i] + s[i] } }
            return dSite.ptr
        }

        let fromLogits = haveTargets || logitsHoldGradient
        let finalPoint = HookPoint(.finalNorm, layer: 0)
        // the gradient reaches the final LayerNorm's output: from the logits, or injected there
        let atFinal = fromLogits || injections[finalPoint] != nil
        let fw = trainable[table.finalLnW], fb = !llama && trainable[table.finalLnB]
        // the highest block with an injection (blockInput l is block l−1's output; −1: embeddings only)
        var top = L - 1
        if !fromLogits {
            top = injections.keys.map { p in
                p.site == .embeddings ? -1 : p.site == .finalNorm ? L - 1 : p.site == .blockInput ? p.layer - 1 : p.layer
            }.max() ?? -1
            if !need[L] && !(atFinal && (fw || fb || captures[finalPoint] != nil)) { return }
            dres.ptr.update(repeating: 0, count: n * D)
        }
        if fromLogits && !logitsHoldGradient {
            Kernels.crossEntropyBackward(logits: logitsBuf.ptr, lse: lse.ptr, targets: targetsBuf, n: n, v: V, gradScale: lossGradScale)
            pf?.stop(.crossEntropy)
            logitsHoldGradient = true
        }
        let dlogits = logitsBuf.ptr
        if fromLogits && trainable[table.embedOut] {
            BLAS.linearBackwardWeight(dw: G.ptr(table.embedOut), dy: dlogits, x: lnf.ptr, rows: n, inDim: D, outDim: V)
            pf?.stop(.bUnembedGemm)
        }
        if atFinal && (need[L] || fw || fb || captures[finalPoint] != nil) {
            if fromLogits {
                BLAS.linearBackwardInput(dx: dlnf.ptr, dy: dlogits, w: P.ptr(table.embedOut), rows: n, inDim: D, outDim: V, accumulate: false)
                pf?.stop(.bUnembedGemm)
            } else {
                dlnf.ptr.update(repeating: 0, count: n * D)
            }
            inject(.finalNorm, 0, dlnf.ptr)
            capture(.finalNorm, 0, dlnf.ptr)
            dres.ptr.update(repeating: 0, count: n * D)
            if llama {
                Kernels.rmsNormBackward(dx: need[L] ? dres.ptr : nil, dw: fw ? G.ptr(table.finalLnW) : nil, dy: dlnf.ptr, w: P.ptr(table.finalLnW),
                                        x: res.ptr + L * maxN * D, rstd: lnfRstd.ptr, n: n, d: D, partial: lnPartial.ptr)
            } else {
                Kernels.layerNormBackward(dx: need[L] ? dres.ptr : nil, dw1: fw ? G.ptr(table.finalLnW) : nil, db1: fb ? G.ptr(table.finalLnB) : nil,
                                          dy1: dlnf.ptr, w1: P.ptr(table.finalLnW), dw2: nil, db2: nil, dy2: nil, w2: nil,
                                          x: res.ptr + L * maxN * D, mean: lnfMean.ptr, rstd: lnfRstd.ptr, n: n, d: D, partial: lnPartial.ptr)
            }
            pf?.stop(.bLayerNorm)
        }
        if !need[L] { return }

        for l in stride(from: top, through: 0, by: -1) {
            if !need[l + 1] { break }
            // the residual stream between blocks l and l+1: block l+1's input is block l's output
            if l + 1 < L {
                inject(.blockInput, l + 1, dres.ptr)
                capture(.blockInput, l + 1, dres.ptr)
            }
            inject(.blockOutput, l, dres.ptr)
            // a role is trainable when any tensor of it is (llama's fused runs); absent roles never are
            let tr = { (s: ParameterTable.Slot) in self.table.has(layer: l, s) && self.table.run(layer: l, s).contains { self.trainable[$0] } }
            let wp = { (s: ParameterTable.Slot) in P.ptr(self.table.index(layer: l, s)) }
            let gp = { (s: ParameterTable.Slot) -> UnsafeMutablePointer<Float>? in tr(s) ? G.ptr(self.table.index(layer: l, s)) : nil }
            let x = res.ptr + l * maxN * D
            let l1 = ln1.ptr + l * maxN * D, l2 = ln2.ptr + l * maxN * D
            let m1 = mean1.ptr + l * maxN, r1 = rstd1.ptr + l * maxN
            let qkvL = qkv.ptr + l * maxN * layout.width, pr = probs.ptr + l * maxBatch * H * maxSeq * maxSeq
            let ay = attnY.ptr + l * maxN * D
            let pre = mlpPre.ptr + l * maxN * fc1Out, hid = mlpH.ptr + l * maxN * I
            let needIn = need[l]
            let wantLn2 = needIn || captures[HookPoint(.mlpInput, layer: l)] != nil || tr(.ln2W) || tr(.ln2B) || !config.parallelResidual
            let wantLn1 = needIn || captures[HookPoint(.attnInput, layer: l)] != nil || tr(.ln1W) || tr(.ln1B)

            capture(.blockOutput, l, dres.ptr)
            // MLP: dres is d mlp_out (dmo adds an injection there)
            let dmo = sublayerGradient(.mlpOutput, l, dres.ptr)
            capture(.mlpOutput, l, dmo)
            if tr(.fc2W) { BLAS.linearBackwardWeight(dw: gp(.fc2W)!, dy: dmo, x: hid, rows: n, inDim: I, outDim: D); pf?.stop(.bFc2Gemm) }
            if tr(.fc2B) { Kernels.biasBackward(db: gp(.fc2B)!, dy: dmo, n: n, width: D, ones: ones.ptr); pf?.stop(.bBias) }
            BLAS.linearBackwardInput(dx: dH.ptr, dy: dmo, w: wp(.fc2W), rows: n, inDim: I, outDim: D, accumulate: false)
            adaptBackward(l, .fc2W, x: hid, dy: dmo, width: D, dx: dH.ptr, rows: n)
            pf?.stop(.bFc2Gemm)
            inject(.mlpHidden, l, dH.ptr)
            capture(.mlpHidden, l, dH.ptr)
            // dF1: d of the first MLP product (GELU: in place over dH; llama: d gate|up)
            let dF1 = llama ? dGateUp.ptr : dH.ptr
            if llama {
                Kernels.swigluBackward(dpre: dF1, dh: dH.ptr, pre: pre, n: n, width: I)
            } else {
                Kernels.geluBackward(dpre: dH.ptr, dh: dH.ptr, geluGrad: pre, count: n * I)
            }
            pf?.stop(.bGelu)
            if tr(.fc1W) { weightGradient(l, .fc1W, dy: dF1, x: l2, rows: n, inDim: D, outDim: fc1Out); pf?.stop(.bFc1Gemm) }
            if tr(.fc1B) { Kernels.biasBackward(db: gp(.fc1B)!, dy: dH.ptr, n: n, width: I, ones: ones.ptr); pf?.stop(.bBias) }
            if wantLn2 {
                BLAS.linearBackwardInput(dx: dln2.ptr, dy: dF1, w: wp(.fc1W), rows: n, inDim: D, outDim: fc1Out, accumulate: false)
            }
            adaptBackward(l, .fc1W, x: l2, dy: dF1, width: fc1Out, dx: wantLn2 ? dln2.ptr : nil, rows: n)
            if wantLn2 {
                pf?.stop(.bFc1Gemm)
                inject(.mlpInput, l, dln2.ptr)
                capture(.mlpInput, l, dln2.ptr)
            }
            if !config.parallelResidual {
                // dres += LN2 backward: dres becomes d(x + attn)
                let m2 = mean2.ptr + l * maxN, r2 = rstd2.ptr + l * maxN
                normBackward(dx: dres.ptr, l, .ln2W, .ln2B, dy: dln2.ptr, x: attnRes.ptr + l * maxN * D, mean: m2, rstd: r2, n: n)
                pf?.stop(.bLayerNorm)
            }
            // The attention sublayer's backward is skipped when nothing in it or below it wants a
            // gradient (an edit of this block's MLP alone: the frozen-tensor backward ends here).
            let attentionAdapted = adapter.map { a in
                (adaptedMembers[ParameterTable.Slot.qkvW.rawValue] + adaptedMembers[ParameterTable.Slot.denseW.rawValue]).contains { a.adapts(layer: l, slot: $0.slot) }
            } ?? false
            let attentionNeeded = wantLn1 || tr(.qkvW) || tr(.qkvB) || tr(.denseW) || tr(.denseB) || attentionAdapted
                || [HookSite.attnOutput, .attnInput].contains { captures[HookPoint($0, layer: l)] != nil || injections[HookPoint($0, layer: l)] != nil }
            if attentionNeeded {
                // attention: dres is d attn_out (dao adds an injection there)
                let dao = sublayerGradient(.attnOutput, l, dres.ptr)
                capture(.attnOutput, l, dao)
                if tr(.denseW) { BLAS.linearBackwardWeight(dw: gp(.denseW)!, dy: dao, x: ay, rows: n, inDim: D, outDim: D); pf?.stop(.bDenseGemm) }
                if tr(.denseB) { Kernels.biasBackward(db: gp(.denseB)!, dy: dao, n: n, width: D, ones: ones.ptr); pf?.stop(.bBias) }
                BLAS.linearBackwardInput(dx: dAttnY.ptr, dy: dao, w: wp(.denseW), rows: n, inDim: D, outDim: D, accumulate: false)
                adaptBackward(l, .denseW, x: ay, dy: dao, width: D, dx: dAttnY.ptr, rows: n)
                pf?.stop(.bDenseGemm)
                Kernels.attentionBackward(dqkv: dqkv.ptr, dy: dAttnY.ptr, qkv: qkvL, probs: pr, cosT: cosT.ptr, sinT: sinT.ptr,
                                          b: b, t: t, layout: layout, rot: rot)
                pf?.stop(.bAttention)
                if tr(.qkvW) { weightGradient(l, .qkvW, dy: dqkv.ptr, x: l1, rows: n, inDim: D, outDim: layout.width); pf?.stop(.bQkvGemm) }
                if tr(.qkvB) { Kernels.biasBackward(db: gp(.qkvB)!, dy: dqkv.ptr, n: n, width: layout.width, ones: ones.ptr); pf?.stop(.bBias) }
                if wantLn1 {
                    BLAS.linearBackwardInput(dx: dln1.ptr, dy: dqkv.ptr, w: wp(.qkvW), rows: n, inDim: D, outDim: layout.width, accumulate: false)
                }
                adaptBackward(l, .qkvW, x: l1, dy: dqkv.ptr, width: layout.width, dx: wantLn1 ? dln1.ptr : nil, rows: n)
                if wantLn1 {
                    pf?.stop(.bQkvGemm)
                    inject(.attnInput, l, dln1.ptr)
                    capture(.attnInput, l, dln1.ptr)
                }
            }
            if config.parallelResidual {
                // dres (= d block output) += LN1 and LN2 backward over the same input x
                if wantLn1 && wantLn2 {
                    Kernels.layerNormBackward(dx: needIn ? dres.ptr : nil, dw1: gp(.ln1W), db1: gp(.ln1B), dy1: dln1.ptr, w1: wp(.ln1W),
                                              dw2: gp(.ln2W), db2: gp(.ln2B), dy2: dln2.ptr, w2: wp(.ln2W),
                                              x: x, mean: m1, rstd: r1, n: n, d: D, partial: lnPartial.ptr)
                    pf?.stop(.bLayerNorm)
                } else if wantLn1 || wantLn2 {  // only one LayerNorm's parameters are trainable, nothing below
                    Kernels.layerNormBackward(dx: nil, dw1: wantLn1 ? gp(.ln1W) : gp(.ln2W), db1: wantLn1 ? gp(.ln1B) : gp(.ln2B),
                                              dy1: wantLn1 ? dln1.ptr : dln2.ptr, w1: wantLn1 ? wp(.ln1W) : wp(.ln2W),
                                              dw2: nil, db2: nil, dy2: nil, w2: nil, x: x, mean: m1, rstd: r1, n: n, d: D, partial: lnPartial.ptr)
                    pf?.stop(.bLayerNorm)
                }
            } else if wantLn1 {
                normBackward(dx: needIn ? dres.ptr : nil, l, .ln1W, .ln1B, dy: dln1.ptr, x: x, mean: m1, rstd: r1, n: n)
                pf?.stop(.bLayerNorm)
            }
        }
        if need[0] {
            inject(.blockInput, 0, dres.ptr)
            capture(.blockInput, 0, dres.ptr)
            inject(.embeddings, 0, dres.ptr)
            capture(.embeddings, 0, dres.ptr)
            if trainable[table.embedIn] {
                Kernels.embeddingBackward(dwte: G.ptr(table.embedIn), dout: dres.ptr, tokens: tokensBuf, n: n, d: D)
                pf?.stop(.bEmbed)
            }
        }
    }

    // MARK: what the two architectures do differently

    /// A block's norm (`w`, `b`: its slots): LayerNorm, or RMSNorm for llama (no mean, no bias).
    /// With `residual`, x is first written as its sum (Residual).
    func normForward(out: UnsafeMutablePointer<Float>, _ l: Int, _ w: ParameterTable.Slot, _ b: ParameterTable.Slot,
                     mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>,
                     residual: Residual? = nil, n: Int) {
        let P = params, eps = Float(config.layerNormEps)
        if llama {
            Kernels.rmsNormForward(out: out, w: P.ptr(table.index(layer: l, w)), rstd: rstd, x: x, residual: residual, n: n, d: D, eps: eps)
        } else {
            Kernels.layerNormForward(out1: out, w1: P.ptr(table.index(layer: l, w)), b1: P.ptr(table.index(layer: l, b)), out2: nil, w2: nil, b2: nil,
                                     mean: mean, rstd: rstd, x: x, residual: residual, n: n, d: D, eps: eps)
        }
    }

    /// The final norm over [n, D] rows.
    func finalNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                          x: UnsafeMutablePointer<Float>, residual: Residual? = nil, n: Int) {
        let eps = Float(config.layerNormEps)
        if llama {
            Kernels.rmsNormForward(out: out, w: params.ptr(table.finalLnW), rstd: rstd, x: x, residual: residual, n: n, d: D, eps: eps)
        } else {
            Kernels.layerNormForward(out1: out, w1: params.ptr(table.finalLnW), b1: params.ptr(table.finalLnB), out2: nil, w2: nil, b2: nil,
                                     mean: mean, rstd: rstd, x: x, residual: residual, n: n, d: D, eps: eps)
        }
    }

    /// Backward of one block norm: dx += (when given), and its trainable parameters' gradients.
    private func normBackward(dx: UnsafeMutablePointer<Float>?, _ l: Int, _ w: ParameterTable.Slot, _ b: ParameterTable.Slot,
                              dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int) {
        let wi = table.index(layer: l, w)
        let dw = trainable[wi] ? grads.ptr(wi) : nil
        if llama {
            Kernels.rmsNormBackward(dx: dx, dw: dw, dy: dy, w: params.ptr(wi), x: x, rstd: rstd, n: n, d: D, partial: lnPartial.ptr)
        } else {
            let bi = table.index(layer: l, b)
            Kernels.layerNormBackward(dx: dx, dw1: dw, db1: trainable[bi] ? grads.ptr(bi) : nil, dy1: dy, w1: params.ptr(wi),
                                      dw2: nil, db2: nil, dy2: nil, w2: nil, x: x, mean: mean, rstd: rstd, n: n, d: D, partial: lnPartial.ptr)
        }
    }

    /// dW += dyᵀ·x for a role's matrix; over llama's fused runs one GEMM covers every member, and
    /// the gradient of a frozen member is put back to zero (frozen tensors get nothing).
    private func weightGradient(_ l: Int, _ slot: ParameterTable.Slot, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                rows n: Int, inDim: Int, outDim: Int) {
        let run = table.run(layer: l, slot)
        BLAS.linearBackwardWeight(dw: grads.ptr(run.lowerBound), dy: dy, x: x, rows: n, inDim: inDim, outDim: outDim)
        for k in run where !trainable[k] { grads.view(k).update(repeating: 0) }
    }

    /// The side path's share of a role's product y[rows, width]: one call per adapted matrix, at its columns.
    func adaptForward(_ l: Int, _ slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, width: Int, rows n: Int) {
        guard let adapter else { return }
        for m in adaptedMembers[slot.rawValue] { adapter.forward(layer: l, slot: m.slot, x: x, y: y + m.column, ldy: width, rows: n) }
    }

    private func adaptBackward(_ l: Int, _ slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, width: Int,
                               dx: UnsafeMutablePointer<Float>?, rows n: Int) {
        guard let adapter else { return }
        for m in adaptedMembers[slot.rawValue] {
            adapter.backward(layer: l, slot: m.slot, x: x, dy: dy + m.column, lddy: width, dx: dx, rows: n)
        }
    }

    /// Hugging Face-style labels [B, T] (label = the token itself, −100 or any negative = ignore) to
    /// our shifted targets: targets[b, t] = labels[b, t+1], the last position ignored.
    public static func shiftedTargets(labels: [Int32], batch: Int, seq: Int) -> [Int32] {
        var out = [Int32](repeating: -100, count: batch * seq)
        for bi in 0..<batch { for ti in 0..<(seq - 1) { out[bi * seq + ti] = labels[bi * seq + ti + 1] } }
        return out
    }

    /// Matrix-product FLOPs of one forward + backward pass per token at sequence length T
    /// (6 per weight-matrix parameter incl. the unembedding, plus attention's q·k and p·v at T/2 average keys).
    public func trainingFlopsPerToken(seq t: Int) -> Double {
        let matrix = Double(L * (layout.width * D + D * D + fc1Out * D + I * D) + V * D)
        let attn = Double(L) * 2 * 2 * Double(D) * Double(t + 1) / 2  // forward q·k and p·v
        return 6 * matrix + 3 * attn
    }
}
