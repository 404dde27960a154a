import Testing
#if canImport(Glibc)
import Glibc
#endif
import KernelInterface
@testable import Engine

/// The element-wise kernels' builds (AVX-512, AVX2, portable) give bit-identical results on the same
/// inputs: lane by lane the arithmetic is the same code, sums run in 16-element blocks folded in one
/// fixed order, and every build takes the same elements through the scalar tails (so a model trains
/// to the same weights on any CPU). Each test runs every build this CPU supports directly (not
/// through the process-wide choice).
@Suite struct KernelISATests {
    let builds = KernelISA.supported

    func random(_ n: Int, _ seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in (Float(rng.uniform()) - 0.5) * 2 * scale }
    }

    /// Largest |a − b| / max(1, |b|).
    func gap(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1) / max(1, abs($1.1))) }
    }

    /// Runs `body` once per build and checks every output is bit-identical to the portable build's.
    func agree(_ what: String, _ body: (any ElementwiseKernels.Type) -> [Float]) {
        let reference = body(KernelISA.portable.kernels)
        let finite = reference.allSatisfy { $0.isFinite }
        #expect(finite, "\(what): portable output not finite")
        for isa in builds where isa != .portable {
            let out = body(isa.kernels)
            let same = zip(out, reference).allSatisfy { $0.bitPattern == $1.bitPattern } && out.count == reference.count
            #expect(same, "\(what): \(isa.rawValue) differs from portable by up to \(gap(out, reference))")
        }
    }

    @Test func theChoiceIsReportedAndSupported() {
        #expect(builds.contains(.portable))
        #expect(builds.contains(Kernels.isa))
        #expect(builds.first == Kernels.isa || !KernelISA.requested.isEmpty)
        let info = Kernels.info
        #expect(info["selected"] == .string(Kernels.isa.rawValue))
        #expect(info["vector_width"] == .int(Kernels.isa.kernels.vectorWidth))
        #expect(KernelISA.avx512.kernels.vectorWidth == 16 && KernelISA.avx2.kernels.vectorWidth == 8)
        let flags = Runtime.cpuInfo().flags
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") && flags.contains("avx512dq") {
            #expect(builds.first == .avx512)
        }
    }

    @Test func expMatchesLibm() {
        let xs = stride(from: Float(-87), to: 88, by: 0.0377).map { $0 }
        for isa in builds {
            var out = [Float](repeating: 0, count: xs.count)
            isa.kernels.exp(xs, &out, count: xs.count)
            let worst = zip(xs, out).map { x, e in Float(abs(Double(e) - Glibc.exp(Double(x))) / Glibc.exp(Double(x))) }.max()!
            #expect(worst < 3e-7, "\(isa.rawValue): exp relative error \(worst)")
        }
    }

    @Test func geluMatchesErf() {
        let n = 4003  // not a whole number of vectors: the scalar tail runs too
        let xs = (0..<n).map { Float($0 - n / 2) * 0.005 }
        for isa in builds {
            var pre = xs, h = [Float](repeating: 0, count: n), bias = [Float](repeating: 0, count: n)
            isa.kernels.biasGeluForward(h: &h, pre: &pre, bias: &bias, rows: 0..<1, width: n, derivative: true)
            // evaluation only: the same h, pre untouched
            var pre2 = xs, h2 = [Float](repeating: 0, count: n)
            isa.kernels.biasGeluForward(h: &h2, pre: &pre2, bias: &bias, rows: 0..<1, width: n, derivative: false)
            #expect(h2.map(\.bitPattern) == h.map(\.bitPattern), "\(isa.rawValue): gelu without its derivative differs")
            #expect(pre2 == xs, "\(isa.rawValue): the pre-activation changed without the derivative")
            for i in 0..<n {
                let x = Double(xs[i]), cdf = 0.5 * (1 + erf(x / 2.0.squareRoot()))
                #expect(abs(Double(h[i]) - x * cdf) < 3e-7 * max(1, abs(x)), "\(isa.rawValue): gelu(\(x))")
                #expect(abs(Double(pre[i]) - (cdf + x * Glibc.exp(-x * x / 2) * 0.3989422804014327)) < 2e-6, "\(isa.rawValue): gelu'(\(x))")
            }
        }
    }

    @Test(arguments: [16, 37, 256])
    func normsAgree(d: Int) {
        let n = 9
        let x = random(n * d, 1, scale: 3), a = random(n * d, 2), b = random(n * d, 3), c = random(n * d, 4)
        let w1 = random(d, 5), b1 = random(d, 6), w2 = random(d, 7), b2 = random(d, 8), dy1 = random(n * d, 9), dy2 = random(n * d, 10)
        agree("layernorm pair d=\(d)") { k in
            var o1 = [Float](repeating: 0, count: n * d), o2 = o1, mean = [Float](repeating: 0, count: n), rstd = mean, xx = x
            k.layerNormForward(out1: &o1, w1: w1, b1: b1, out2: &o2, w2: w2, b2: b2, mean: &mean, rstd: &rstd, x: &xx, residual: nil,
                               rows: 0..<n, d: d, eps: 1e-5)
            var dx = [Float](repeating: 0.5, count: n * d), partial = [Float](repeating: 0, count: 4 * d)
            k.layerNormBackward(dx: &dx, dy1: dy1, w1: w1, dy2: dy2, w2: w2, x: xx, mean: mean, rstd: rstd, rows: 0..<n, d: d, partial: &partial)
            return o1 + o2 + mean + rstd + dx + partial
        }
        agree("layernorm with the residual add fused d=\(d)") { k in
            var o = [Float](repeating: 0, count: n * d), mean = [Float](repeating: 0, count: n), rstd = mean, xx = x
            let r = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeBufferPointer { cp in
                Residual(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!) } } }
            k.layerNormForward(out1: &o, w1: w1, b1: b1, out2: nil, w2: nil, b2: nil, mean: &mean, rstd: &rstd, x: &xx, residual: r,
                               rows: 0..<n, d: d, eps: 1e-5)
            return o + xx
        }
        agree("rmsnorm d=\(d)") { k in
            var o = [Float](repeating: 0, count: n * d), rstd = [Float](repeating: 0, count: n), xx = x
            k.rmsNormForward(out: &o, w: w1, rstd: &rstd, x: &xx, residual: nil, rows: 0..<n, d: d, eps: 1e-6)
            var dx = [Float](repeating: 0, count: n * d), partial = [Float](repeating: 0, count: d)
            k.rmsNormBackward(dx: &dx, dy: dy1, w: w1, x: xx, rstd: rstd, rows: 0..<n, d: d, partial: &partial)
            return o + rstd + dx + partial
        }
    }

    @Test func fusedResidualNormEqualsAddThenNorm() {
        let n = 5, d = 40
        let a = random(n * d, 11), b = random(n * d, 12), c = random(n * d, 13), w = random(d, 14), bias = random(d, 15)
        for isa in builds {
            let k = isa.kernels
            var x1 = [Float](repeating: 0, count: n * d), o1 = x1, m1 = [Float](repeating: 0, count: n), r1 = m1
            k.add(out: &x1, a, b, c, range: 0..<(n * d))
            k.layerNormForward(out1: &o1, w1: w, b1: bias, out2: nil, w2: nil, b2: nil, mean: &m1, rstd: &r1, x: &x1, residual: nil, rows: 0..<n, d: d, eps: 1e-5)
            var x2 = [Float](repeating: 0, count: n * d), o2 = x2, m2 = [Float](repeating: 0, count: n), r2 = m2
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeBufferPointer { cp in
                k.layerNormForward(out1: &o2, w1: w, b1: bias, out2: nil, w2: nil, b2: nil, mean: &m2, rstd: &r2, x: &x2,
                                   residual: Residual(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!), rows: 0..<n, d: d, eps: 1e-5)
            } } }
            #expect(x1 == x2 && o1 == o2 && m1 == m2 && r1 == r2, "\(isa.rawValue): fused and separate residual add differ")
        }
    }

    @Test func activationsAgree() {
        let n = 7, i = 45
        let pre = random(n * 2 * i, 21, scale: 4), dh = random(n * i, 22), bias = random(i, 23)
        agree("bias+gelu and its backward") { k in
            var p = Array(pre[0..<(n * i)]), h = [Float](repeating: 0, count: n * i)
            k.biasGeluForward(h: &h, pre: &p, bias: bias, rows: 0..<n, width: i, derivative: true)
            var d = [Float](repeating: 0, count: n * i)
            k.multiply(out: &d, dh, p, range: 0..<(n * i))
            return h + p + d
        }
        agree("swiglu and its backward") { k in
            var h = [Float](repeating: 0, count: n * i), d = [Float](repeating: 0, count: n * 2 * i)
            k.swigluForward(h: &h, pre: pre, rows: 0..<n, width: i)
            k.swigluBackward(dpre: &d, dh: dh, pre: pre, rows: 0..<n, width: i)
            return h + d
        }
        // SwiGLU against its definition
        var h = [Float](repeating: 0, count: n * i)
        Kernels.isa.kernels.swigluForward(h: &h, pre: pre, rows: 0..<n, width: i)
        for r in 0..<n { for j in 0..<i {
            let g = Double(pre[r * 2 * i + j]), u = Double(pre[r * 2 * i + i + j])
            #expect(abs(Double(h[r * i + j]) - g / (1 + Glibc.exp(-g)) * u) < 1e-5)
        } }
    }

    @Test(arguments: [(4, 4, 8, true, 5), (4, 2, 16, false, 19), (2, 1, 12, false, 3), (3, 3, 32, true, 16), (2, 2, 8, false, 40)])
    func attentionAgrees(heads: Int, kvHeads: Int, hs: Int, interleaved: Bool, t: Int) {
        let layout = QKVLayout(heads: heads, kvHeads: kvHeads, headSize: hs, interleaved: interleaved)
        let b = 3, n = b * t, rot = hs / 2, half = rot / 2
        let qkv0 = random(n * layout.width, 31), bias = random(layout.width, 32), dy = random(n * heads * hs, 33)
        let cosT = (0..<(t * half)).map { Float(cos(Double($0) * 0.3)) }, sinT = (0..<(t * half)).map { Float(sin(Double($0) * 0.3)) }
        agree("attention H=\(heads) G=\(kvHeads) hs=\(hs) T=\(t)") { k in
            var qkv = qkv0
            k.qkvBiasRotaryForward(qkv: &qkv, bias: bias, cosT: cosT, sinT: sinT, rows: 0..<n, t: t, layout: layout, rot: rot)
            var y = [Float](repeating: 0, count: n * heads * hs), probs = [Float](repeating: 0, count: b * heads * t * t)
            k.attentionForward(y: &y, probs: &probs, qkv: qkv, items: 0..<(b * heads), t: t, layout: layout)
            var dqkv = [Float](repeating: 9, count: n * layout.width)
            k.attentionBackward(dqkv: &dqkv, dy: dy, qkv: qkv, probs: probs, cosT: cosT, sinT: sinT, items: 0..<(b * kvHeads), t: t, layout: layout, rot: rot)
            return qkv + y + probs + dqkv
        }
    }

    @Test func crossEntropyAndAdamWAgree() {
        let n = 6, v = 1003
        let logits = random(n * v, 41, scale: 5), targets: [Int32] = [3, -100, 1002, 0, 500, 17]
        agree("cross-entropy") { k in
            var x = logits, lse = [Float](repeating: 0, count: n), loss = lse
            let total = k.crossEntropyForward(logits: &x, lse: &lse, lossRow: &loss, targets: targets, rows: 0..<n, v: v, gradScale: 0.25)
            var x2 = logits
            k.crossEntropyBackward(logits: &x2, lse: lse, targets: targets, rows: 0..<n, v: v, gradScale: 0.25)
            return x + x2 + lse + loss + [Float(total)]
        }
        let count = 1037
        let p0 = random(count, 42), g = random(count, 43, scale: 0.01)
        agree("adamw and the sum of squares") { k in
            var p = p0, m = [Float](repeating: 0, count: count), s = m
            for _ in 0..<3 {
                k.adamW(p: &p, g: g, m: &m, v: &s, range: 0..<count, clip: 0.7, beta1: 0.9, beta2: 0.95, eps: 1e-8, stepSize: 1e-3,
                        bc2sqrt: 0.3, decay: 0.9999)
            }
            return p + m + s + [Float(k.sumSquares(g, range: 0..<count) * 1e4)]
        }
    }
}

