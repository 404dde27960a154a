import Engine

/// `bh-bench --kernels`: each element-wise kernel family at the benchmark's shapes, on every
/// instruction set this CPU runs (the same inputs; median of `reps` calls, in ms), with the largest
/// difference of each path's outputs from the first path's.
func kernelBench(config: ModelConfig, batch: Int, seq: Int, reps: Int) {
    let n = batch * seq, d = config.hidden, inter = config.intermediate, v = config.vocabSize
    let layout = Kernels.QKVLayout(heads: config.heads, kvHeads: config.kvHeadCount, headSize: config.headSize, interleaved: !config.isLlama)
    var rng = RNG(seed: 7)
    func filled(_ count: Int, _ scale: Float = 1) -> FloatBuffer {
        let b = FloatBuffer(count: count)
        for i in 0..<count { b.ptr[i] = (Float(rng.uniform()) - 0.5) * 2 * scale }
        return b
    }
    let x = filled(n * d), w1 = filled(d), b1 = filled(d), w2 = filled(d), b2 = filled(d)
    let out1 = FloatBuffer(count: n * d), out2 = FloatBuffer(count: n * d), mean = FloatBuffer(count: n), rstd = FloatBuffer(count: n)
    let dy1 = filled(n * d), dy2 = filled(n * d), dx = FloatBuffer(count: n * d), partial = FloatBuffer(count: 64 * 4 * d)
    let dw1 = FloatBuffer(count: d), db1 = FloatBuffer(count: d), dw2 = FloatBuffer(count: d), db2 = FloatBuffer(count: d)
    let pre0 = filled(n * inter, 3), pre = FloatBuffer(count: n * inter), h = FloatBuffer(count: n * inter), fb = filled(inter)
    let qkv0 = filled(n * layout.width), qkv = FloatBuffer(count: n * layout.width), qb = filled(layout.width)
    let probs = FloatBuffer(count: batch * config.heads * seq * seq), y = FloatBuffer(count: n * d), dqkv = FloatBuffer(count: n * layout.width)
    let half = config.rotaryDims / 2
    let cosT = filled(seq * max(1, half)), sinT = filled(seq * max(1, half))
    let logits0 = filled(n * v, 4), logits = FloatBuffer(count: n * v), lse = FloatBuffer(count: n), lossRow = FloatBuffer(count: n)
    let targets = (0..<n).map { Int32($0 * 7919 % v) }
    let dpart = UnsafeMutablePointer<Double>.allocate(capacity: 64)
    let pc = 7_299_072
    let p0 = filled(pc), p = FloatBuffer(count: pc), g = filled(pc, 1e-3)
    let table = TensorTable([TensorEntry(name: "w", offset: 0, shape: [pc / 256, 256])])
    var adam = AdamW(table: table, blockSize: pc, spec: TrainSpec())

    typealias Case = (name: String, run: () -> Void, output: FloatBuffer)
    let cases: [Case] = [
        ("layernorm_forward (pair)", {
            Kernels.layerNormForward(out1: out1.ptr, w1: w1.ptr, b1: b1.ptr, out2: out2.ptr, w2: w2.ptr, b2: b2.ptr,
                                     mean: mean.ptr, rstd: rstd.ptr, x: x.ptr, n: n, d: d, eps: 1e-5) }, out1),
        ("layernorm_backward (pair)", {
            dx.zero()
            Kernels.layerNormBackward(dx: dx.ptr, dw1: dw1.ptr, db1: db1.ptr, dy1: dy1.ptr, w1: w1.ptr, dw2: dw2.ptr, db2: db2.ptr,
                                      dy2: dy2.ptr, w2: w2.ptr, x: x.ptr, mean: mean.ptr, rstd: rstd.ptr, n: n, d: d, partial: partial.ptr) }, dx),
        ("bias_gelu_forward", {
            pre.ptr.update(from: pre0.ptr, count: pre.count)
            Kernels.biasGeluForward(h: h.ptr, pre: pre.ptr, bias: fb.ptr, n: n, width: inter) }, h),
        ("gelu_backward", { Kernels.geluBackward(dpre: h.ptr, dh: pre0.ptr, geluGrad: pre.ptr, count: n * inter) }, h),
        ("qkv_bias_rotary", {
            qkv.ptr.update(from: qkv0.ptr, count: qkv.count)
            Kernels.qkvBiasRotaryForward(qkv: qkv.ptr, bias: qb.ptr, cosT: cosT.ptr, sinT: sinT.ptr, n: n, t: seq, layout: layout, rot: config.rotaryDims) }, qkv),
        ("attention_forward", { Kernels.attentionForward(y: y.ptr, probs: probs.ptr, qkv: qkv.ptr, b: batch, t: seq, layout: layout) }, y),
        ("attention_backward", {
            Kernels.attentionBackward(dqkv: dqkv.ptr, dy: dy1.ptr, qkv: qkv.ptr, probs: probs.ptr, cosT: cosT.ptr, sinT: sinT.ptr,
                                      b: batch, t: seq, layout: layout, rot: config.rotaryDims) }, dqkv),
        ("cross_entropy (fused gradient)", {
            logits.ptr.update(from: logits0.ptr, count: logits.count)
            _ = Kernels.crossEntropyForward(logits: logits.ptr, lse: lse.ptr, lossRow: lossRow.ptr, targets: targets, n: n, v: v,
                                            gradScale: 1 / Float(n), partial: dpart) }, logits),
        ("adamw (global norm + update)", {
            let norm = AdamW.globalNorm(UnsafeBufferPointer(start: g.ptr, count: pc), table: table, trainable: nil)
            adam.update(parameters: UnsafeMutableBufferPointer(start: p.ptr, count: pc), gradients: UnsafeBufferPointer(start: g.ptr, count: pc),
                        learningRate: 1e-3, gradientScale: AdamW.clipScale(norm: norm, maxNorm: 1), trainable: nil) }, p),
    ]
    let isas = KernelISA.supported
    print("kernels (median of \(reps) calls, ms; \(Runtime.threads) threads; shapes of \(config.layers) × \(d), batch \(batch) × \(seq), vocabulary \(v)):")
    print("  " + "kernel".padded(32) + isas.map { $0.rawValue.padded(10) }.joined() + "largest difference from \(isas[0].rawValue)")
    var totals = [Double](repeating: 0, count: isas.count)
    for c in cases {
        var row = "  " + c.name.padded(32)
        var first: [Float] = []
        var worst: Float = 0
        for (k, isa) in isas.enumerated() {
            Kernels.use(isa)
            // the same starting state for each path (AdamW and the in-place kernels change their inputs)
            p.copy(from: p0)
            adam = AdamW(table: table, blockSize: pc, spec: TrainSpec())
            var times: [Double] = []
            c.run()  // warm-up, and the output compared
            let result = c.output.toArray()
            if k == 0 { first = result } else {
                for i in 0..<result.count { worst = max(worst, abs(result[i] - first[i]) / max(1, abs(first[i]))) }
            }
            for _ in 0..<reps { let t0 = monotonicSeconds(); c.run(); times.append(monotonicSeconds() - t0) }
            times.sort()
            let ms = times[times.count / 2] * 1000
            totals[k] += ms
            row += fmt(ms, 3).padded(10)
        }
        print(row + (isas.count > 1 ? "\(worst)" : "-"))
    }
    print("  " + "total".padded(32) + totals.map { fmt($0, 3).padded(10) }.joined())
    Kernels.use(isas[0])
    dpart.deallocate()
}

extension String {
    func padded(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
