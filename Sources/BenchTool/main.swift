// bh-bench: training throughput of the hand-written GPT-NeoX (forward + backward + AdamW) on random
// tokens, against the machine's own sgemm peak; or the forward-only path, real edit steps, or each
// element-wise kernel on every instruction set.
//   bh-bench [--preset pythia-31m-shape] [--vocab 5000] [--batch 128] [--seq 16] [--threads 2]
//            [--steps 20] [--warmup 3] [--profile] [--forward | --edit lora|full | --kernels]
//            [--blas-threading engine|openblas] [--elementwise-threads N]
#if canImport(Glibc)
import Glibc
#endif
import Engine

var preset = "pythia-31m-shape", vocab = 5000, batch = 128, seq = 16, threads = 2, steps = 20, warmup = 3
var profile = false, kernels = false, edit = "", forward = false, blasThreading = "", elementwiseThreads = 0
var args = Array(CommandLine.arguments.dropFirst())
func usage() -> Never {
    print("usage: bh-bench [--preset NAME] [--vocab V] [--batch B] [--seq T] [--threads N] [--steps S] [--warmup W] [--profile]")
    print("                [--forward | --edit lora|full | --kernels] [--blas-threading engine|openblas]")
    print("                [--elementwise-threads N]")
    exit(2)
}
while !args.isEmpty {
    let a = args.removeFirst()
    if a == "--profile" { profile = true; continue }
    if a == "--kernels" { kernels = true; continue }
    if a == "--forward" { forward = true; continue }
    if a == "-h" || a == "--help" { usage() }
    guard let v = args.first else { usage() }
    args.removeFirst()
    switch a {
    case "--preset": preset = v
    case "--vocab": vocab = Int(v) ?? vocab
    case "--batch": batch = Int(v) ?? batch
    case "--seq": seq = Int(v) ?? seq
    case "--threads": threads = Int(v) ?? threads
    case "--steps": steps = Int(v) ?? steps
    case "--warmup": warmup = Int(v) ?? warmup
    case "--edit": edit = v
    case "--elementwise-threads": elementwiseThreads = Int(v) ?? 0
    case "--blas-threading": blasThreading = v
    default: usage()
    }
}

// --blas-threading openblas: the products on OpenBLAS's own pool (as before the engine split them
// across its threads); --elementwise-threads: fewer threads for the element-wise kernels.
if !blasThreading.isEmpty {
    guard let t = BLAS.Threading(rawValue: blasThreading) else { usage() }
    BLAS.use(t)
}
Runtime.setThreads(threads)
if elementwiseThreads > 0 { Parallel.threads = elementwiseThreads }

/// Runs body with the products on OpenBLAS's own threads: the reference rates (sgemm peak,
/// standalone products) are OpenBLAS's, whatever the step uses.
func onOpenBLASThreads<R>(_ body: () -> R) -> R {
    let saved = BLAS.threading
    BLAS.use(.openblas)
    defer { BLAS.use(saved) }
    return body()
}

/// Best-of sgemm GFLOP/s for C[m,n] = A[m,k]·B[k,n] (row-major, like our linear layers), on
/// OpenBLAS's own threads.
func sgemmPeak(m: Int, n: Int, k: Int, transB: Bool, reps: Int) -> Double {
    onOpenBLASThreads { sgemmBest(m: m, n: n, k: k, transB: transB, reps: reps) }
}

/// The same through BLAS.gemm as the step runs it (with engine threading, split across the engine's threads).
func sgemmBest(m: Int, n: Int, k: Int, transB: Bool, reps: Int) -> Double {
    let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
    var rng = RNG(seed: 1)
    for i in 0..<a.count { a.ptr[i] = Float(rng.uniform()) - 0.5 }
    for i in 0..<b.count { b.ptr[i] = Float(rng.uniform()) - 0.5 }
    var best = 0.0
    for _ in 0..<reps {
        let t0 = monotonicSeconds()
        BLAS.gemm(transA: false, transB: transB, m: m, n: n, k: k, a: a.ptr, lda: k, b: b.ptr, ldb: transB ? k : n, beta: 0, c: c.ptr, ldc: n)
        let dt = monotonicSeconds() - t0
        best = max(best, 2 * Double(m) * Double(n) * Double(k) / dt / 1e9)
    }
    return best
}