/// An edit of the top block's MLP alone: the backward pass ends after that MLP (the attention
/// sublayer's backward is skipped) and gives the same gradients as the full backward pass.
@Suite struct FrozenBackwardTests {
    @Test(arguments: [true, false])
    func topMLPOnlySkipsAttentionAndKeepsGradients(parallel: Bool) throws {
        let (b, t, vocab) = (2, 5, 29)
        let m = try tinyModel(vocab: vocab, parallel: parallel, batch: b, seq: t)
        let tokens = randomTokens(b * t, vocab: vocab, seed: 3)
        let targets = GPTNeoX.shiftedTargets(labels: tokens, batch: b, seq: t)
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        let full = m.grads.storage.toArray()
        m.trainOnly(layers: [1], parts: ["mlp."])
        let profiler = Profiler()
        m.profiler = profiler
        try m.forward(tokens: tokens, targets: targets, batch: b, seq: t)
        m.zeroGrad()
        try m.backward()
        m.profiler = nil
        #expect(profiler.calls[Profiler.Phase.bAttention.rawValue] == 0)
        #expect(profiler.calls[Profiler.Phase.bQkvGemm.rawValue] == 0)
        let partial = m.grads.storage.toArray()
        for (k, e) in m.table.tensors.enumerated() {
            let slice = e.offset..<(e.offset + e.count)
            if m.trainable[k] {
                #expect(Array(partial[slice]) == Array(full[slice]), "\(e.name)")
            } else {
                #expect(partial[slice].allSatisfy { $0 == 0 }, "\(e.name) is frozen")
            }
        }
        #expect(m.trainable.contains(true))
    }
}

