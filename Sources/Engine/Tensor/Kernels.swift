#if canImport(Glibc)
import Glibc
#endif
import COpenBLAS
import KernelInterface

/// A residual add fused into the norm that reads its sum (see Kernels.layerNormForward).
public typealias Residual = KernelInterface.Residual

/// The element-wise kernels of the GPT-NeoX forward and backward passes. Shapes are in the comments:
/// N = B·T rows, D hidden, I intermediate, H heads, hs head size, V vocabulary. Outputs come first;
/// backward kernels accumulate into parameter gradients (+=) and say what they do with activation
/// gradients. Everything is row-major float32 over raw pointers; nothing allocates.
public enum Kernels {
    typealias P = UnsafeMutablePointer<Float>
    typealias CP = UnsafePointer<Float>

    // MARK: embeddings

    /// out[N, D] = wte[tokens[n], :]
    public static func embeddingForward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                                        wte: UnsafePointer<Float>, n: Int, d: Int) {
        for r in 0..<n { (out + r * d).update(from: wte + Int(tokens[r]) * d, count: d) }
    }

    /// dwte[tokens[n], :] += dout[N, D]
    public static func embeddingBackward(dwte: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                         tokens: UnsafePointer<Int32>, n: Int, d: Int) {
        for r in 0..<n {
            let g = dwte + Int(tokens[r]) * d, s = dout + r * d
            for j in 0..<d { g[j] += s[j] }
        }
    }

    // MARK: LayerNorm (one or two over the same input: the parallel residual's pair)

    /// out1[N, D] = (x − μ)·σ⁻¹·w1 + b1, and out2 likewise with w2, b2 when given (the same μ, σ);
    /// mean[N], rstd[N] are kept for the backward pass. With `residual`, x[N, D] is first written as
    /// its sum (the residual add fused into the norm's first pass).
    public static func layerNormForward(out1: UnsafeMutablePointer<Float>, w1: UnsafePointer<Float>, b1: UnsafePointer<Float>,
                                        out2: UnsafeMutablePointer<Float>?, w2: UnsafePointer<Float>?, b2: UnsafePointer<Float>?,
                                        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                        x: UnsafeMutablePointer<Float>, residual: Residual? = nil, n: Int, d: Int, eps: Float) {
        let k = isa.kernels
        Work.chunks(n, grain: rowGrain(d)) { _, rows in
            k.layerNormForward(out1: out1, w1: w1, b1: b1, out2: out2, w2: w2, b2: b2, mean: mean, rstd: rstd,
                               x: x, residual: residual, rows: rows, d: d, eps: eps)
        }
    }

    /// Backward of one LayerNorm or of the pair over the same input:
    /// dx[N, D] += σ⁻¹·(g − mean(g) − x̂·mean(g·x̂)) with g = dy1·w1 (+ dy2·w2)   (when dx is given);
    /// dw1 += Σ_rows dy1·x̂, db1 += Σ_rows dy1 (when given), likewise dw2/db2.
    /// `partial` is scratch of at least threads·4·D floats for the per-thread column sums.
    public static func layerNormBackward(dx: UnsafeMutablePointer<Float>?,
                                         dw1: UnsafeMutablePointer<Float>?, db1: UnsafeMutablePointer<Float>?,
                                         dy1: UnsafePointer<Float>, w1: UnsafePointer<Float>,
                                         dw2: UnsafeMutablePointer<Float>?, db2: UnsafeMutablePointer<Float>?,
                                         dy2: UnsafePointer<Float>?, w2: UnsafePointer<Float>?,
                                         x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                         n: Int, d: Int, partial: UnsafeMutablePointer<Float>) {
        let wantParams = dw1 != nil || db1 != nil || dw2 != nil || db2 != nil
        let grain = rowGrain(d), chunks = Work.chunkCount(n, grain: grain)
        if wantParams { partial.update(repeating: 0, count: chunks * 4 * d) }
        let k = isa.kernels
        Work.chunks(n, grain: grain) { c, rows in
            k.layerNormBackward(dx: dx, dy1: dy1, w1: w1, dy2: dy2, w2: w2, x: x, mean: mean, rstd: rstd,
                                rows: rows, d: d, partial: wantParams ? partial + c * 4 * d : nil)
        }
        if wantParams {
            for c in 0..<chunks {
                let pw1 = partial + c * 4 * d, pb1 = pw1 + d, pw2 = pb1 + d, pb2 = pw2 + d
                if let dw1 { for j in 0..<d { dw1[j] += pw1[j] } }
                if let db1 { for j in 0..<d { db1[j] += pb1[j] } }
                if let dw2 { for j in 0..<d { dw2[j] += pw2[j] } }
                if let db2 { for j in 0..<d { db2[j] += pb2[j] } }
            }
        }
    }

    // MARK: bias, residual

    /// out[N, O] = bias[O] broadcast over rows (then a GEMM accumulates onto it).
    public static func fillRows(out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, n: Int, width: Int) {
        Work.chunks(n, grain: 256) { _, rows in
            for r in rows { (out + r * width).update(from: bias, count: width) }
        }
    }

    /// db[O] += Σ_rows dy[N, O] = dyᵀ · 1 (OpenBLAS sgemv, columns split across threads; `ones`
    /// holds at least N ones)
    public static func biasBackward(db: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, n: Int, width: Int,
                                    ones: UnsafePointer<Float>) {
        let split = BLAS.threading == .engine && n * width >= 1 << 16
        Work.chunks(width, grain: split ? 64 : width) { _, r in
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(r.count), 1, dy + r.lowerBound, Int32(width), ones, 1, 1,
                        db + r.lowerBound, 1)
        }
    }

    /// out[N·W] = a + b (+ c)
    public static func add(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           _ c: UnsafePointer<Float>?, count: Int) {
        let k = isa.kernels
        Work.chunks(count, grain: 1 << 15) { _, r in k.add(out: out, a, b, c, range: r) }
    }

    // MARK: GELU (exact, erf)

    /// x = pre[N, I] + bias[I]; h[N, I] = gelu(x) = x·Φ(x), and pre ← gelu'(x) = Φ(x) + x·φ(x) (what the
    /// backward pass needs, so it is one multiply there)    (bias, GELU and its derivative in one pass)
    /// `derivative: false` (evaluation only): h alone, pre left as it was.
    public static func biasGeluForward(h: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>,
                                       bias: UnsafePointer<Float>, n: Int, width: Int, derivative: Bool = true) {
        let k = isa.kernels
        Work.chunks(n, grain: max(1, 8192 / max(1, width))) { _, rows in
            k.biasGeluForward(h: h, pre: pre, bias: bias, rows: rows, width: width, derivative: derivative)
        }
    }

    /// dpre[N, I] = dh · gelu'(x), with gelu'(x) as stored by `biasGeluForward`    (dpre may alias dh)
    public static func geluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, geluGrad: UnsafePointer<Float>, count: Int) {
        let k = isa.kernels
        Work.chunks(count, grain: 1 << 15) { _, r in k.multiply(out: dpre, dh, geluGrad, range: r) }
    }

    // MARK: attention

    /// Σ a[e]·b[e] over hs (SIMD when hs is a multiple of 8).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ hs: Int) -> Float {
        if hs & 7 == 0 {
            var acc = F8(repeating: 0)
            var e = 0
            while e < hs { acc += load8(a + e) * load8(b + e); e += 8 }
            return acc.sum()
        }
        var s: Float = 0
        for e in 0..<hs { s += a[e] * b[e] }
        return s
    }

    /// y[e] += alpha·x[e] over hs.
    @inline(__always)
    static func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ hs: Int) {
        if hs & 7 == 0 {
            let a8 = F8(repeating: alpha)
            var e = 0
            while e < hs { store8(y + e, load8(y + e) + a8 * load8(x + e)); e += 8 }
            return
        }
        for e in 0..<hs { y[e] += alpha * x[e] }
    }

    public typealias QKVLayout = KernelInterface.QKVLayout

    /// qkv[N, width] += bias[width] (when given), then rotary on the first `rot` dims of each query
    /// and key head (rotate-half); position of row r is r mod T; cosT/sinT[t, rot/2] hold
    /// cos/sin(t·θ_i), θ_i = base^(−2i/rot).
    public static func qkvBiasRotaryForward(qkv: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                            cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                            n: Int, t: Int, layout: QKVLayout, rot: Int) {
        let k = isa.kernels
        Work.chunks(n, grain: 64) { _, rows in
            k.qkvBiasRotaryForward(qkv: qkv, bias: bias, cosT: cosT, sinT: sinT, rows: rows, t: t, layout: layout, rot: rot)
        }
    }

    /// Causal softmax attention, written per (batch, head) for short sequences:
    /// y[N, H·hs] (head h at columns h·hs) = softmax(q kᵀ·scale + causal mask) v; probs[B, H, T, T] kept.
    public static func attentionForward(y: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                        qkv: UnsafePointer<Float>, b: Int, t: Int, layout: QKVLayout) {
        let k = isa.kernels
        Work.chunks(b * layout.heads, grain: 4) { _, items in
            k.attentionForward(y: y, probs: probs, qkv: qkv, items: items, t: t, layout: layout)
        }
    }

    /// Backward of attention and of the rotary embedding, per (batch, key/value head) so the query
    /// heads sharing a key/value head add into its dk, dv on one thread:
    /// dqkv[N, width] = gradient w.r.t. the pre-rotary (post-bias) q|k|v, overwritten;
    /// dy[N, H·hs] the gradient of the head outputs; qkv (rotated q, k) and probs from the forward pass.
    public static func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                         qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                         cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                         b: Int, t: Int, layout: QKVLayout, rot: Int) {
        let k = isa.kernels
        Work.chunks(b * layout.kvHeads, grain: 4) { _, items in
            k.attentionBackward(dqkv: dqkv, dy: dy, qkv: qkv, probs: probs, cosT: cosT, sinT: sinT,
                                items: items, t: t, layout: layout, rot: rot)
        }
    }

    // MARK: softmax + cross-entropy

    /// Fused softmax and cross-entropy over logits[N, V] with targets[N] (negative: ignored).
    /// lossRow[N] = logsumexp − logit[target] (0 where ignored); lse[N] kept.
    /// If `gradScale` is given, logits are overwritten by their gradient (softmax − onehot)·gradScale
    /// (zero rows where ignored) in the same pass. Returns Σ lossRow.
    public static func crossEntropyForward(logits: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                           lossRow: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                                           n: Int, v: Int, gradScale: Float?, partial: UnsafeMutablePointer<Double>) -> Double {
        let chunks = Work.chunkCount(n, grain: 8)
        let k = isa.kernels
        Work.chunks(n, grain: 8) { c, rows in
            partial[c] = k.crossEntropyForward(logits: logits, lse: lse, lossRow: lossRow, targets: targets, rows: rows, v: v, gradScale: gradScale)
        }
        var total = 0.0
        for c in 0..<chunks { total += partial[c] }
        return total
    }

    /// logits[N, V] ← (softmax − onehot)·gradScale using lse[N] from the forward pass (zero rows where ignored).
    public static func crossEntropyBackward(logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                            targets: UnsafePointer<Int32>, n: Int, v: Int, gradScale: Float) {
        let k = isa.kernels
        Work.chunks(n, grain: 8) { _, rows in k.crossEntropyBackward(logits: logits, lse: lse, targets: targets, rows: rows, v: v, gradScale: gradScale) }
    }

    /// Rows per thread worth splitting for a row kernel of width d (about 8K floats a chunk).
    @inline(__always) static func rowGrain(_ d: Int) -> Int { max(1, 8192 / max(1, d)) }
}