do {
    let config = try ModelConfig.named(preset, vocabSize: vocab)
    if !edit.isEmpty {
        try editBench(preset: preset, method: edit, steps: steps, warmup: warmup, profile: profile)
        exit(0)
    }
    if kernels {
        kernelBench(config: config, batch: batch, seq: seq, reps: steps)
        exit(0)
    }
    let model = try GPTNeoX(config: config, maxBatch: batch, maxSeq: seq)
    // The training step's optimizer path, as the Trainer runs it: global norm, clip at 1, AdamW.
    let entries = model.table.tensors
    let params = UnsafeMutableBufferPointer(start: model.params.storage.ptr, count: model.params.storage.count)
    let grads = UnsafeBufferPointer(start: model.grads.storage.ptr, count: model.grads.storage.count)
    let opt = AdamW(table: entries, blockSize: params.count, spec: TrainSpec())   // betas 0.9/0.95, eps 1e-8, decay 0.1
    let schedule = LRSchedule(lr: 1e-3, minLR: 1e-4, warmupSteps: 2, totalSteps: 1000)
    var rng = RNG(seed: 42)
    let n = batch * seq
    let tokens = (0..<n).map { _ in Int32(rng.below(vocab)) }
    var targets = [Int32](repeating: -100, count: n)
    for b in 0..<batch { for t in 0..<(seq - 1) { targets[b * seq + t] = tokens[b * seq + t + 1] } }

    print("bh-bench: preset \(preset), vocab \(vocab), batch \(batch) × seq \(seq) = \(n) tokens/step, threads \(threads)")
    print("  parameters \(model.parameterCount), OPENBLAS_CORETYPE=\(String(cString: getenv("OPENBLAS_CORETYPE") ?? strdup("(unset)"))), "
          + "products threaded by \(BLAS.threading == .engine ? "the engine (OpenBLAS single-threaded)" : "OpenBLAS")")
    print("blas_threading \(BLAS.threading.rawValue)")
    let flops = model.trainingFlopsPerToken(seq: seq)
    print("  FLOP per token (6 × matrix params + attention): \(fmt(flops / 1e6, 2)) MFLOP")

    if forward {
        // evaluation's path: forward only, no targets (logits kept), as the prompt batches run
        for _ in 0..<warmup { try model.forward(tokens: tokens, batch: batch, seq: seq, keepForBackward: false) }
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = monotonicSeconds()
            try model.forward(tokens: tokens, batch: batch, seq: seq, keepForBackward: false)
            times.append(monotonicSeconds() - t0)
        }
        times.sort()
        print("  forward only: median \(fmt(times[times.count / 2] * 1000, 2)) ms, best \(fmt(times[0] * 1000, 2)) ms over \(steps) passes")
        print("ours_forward_tokens_per_s \(fmt(Double(n) / times[times.count / 2], 0))")
        print("ours_forward_best_tokens_per_s \(fmt(Double(n) / times[0], 0))")
        if profile { _ = try profiled(model, steps, "forward pass") { () throws(EngineError) in try model.forward(tokens: tokens, batch: batch, seq: seq, keepForBackward: false) } }
        exit(0)
    }

    func step() throws(EngineError) -> Float {
        let loss = try model.forward(tokens: tokens, targets: targets, batch: batch, seq: seq, fuseLossGradient: true)
        model.zeroGrad()
        try model.backward()
        let t0 = model.profiler != nil ? monotonicSeconds() : 0
        let norm = AdamW.globalNorm(grads, table: entries, trainable: model.trainable)
        opt.update(parameters: params, gradients: grads, learningRate: Float(schedule.rate(at: opt.stepCount)),
                   gradientScale: AdamW.clipScale(norm: norm, maxNorm: 1), trainable: model.trainable)
        if let p = model.profiler { p.seconds[Profiler.Phase.optimizer.rawValue] += monotonicSeconds() - t0; p.calls[Profiler.Phase.optimizer.rawValue] += 1 }
        return loss
    }
    for _ in 0..<warmup { _ = try step() }
    var times: [Double] = []
    var loss: Float = 0
    for _ in 0..<steps {
        let t0 = monotonicSeconds()
        loss = try step()
        times.append(monotonicSeconds() - t0)
    }
    times.sort()
    let median = times[times.count / 2], best = times[0]
    let tokPerS = Double(n) / median
    print("  step time: median \(fmt(median * 1000, 1)) ms, best \(fmt(best * 1000, 1)) ms over \(steps) steps (loss \(loss))")
    print("ours_tokens_per_s \(fmt(tokPerS, 0))")
    print("ours_best_step_tokens_per_s \(fmt(Double(n) / best, 0))")
    print("  achieved \(fmt(flops * tokPerS / 1e9, 1)) GFLOP/s (median step), \(fmt(flops * Double(n) / best / 1e9, 1)) GFLOP/s (best step)")
    let peak = sgemmPeak(m: 1024, n: 1024, k: 1024, transB: false, reps: 20)
    let peakShape = sgemmPeak(m: n, n: vocab, k: config.hidden, transB: true, reps: 10)
    print("sgemm_peak_gflops \(fmt(peak, 1))   (1024³, best of 20)")
    if BLAS.threading == .engine {
        print("sgemm_split_peak_gflops \(fmt(sgemmBest(m: 1024, n: 1024, k: 1024, transB: false, reps: 20), 1))   (1024³ split across the engine's threads)")
    }
    print("  sgemm shape-matched (unembedding \(n)×\(config.hidden)·\(config.hidden)×\(vocab)): \(fmt(peakShape, 1)) GFLOP/s")
    print("  fraction of 1024³ peak: \(fmt(100 * flops * tokPerS / 1e9 / peak, 1))%")
    if profile {
        let p = try profiled(model, steps, "step") { () throws(EngineError) in _ = try step() }
        gemmEfficiency(profile: p, steps: steps, config: config, n: n)
    }
} catch {
    print("bh-bench: \(error)")
    exit(1)
}