/// A model trains to bit-identical weights on every instruction set (the property that lets a seed
/// reproduce a model on any CPU). Switching the process-wide build is safe beside other tests for
/// the same reason.
@Suite struct KernelISATrainingTests {
    @Test(arguments: [false, true])
    func threeTrainingStepsAreBitIdenticalOnEveryBuild(llama: Bool) throws {
        let (b, t, vocab) = (3, 7, 37)
        let original = Kernels.isa
        defer { Kernels.use(original) }
        var results: [(KernelISA, [Float], Float)] = []
        for isa in KernelISA.supported {
            #expect(Kernels.use(isa))
            let m = try tinyModel(vocab: vocab, hidden: 48, heads: 2, intermediate: 40, batch: b, seq: t, llama: llama, kvHeads: llama ? 1 : 0)
            let opt = AdamW(table: m.table.tensors, blockSize: m.params.storage.count, spec: TrainSpec())
            var loss: Float = 0
            for step in 0..<3 {
                let tokens = randomTokens(b * t, vocab: vocab, seed: UInt64(step))
                loss = try m.forward(tokens: tokens, targets: GPTNeoX.shiftedTargets(labels: tokens, batch: b, seq: t), batch: b, seq: t)
                m.zeroGrad()
                try m.backward()
                let grads = UnsafeBufferPointer(start: m.grads.storage.ptr, count: m.grads.storage.count)
                let norm = AdamW.globalNorm(grads, table: m.table.tensors, trainable: nil)
                opt.update(parameters: UnsafeMutableBufferPointer(start: m.params.storage.ptr, count: m.params.storage.count),
                           gradients: grads, learningRate: 1e-2, gradientScale: AdamW.clipScale(norm: norm, maxNorm: 1), trainable: nil)
            }
            results.append((isa, m.params.storage.toArray(), loss))
        }
        for (isa, params, loss) in results.dropFirst() {
            #expect(loss.bitPattern == results[0].2.bitPattern, "\(isa.rawValue) loss \(loss) vs \(results[0].2)")
            #expect(zip(params, results[0].1).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(isa.rawValue) weights differ from \(results[0].0.rawValue)")
        }
    }
}
