#if canImport(Glibc)
import Glibc
#endif
import COpenBLAS

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
    /// mean[N], rstd[N] are kept for the backward pass.
    public static func layerNormForward(out1: UnsafeMutablePointer<Float>, w1: UnsafePointer<Float>, b1: UnsafePointer<Float>,
                                        out2: UnsafeMutablePointer<Float>?, w2: UnsafePointer<Float>?, b2: UnsafePointer<Float>?,
                                        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                        x: UnsafePointer<Float>, n: Int, d: Int, eps: Float) {
        Work.chunks(n, grain: 64) { _, rows in
            for r in rows {
                let xr = x + r * d
                var s: Float = 0
                for j in 0..<d { s += xr[j] }
                let m = s / Float(d)
                var v: Float = 0
                for j in 0..<d { let c = xr[j] - m; v += c * c }
                let rs = 1 / (v / Float(d) + eps).squareRoot()
                mean[r] = m; rstd[r] = rs
                let o1 = out1 + r * d
                if let out2, let w2, let b2 {
                    let o2 = out2 + r * d
                    for j in 0..<d {
                        let h = (xr[j] - m) * rs
                        o1[j] = h * w1[j] + b1[j]
                        o2[j] = h * w2[j] + b2[j]
                    }
                } else {
                    for j in 0..<d { o1[j] = (xr[j] - m) * rs * w1[j] + b1[j] }
                }
            }
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
        let chunks = Work.chunkCount(n, grain: 64)
        if wantParams { partial.update(repeating: 0, count: chunks * 4 * d) }
        Work.chunks(n, grain: 64) { c, rows in
            let pw1 = partial + c * 4 * d, pb1 = pw1 + d, pw2 = pb1 + d, pb2 = pw2 + d
            for r in rows {
                let xr = x + r * d, g1 = dy1 + r * d
                let m = mean[r], rs = rstd[r]
                if wantParams {
                    for j in 0..<d {
                        let h = (xr[j] - m) * rs
                        pw1[j] += g1[j] * h; pb1[j] += g1[j]
                    }
                    if let dy2 {
                        let g2 = dy2 + r * d
                        for j in 0..<d {
                            let h = (xr[j] - m) * rs
                            pw2[j] += g2[j] * h; pb2[j] += g2[j]
                        }
                    }
                }
                guard let dx else { continue }
                var sg: Float = 0, sgh: Float = 0
                if let dy2, let w2 {
                    let g2 = dy2 + r * d
                    for j in 0..<d {
                        let g = g1[j] * w1[j] + g2[j] * w2[j]
                        sg += g; sgh += g * (xr[j] - m) * rs
                    }
                    let a = sg / Float(d), b = sgh / Float(d)
                    let o = dx + r * d
                    for j in 0..<d {
                        let g = g1[j] * w1[j] + g2[j] * w2[j]
                        o[j] += rs * (g - a - (xr[j] - m) * rs * b)
                    }
                } else {
                    for j in 0..<d {
                        let g = g1[j] * w1[j]
                        sg += g; sgh += g * (xr[j] - m) * rs
                    }
                    let a = sg / Float(d), b = sgh / Float(d)
                    let o = dx + r * d
                    for j in 0..<d { o[j] += rs * (g1[j] * w1[j] - a - (xr[j] - m) * rs * b) }
                }
            }
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

    /// db[O] += Σ_rows dy[N, O] = dyᵀ · 1 (OpenBLAS sgemv; `ones` holds at least N ones)
    public static func biasBackward(db: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, n: Int, width: Int,
                                    ones: UnsafePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(width), 1, dy, Int32(width), ones, 1, 1, db, 1)
    }

    /// out[N·W] = a + b (+ c)
    public static func add(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           _ c: UnsafePointer<Float>?, count: Int) {
        Work.chunks(count, grain: 1 << 16) { _, r in
            if let c { for i in r { out[i] = a[i] + b[i] + c[i] } } else { for i in r { out[i] = a[i] + b[i] } }
        }
    }

    // MARK: GELU (exact, erf)

    /// x = pre[N, I] + bias[I]; h[N, I] = gelu(x) = x·Φ(x), and pre ← gelu'(x) = Φ(x) + x·φ(x) (what the
    /// backward pass needs, so it is one multiply there)    (bias, GELU and its derivative in one pass)
    public static func biasGeluForward(h: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>,
                                       bias: UnsafePointer<Float>, n: Int, width: Int) {
        Work.chunks(n, grain: 32) { _, rows in
            for r in rows {
                let pr = pre + r * width, hr = h + r * width
                var j = 0
                while j + 8 <= width {
                    let x = load8(pr + j) + load8(bias + j)
                    let (e, g) = VMath.erfAndGauss(x * 0.70710678118654752)  // g = e^{-x²/2}
                    let cdf = 0.5 * (1 + e)
                    store8(hr + j, x * cdf)
                    store8(pr + j, cdf + x * g * 0.3989422804014327)
                    j += 8
                }
                while j < width {
                    let x = pr[j] + bias[j]
                    hr[j] = VMath.geluScalar(x); pr[j] = VMath.geluGradScalar(x); j += 1
                }
            }
        }
    }

    /// dpre[N, I] = dh · gelu'(x), with gelu'(x) as stored by `biasGeluForward`    (dpre may alias dh)
    public static func geluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, geluGrad: UnsafePointer<Float>, count: Int) {
        Work.chunks(count, grain: 1 << 15) { _, r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(dpre + i, load8(dh + i) * load8(geluGrad + i)); i += 8 }
            while i < r.upperBound { dpre[i] = dh[i] * geluGrad[i]; i += 1 }
        }
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

    /// Where each head's q, k and v sit in a row of the fused q|k|v activation [N, width].
    ///   GPT-NeoX (interleaved): per head [q(hs) | k(hs) | v(hs)], width 3·H·hs
    ///   llama: [q of H heads | k of G heads | v of G heads], width (H + 2G)·hs; query head h reads
    ///   key/value head h / (H / G) (grouped-query attention; G = H is plain multi-head attention)
    public struct QKVLayout: Sendable {
        public let heads: Int, kvHeads: Int, headSize: Int, interleaved: Bool
        public var width: Int { (heads + 2 * kvHeads) * headSize }
        /// Query heads per key/value head.
        public var group: Int { heads / kvHeads }
        @inline(__always) public func q(_ h: Int) -> Int { interleaved ? h * 3 * headSize : h * headSize }
        /// Column of key/value head g's key (interleaved: g = the query head).
        @inline(__always) public func k(_ g: Int) -> Int { interleaved ? g * 3 * headSize + headSize : (heads + g) * headSize }
        @inline(__always) public func v(_ g: Int) -> Int { interleaved ? g * 3 * headSize + 2 * headSize : (heads + kvHeads + g) * headSize }

        public static func gptNeoX(heads: Int, headSize: Int) -> QKVLayout {
            QKVLayout(heads: heads, kvHeads: heads, headSize: headSize, interleaved: true)
        }
        public init(heads: Int, kvHeads: Int, headSize: Int, interleaved: Bool) {
            self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize; self.interleaved = interleaved
        }
    }

    /// Rotate-half rotary on the first `rot` dims of the vector at v, at the position whose
    /// cos/sin rows are c, s (`inverse`: the transposed rotation, for the backward pass).
    @inline(__always)
    static func rotate(_ v: UnsafeMutablePointer<Float>, _ c: UnsafePointer<Float>, _ s: UnsafePointer<Float>, half: Int, inverse: Bool) {
        if inverse {
            for i in 0..<half { let a = v[i], b = v[i + half]; v[i] = a * c[i] + b * s[i]; v[i + half] = b * c[i] - a * s[i] }
        } else {
            for i in 0..<half { let a = v[i], b = v[i + half]; v[i] = a * c[i] - b * s[i]; v[i + half] = b * c[i] + a * s[i] }
        }
    }

    /// qkv[N, width] += bias[width] (when given), then rotary on the first `rot` dims of each query
    /// and key head (rotate-half); position of row r is r mod T; cosT/sinT[t, rot/2] hold
    /// cos/sin(t·θ_i), θ_i = base^(−2i/rot).
    public static func qkvBiasRotaryForward(qkv: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                            cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                            n: Int, t: Int, layout: QKVLayout, rot: Int) {
        let w = layout.width, half = rot / 2
        Work.chunks(n, grain: 64) { _, rows in
            for r in rows {
                let row = qkv + r * w
                if let bias { for j in 0..<w { row[j] += bias[j] } }
                if half == 0 { continue }
                let c = cosT + (r % t) * half, s = sinT + (r % t) * half
                for h in 0..<layout.heads { rotate(row + layout.q(h), c, s, half: half, inverse: false) }
                for g in 0..<layout.kvHeads { rotate(row + layout.k(g), c, s, half: half, inverse: false) }
            }
        }
    }

    /// Causal softmax attention, written per (batch, head) for short sequences:
    /// y[N, H·hs] (head h at columns h·hs) = softmax(q kᵀ·scale + causal mask) v; probs[B, H, T, T] kept.
    public static func attentionForward(y: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                        qkv: UnsafePointer<Float>, b: Int, t: Int, layout: QKVLayout) {
        let hs = layout.headSize, heads = layout.heads, d = heads * hs, w = layout.width
        let scale = 1 / Float(hs).squareRoot()
        Work.chunks(b * heads, grain: 4) { _, items in
            for item in items {
                let bi = item / heads, h = item % heads, g = h / layout.group
                let rows = qkv + bi * t * w
                let qb = rows + layout.q(h), kb = rows + layout.k(g), vb = rows + layout.v(g)
                let pr = probs + item * t * t
                for i in 0..<t {
                    let q = qb + i * w
                    let p = pr + i * t
                    var mx = -Float.infinity
                    for j in 0...i {
                        let s = dot(q, kb + j * w, hs) * scale
                        p[j] = s
                        if s > mx { mx = s }
                    }
                    var sum: Float = 0
                    for j in 0...i { let e = expf(p[j] - mx); p[j] = e; sum += e }
                    let inv = 1 / sum
                    for j in 0...i { p[j] *= inv }
                    for j in (i + 1)..<max(t, i + 1) { p[j] = 0 }
                    let out = y + (bi * t + i) * d + h * hs
                    for e in 0..<hs { out[e] = 0 }
                    for j in 0...i { axpy(out, p[j], vb + j * w, hs) }
                }
            }
        }
    }

    /// Backward of attention and of the rotary embedding, per (batch, key/value head) so the query
    /// heads sharing a key/value head add into its dk, dv on one thread:
    /// dqkv[N, width] = gradient w.r.t. the pre-rotary (post-bias) q|k|v, overwritten;
    /// dy[N, H·hs] the gradient of the head outputs; qkv (rotated q, k) and probs from the forward pass.
    public static func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                         qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                         cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                         b: Int, t: Int, layout: QKVLayout, rot: Int,
                                         scratch: UnsafeMutablePointer<Float>) {
        let hs = layout.headSize, heads = layout.heads, d = heads * hs, w = layout.width, half = rot / 2
        let kvHeads = layout.kvHeads, group = layout.group
        let scale = 1 / Float(hs).squareRoot()
        Work.chunks(b * kvHeads, grain: 4) { c, items in
            let dp = scratch + c * t  // one row of dP per thread
            for item in items {
                let bi = item / kvHeads, g = item % kvHeads
                let rows = qkv + bi * t * w, grows = dqkv + bi * t * w
                let kb = rows + layout.k(g), vb = rows + layout.v(g)
                let dkb = grows + layout.k(g), dvb = grows + layout.v(g)
                for i in 0..<t { (dkb + i * w).update(repeating: 0, count: hs); (dvb + i * w).update(repeating: 0, count: hs) }
                for h in (g * group)..<((g + 1) * group) {
                    let qb = rows + layout.q(h), dqb = grows + layout.q(h)
                    let pr = probs + (bi * heads + h) * t * t
                    for i in 0..<t { (dqb + i * w).update(repeating: 0, count: hs) }
                    for i in 0..<t {
                        let gy = dy + (bi * t + i) * d + h * hs
                        let p = pr + i * t
                        var dot: Float = 0
                        for j in 0...i {
                            let s = Kernels.dot(gy, vb + j * w, hs)
                            axpy(dvb + j * w, p[j], gy, hs)
                            dp[j] = s
                            dot += p[j] * s
                        }
                        let q = qb + i * w, dq = dqb + i * w
                        for j in 0...i {
                            let ds = p[j] * (dp[j] - dot) * scale
                            axpy(dq, ds, kb + j * w, hs)
                            axpy(dkb + j * w, ds, q, hs)
                        }
                    }
                    if half > 0 {
                        for i in 0..<t { rotate(dqb + i * w, cosT + i * half, sinT + i * half, half: half, inverse: true) }
                    }
                }
                if half > 0 {
                    for i in 0..<t { rotate(dkb + i * w, cosT + i * half, sinT + i * half, half: half, inverse: true) }
                }
            }
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
        Work.chunks(n, grain: 8) { c, rows in
            var acc = 0.0
            for r in rows {
                let x = logits + r * v
                let tgt = Int(targets[r])
                if tgt < 0 {
                    lossRow[r] = 0; lse[r] = 0
                    if gradScale != nil { x.update(repeating: 0, count: v) }
                    continue
                }
                var mx8 = F8(repeating: -.infinity)
                var j = 0
                while j + 8 <= v { let y = load8(x + j); mx8 = mx8.replacing(with: y, where: y .> mx8); j += 8 }
                var mx = mx8[0]
                for e in 1..<8 where mx8[e] > mx { mx = mx8[e] }
                while j < v { mx = Swift.max(mx, x[j]); j += 1 }
                let m8 = F8(repeating: mx)
                var s8 = F8(repeating: 0)
                var sum: Float = 0
                let xt = x[tgt]
                j = 0
                if gradScale != nil {
                    while j + 8 <= v { let e = VMath.exp(load8(x + j) - m8); store8(x + j, e); s8 += e; j += 8 }
                    sum = s8.sum()
                    while j < v { let e = expf(x[j] - mx); x[j] = e; sum += e; j += 1 }
                } else {
                    while j + 8 <= v { s8 += VMath.exp(load8(x + j) - m8); j += 8 }
                    sum = s8.sum()
                    while j < v { sum += expf(x[j] - mx); j += 1 }
                }
                let l = Float(log(Double(sum))) + mx
                lse[r] = l
                lossRow[r] = l - xt
                acc += Double(l - xt)
                if let gs = gradScale {
                    let k = gs / sum, k8 = F8(repeating: k)
                    j = 0
                    while j + 8 <= v { store8(x + j, load8(x + j) * k8); j += 8 }
                    while j < v { x[j] *= k; j += 1 }
                    x[tgt] -= gs
                }
            }
            partial[c] = acc
        }
        var total = 0.0
        for c in 0..<chunks { total += partial[c] }
        return total
    }

    /// logits[N, V] ← (softmax − onehot)·gradScale using lse[N] from the forward pass (zero rows where ignored).
    public static func crossEntropyBackward(logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                            targets: UnsafePointer<Int32>, n: Int, v: Int, gradScale: Float) {
        Work.chunks(n, grain: 8) { _, rows in
            for r in rows {
                let x = logits + r * v
                let tgt = Int(targets[r])
                if tgt < 0 { x.update(repeating: 0, count: v); continue }
                let l8 = F8(repeating: lse[r]), g8 = F8(repeating: gradScale)
                var j = 0
                while j + 8 <= v { store8(x + j, VMath.exp(load8(x + j) - l8) * g8); j += 8 }
                while j < v { x[j] = expf(x[j] - lse[r]) * gradScale; j += 1 }
                x[tgt] -= gradScale
            }
        }
    }
}