/// Runs `body` `passes` times with the model's profiler on and prints the report.
func profiled(_ model: GPTNeoX, _ passes: Int, _ what: String, _ body: () throws(EngineError) -> Void) throws(EngineError) -> Profiler {
    let p = Profiler()
    model.profiler = p
    defer { model.profiler = nil }
    for _ in 0..<passes { try body() }
    print("profile (per \(what), \(passes) passes):")
    print(p.report(steps: passes), terminator: "")
    return p
}

/// Each GEMM phase of the training step against the same products run alone on OpenBLAS's own
/// threads (fresh buffers, median of 9): the in-step rate as a fraction of the standalone rate.
/// Prints the weighted total as `gemm_in_step_fraction`.
func gemmEfficiency(profile p: Profiler, steps: Int, config: ModelConfig, n: Int) {
    let d = config.hidden, i = config.intermediate, v = config.vocabSize, l = config.layers
    let qkvW = (config.heads + 2 * config.kvHeadCount) * config.headSize, f1 = config.isLlama ? 2 * i : i
    enum Kind { case forward, weight, input }
    // (phase, products per step: (kind, in, out, count))
    let phases: [(Profiler.Phase, [(Kind, Int, Int, Int)])] = [
        (.qkvGemm, [(.forward, d, qkvW, l)]), (.denseGemm, [(.forward, d, d, l)]), (.fc1Gemm, [(.forward, d, f1, l)]),
        (.fc2Gemm, [(.forward, i, d, l)]), (.unembedGemm, [(.forward, d, v, 1)]),
        (.bUnembedGemm, [(.weight, d, v, 1), (.input, d, v, 1)]), (.bFc2Gemm, [(.weight, i, d, l), (.input, i, d, l)]),
        (.bFc1Gemm, [(.weight, d, f1, l), (.input, d, f1, l)]), (.bDenseGemm, [(.weight, d, d, l), (.input, d, d, l)]),
        (.bQkvGemm, [(.weight, d, qkvW, l), (.input, d, qkvW, l)]),
    ]
    print("GEMMs in the step against the same products alone:")
    var inStep = 0.0, alone = 0.0, aloneForward = 0.0
    for (phase, products) in phases {
        let measured = p.seconds[phase.rawValue] / Double(steps)
        guard measured > 0 else { continue }
        var standalone = 0.0
        for (kind, inDim, outDim, count) in products {
            let x = FloatBuffer(count: n * inDim), w = FloatBuffer(count: inDim * outDim), y = FloatBuffer(count: n * outDim)
            for k in 0..<x.count { x.ptr[k] = Float(k % 7) * 0.01 }
            for k in 0..<w.count { w.ptr[k] = Float(k % 5) * 0.01 }
            var times: [Double] = []
            onOpenBLASThreads { for _ in 0..<9 {
                let t0 = monotonicSeconds()
                switch kind {
                case .forward: BLAS.linearForward(out: y.ptr, x: x.ptr, w: w.ptr, rows: n, inDim: inDim, outDim: outDim)
                case .weight: BLAS.linearBackwardWeight(dw: w.ptr, dy: y.ptr, x: x.ptr, rows: n, inDim: inDim, outDim: outDim)
                case .input: BLAS.linearBackwardInput(dx: x.ptr, dy: y.ptr, w: w.ptr, rows: n, inDim: inDim, outDim: outDim, accumulate: false)
                }
                times.append(monotonicSeconds() - t0)
            } }
            times.sort()
            standalone += times[4] * Double(count)
        }
        inStep += measured; alone += standalone
        if [.qkvGemm, .denseGemm, .fc1Gemm, .fc2Gemm, .unembedGemm].contains(phase) { aloneForward += standalone }
        print("  \(("\(phase)").padded(14)) in step \(fmt(measured * 1000, 2)) ms, alone \(fmt(standalone * 1000, 2)) ms: \(fmt(100 * standalone / measured, 1))%")
    }
    print("gemm_in_step_fraction \(fmt(alone / inStep, 3))")
    print("  (the step's GEMMs run at \(fmt(100 * alone / inStep, 1))% of the same products' standalone rate)")
    // what a step (a forward pass) would take if it were nothing but these products at OpenBLAS's rate
    print("gemm_alone_ms_per_step \(fmt(alone * 1000, 2))")
    print("gemm_alone_ms_per_forward \(fmt(aloneForward * 1000, 2))")
}
