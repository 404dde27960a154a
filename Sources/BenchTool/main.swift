// bh-bench: training throughput of the hand-written GPT-NeoX (forward + backward + AdamW) on random
// tokens, against the machine's own sgemm peak.
//   bh-bench [--preset pythia-31m-shape] [--vocab 5000] [--batch 128] [--seq 16] [--threads 2]
//            [--steps 20] [--warmup 3] [--profile]
#if canImport(Glibc)
import Glibc
#endif
import COpenBLAS
import Engine

var preset = "pythia-31m-shape", vocab = 5000, batch = 128, seq = 16, threads = 2, steps = 20, warmup = 3
var profile = false, kernels = false
var args = Array(CommandLine.arguments.dropFirst())
func usage() -> Never {
    print("usage: bh-bench [--preset NAME] [--vocab V] [--batch B] [--seq T] [--threads N] [--steps S] [--warmup W] [--profile]")
    exit(2)
}
while !args.isEmpty {
    let a = args.removeFirst()
    if a == "--profile" { profile = true; continue }
    if a == "--kernels" { kernels = true; continue }
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
    default: usage()
    }
}

Runtime.setThreads(threads)

/// Best-of sgemm GFLOP/s for C[m,n] = A[m,k]·B[k,n] (row-major, like our linear layers).
func sgemmPeak(m: Int, n: Int, k: Int, transB: Bool, reps: Int) -> Double {
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
    print("  parameters \(model.parameterCount), OPENBLAS_CORETYPE=\(String(cString: getenv("OPENBLAS_CORETYPE") ?? strdup("(unset)")))")
    let flops = model.trainingFlopsPerToken(seq: seq)
    print("  FLOP per token (6 × matrix params + attention): \(fmt(flops / 1e6, 2)) MFLOP")

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
    print("  sgemm shape-matched (unembedding \(n)×\(config.hidden)·\(config.hidden)×\(vocab)): \(fmt(peakShape, 1)) GFLOP/s")
    print("  fraction of 1024³ peak: \(fmt(100 * flops * tokPerS / 1e9 / peak, 1))%")
    if profile {
        let p = Profiler()
        model.profiler = p
        for _ in 0..<steps { _ = try step() }
        model.profiler = nil
        print("profile (per step, \(steps) steps):")
        print(p.report(steps: steps), terminator: "")
    }
} catch {
    print("bh-bench: \(error)")
    exit(1)
}
