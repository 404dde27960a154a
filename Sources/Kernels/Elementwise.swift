#if canImport(Glibc)
import Glibc
#endif
import KernelInterface

/// This build's element-wise kernels (see ElementwiseKernels for the contract of each). The same
/// source is compiled three times; Package.swift gives each build its instruction set and VF width.
public enum ISAKernels: ElementwiseKernels {
    #if BH_WIDE16
    public static let name = "avx512"
    #elseif BH_KERNELS_AVX2
    public static let name = "avx2"
    #else
    public static let name = "portable"
    #endif
    public static var vectorWidth: Int { W }

    // MARK: norms

    /// x ← a + b (+ c) over one row while summing it (the residual add fused into the norm's first pass).
    @inline(__always)
    static func residualRow(_ x: UnsafeMutablePointer<Float>, _ res: Residual, _ off: Int, _ d: Int) -> Float {
        let a = res.a + off, b = res.b + off
        if let c0 = res.c {
            let c = c0 + off
            return sum16(d, { j in let s = load(a + j) + load(b + j) + load(c + j); store(x + j, s); return s },
                         { j in x[j] = a[j] + b[j] + c[j]; return x[j] })
        }
        return sum16(d, { j in let s = load(a + j) + load(b + j); store(x + j, s); return s }, { j in x[j] = a[j] + b[j]; return x[j] })
    }

    public static func layerNormForward(out1: UnsafeMutablePointer<Float>, w1: UnsafePointer<Float>, b1: UnsafePointer<Float>,
                                        out2: UnsafeMutablePointer<Float>?, w2: UnsafePointer<Float>?, b2: UnsafePointer<Float>?,
                                        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                        x: UnsafeMutablePointer<Float>, residual: Residual?, rows: Range<Int>, d: Int, eps: Float) {
        for r in rows {
            let xr = x + r * d
            let s = residual.map { residualRow(xr, $0, r * d, d) } ?? sum(xr, d)
            let m = s / Float(d), mv = VF(repeating: m)
            let v = sum16(d, { j in let c = load(xr + j) - mv; return c * c }, { j in let c = xr[j] - m; return c * c })
            let rs = 1 / (v / Float(d) + eps).squareRoot(), rv = VF(repeating: rs)
            mean[r] = m; rstd[r] = rs
            let o1 = out1 + r * d
            var j = 0
            if let out2, let w2, let b2 {
                let o2 = out2 + r * d
                while j + W <= d {
                    let h = (load(xr + j) - mv) * rv
                    store(o1 + j, h * load(w1 + j) + load(b1 + j))
                    store(o2 + j, h * load(w2 + j) + load(b2 + j))
                    j += W
                }
                while j < d { let h = (xr[j] - m) * rs; o1[j] = h * w1[j] + b1[j]; o2[j] = h * w2[j] + b2[j]; j += 1 }
            } else {
                while j + W <= d { store(o1 + j, (load(xr + j) - mv) * rv * load(w1 + j) + load(b1 + j)); j += W }
                while j < d { o1[j] = (xr[j] - m) * rs * w1[j] + b1[j]; j += 1 }
            }
        }
    }

    public static func layerNormBackward(dx: UnsafeMutablePointer<Float>?, dy1: UnsafePointer<Float>, w1: UnsafePointer<Float>,
                                         dy2: UnsafePointer<Float>?, w2: UnsafePointer<Float>?,
                                         x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                         rows: Range<Int>, d: Int, partial: UnsafeMutablePointer<Float>?) {
        for r in rows {
            let xr = x + r * d, g1 = dy1 + r * d, g2 = dy2.map { $0 + r * d }
            let m = mean[r], rs = rstd[r], mv = VF(repeating: m), rv = VF(repeating: rs)
            // pass 1: the parameter gradients' column sums and the row's Σg, Σg·x̂
            let (sgs, sghs) = sum16x2(d, { j in
                let h = (load(xr + j) - mv) * rv, a1 = load(g1 + j)
                var g = a1 * load(w1 + j)
                if let p = partial {
                    store(p + j, load(p + j) + a1 * h); store(p + d + j, load(p + d + j) + a1)
                }
                if let g2, let w2 {
                    let a2 = load(g2 + j)
                    g += a2 * load(w2 + j)
                    if let p = partial {
                        store(p + 2 * d + j, load(p + 2 * d + j) + a2 * h); store(p + 3 * d + j, load(p + 3 * d + j) + a2)
                    }
                }
                return (g, g * h)
            }, { j in
                let h = (xr[j] - m) * rs
                var g = g1[j] * w1[j]
                if let p = partial { p[j] += g1[j] * h; p[d + j] += g1[j] }
                if let g2, let w2 {
                    g += g2[j] * w2[j]
                    if let p = partial { p[2 * d + j] += g2[j] * h; p[3 * d + j] += g2[j] }
                }
                return (g, g * h)
            })
            guard let dx else { continue }
            // pass 2: dx += σ⁻¹·(g − mean(g) − x̂·mean(g·x̂))
            let a = sgs / Float(d), b = sghs / Float(d), av = VF(repeating: a), bv = VF(repeating: b)
            let o = dx + r * d
            var j = 0
            while j + W <= d {
                let h = (load(xr + j) - mv) * rv
                var g = load(g1 + j) * load(w1 + j)
                if let g2, let w2 { g += load(g2 + j) * load(w2 + j) }
                store(o + j, load(o + j) + rv * (g - av - h * bv))
                j += W
            }
            while j < d {
                let h = (xr[j] - m) * rs
                var g = g1[j] * w1[j]
                if let g2, let w2 { g += g2[j] * w2[j] }
                o[j] += rs * (g - a - h * b)
                j += 1
            }
        }
    }

    public static func rmsNormForward(out: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                      x: UnsafeMutablePointer<Float>, residual: Residual?, rows: Range<Int>, d: Int, eps: Float) {
        for r in rows {
            let xr = x + r * d, o = out + r * d
            if let residual { _ = residualRow(xr, residual, r * d, d) }
            let rs = 1 / (dot(xr, xr, d) / Float(d) + eps).squareRoot(), rv = VF(repeating: rs)
            rstd[r] = rs
            var j = 0
            while j + W <= d { store(o + j, load(xr + j) * rv * load(w + j)); j += W }
            while j < d { o[j] = xr[j] * rs * w[j]; j += 1 }
        }
    }

    public static func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                       x: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Range<Int>, d: Int,
                                       partial: UnsafeMutablePointer<Float>?) {
        for r in rows {
            let xr = x + r * d, g = dy + r * d, rs = rstd[r], rv = VF(repeating: rs)
            let sgh = sum16(d, { j in
                let h = load(xr + j) * rv, gj = load(g + j)
                if let p = partial { store(p + j, load(p + j) + gj * h) }
                return gj * load(w + j) * h
            }, { j in
                let h = xr[j] * rs
                if let p = partial { p[j] += g[j] * h }
                return g[j] * w[j] * h
            })
            guard let dx else { continue }
            let b = sgh / Float(d), bv = VF(repeating: b)
            let o = dx + r * d
            var j = 0
            while j + W <= d { store(o + j, load(o + j) + rv * (load(g + j) * load(w + j) - load(xr + j) * rv * bv)); j += W }
            while j < d { o[j] += rs * (g[j] * w[j] - xr[j] * rs * b); j += 1 }
        }
    }

    // MARK: element-wise

    public static func add(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           _ c: UnsafePointer<Float>?, range: Range<Int>) {
        var i = range.lowerBound
        if let c {
            while i + W <= range.upperBound { store(out + i, load(a + i) + load(b + i) + load(c + i)); i += W }
            while i < range.upperBound { out[i] = a[i] + b[i] + c[i]; i += 1 }
        } else {
            while i + W <= range.upperBound { store(out + i, load(a + i) + load(b + i)); i += W }
            while i < range.upperBound { out[i] = a[i] + b[i]; i += 1 }
        }
    }

    public static func multiply(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, range: Range<Int>) {
        var i = range.lowerBound
        while i + W <= range.upperBound { store(out + i, load(a + i) * load(b + i)); i += W }
        while i < range.upperBound { out[i] = a[i] * b[i]; i += 1 }
    }

    public static func biasGeluForward(h: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                                       rows: Range<Int>, width: Int, derivative: Bool) {
        for r in rows {
            let pr = pre + r * width, hr = h + r * width
            let whole = whole16(width)
            var j = 0
            if derivative {
                while j < whole {
                    let x = load(pr + j) + load(bias + j)
                    let (e, g) = VMath.erfAndGauss(x * 0.70710678118654752)  // g = e^{-x²/2}
                    let cdf = 0.5 * (1 + e)
                    store(hr + j, x * cdf)
                    store(pr + j, cdf + x * g * 0.3989422804014327)
                    j += W
                }
                while j < width { let x = pr[j] + bias[j]; hr[j] = VMath.geluScalar(x); pr[j] = VMath.geluGradScalar(x); j += 1 }
            } else {
                while j < whole {
                    let x = load(pr + j) + load(bias + j)
                    store(hr + j, x * (0.5 * (1 + VMath.erfAndGauss(x * 0.70710678118654752).erf)))
                    j += W
                }
                while j < width { hr[j] = VMath.geluScalar(pr[j] + bias[j]); j += 1 }
            }
        }
    }

    /// σ(g) = 1 / (1 + e^{−g}) over a vector.
    @inline(__always) static func sigmoid(_ g: VF) -> VF { 1 / (1 + VMath.exp(-g)) }

    public static func swigluForward(h: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, rows: Range<Int>, width i: Int) {
        for r in rows {
            let g = pre + r * 2 * i, u = g + i, o = h + r * i
            let whole = whole16(i)
            var j = 0
            while j < whole { let gv = load(g + j); store(o + j, gv * sigmoid(gv) * load(u + j)); j += W }
            while j < i { o[j] = g[j] / (1 + expf(-g[j])) * u[j]; j += 1 }
        }
    }

    public static func swigluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, pre: UnsafePointer<Float>,
                                      rows: Range<Int>, width i: Int) {
        for r in rows {
            let g = pre + r * 2 * i, u = g + i, dg = dpre + r * 2 * i, du = dg + i, d = dh + r * i
            let whole = whole16(i)
            var j = 0
            while j < whole {
                let gv = load(g + j), dv = load(d + j), s = sigmoid(gv)
                store(du + j, dv * gv * s)
                store(dg + j, dv * load(u + j) * s * (1 + gv * (1 - s)))
                j += W
            }
            while j < i {
                let s = 1 / (1 + expf(-g[j]))
                du[j] = d[j] * g[j] * s
                dg[j] = d[j] * u[j] * s * (1 + g[j] * (1 - s))
                j += 1
            }
        }
    }

    // MARK: attention

    /// Rotate-half rotary on the first 2·half dims of the vector at v with cos/sin rows c, s
    /// (`inverse`: the transposed rotation, for the backward pass).
    @inline(__always)
    static func rotate(_ v: UnsafeMutablePointer<Float>, _ c: UnsafePointer<Float>, _ s: UnsafePointer<Float>, half: Int, inverse: Bool) {
        if inverse {
            for i in 0..<half { let a = v[i], b = v[i + half]; v[i] = a * c[i] + b * s[i]; v[i + half] = b * c[i] - a * s[i] }
        } else {
            for i in 0..<half { let a = v[i], b = v[i + half]; v[i] = a * c[i] - b * s[i]; v[i + half] = b * c[i] + a * s[i] }
        }
    }

    public static func qkvBiasRotaryForward(qkv: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                            cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                            rows: Range<Int>, t: Int, layout: QKVLayout, rot: Int) {
        let w = layout.width, half = rot / 2
        for r in rows {
            let row = qkv + r * w
            if let bias { add(out: row, row, bias, nil, range: 0..<w) }
            if half == 0 { continue }
            let c = cosT + (r % t) * half, s = sinT + (r % t) * half
            for h in 0..<layout.heads { rotate(row + layout.q(h), c, s, half: half, inverse: false) }
            for g in 0..<layout.kvHeads { rotate(row + layout.k(g), c, s, half: half, inverse: false) }
        }
    }

    /// kt[e, j] = rows[j·w + e] for e < hs, j < t (a head's keys or values transposed, so one query's
    /// scores against every key are vector multiply-adds with no horizontal sums); tp = t rounded up
    /// to whole vectors, the padding zero.
    @inline(__always)
    static func transpose(_ kt: UnsafeMutablePointer<Float>, _ rows: UnsafePointer<Float>, w: Int, t: Int, tp: Int, hs: Int) {
        for e in 0..<hs {
            let o = kt + e * tp
            for j in 0..<t { o[j] = rows[j * w + e] }
            for j in t..<tp { o[j] = 0 }
        }
    }

    /// s[0..<n·W] = Σ_e x[e]·kt[e, 0..<n·W]: one row against every key/value position, n vectors
    /// (four partial sums over e, so the multiply-adds do not wait on each other).
    @inline(__always)
    static func scoresRow(_ s: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ kt: UnsafePointer<Float>, hs: Int, tp: Int, n: Int) {
        for c in 0..<n {
            let col = kt + c * W
            var a0 = VF(repeating: 0), a1 = a0, a2 = a0, a3 = a0
            var e = 0
            while e + 4 <= hs {
                a0 += VF(repeating: x[e]) * load(col + e * tp)
                a1 += VF(repeating: x[e + 1]) * load(col + (e + 1) * tp)
                a2 += VF(repeating: x[e + 2]) * load(col + (e + 2) * tp)
                a3 += VF(repeating: x[e + 3]) * load(col + (e + 3) * tp)
                e += 4
            }
            while e < hs { a0 += VF(repeating: x[e]) * load(col + e * tp); e += 1 }
            store(s + c * W, (a0 + a1) + (a2 + a3))
        }
    }

    /// out[0..<hs] (+)= Σ_{j in js} a[j·aStride] · rows[j·stride ..< j·stride + hs], the sum kept in
    /// registers two vectors at a time (a row of P·V, dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dY).
    @inline(__always)
    static func combine(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, aStride: Int,
                        _ rows: UnsafePointer<Float>, stride: Int, _ js: Range<Int>, hs: Int, accumulate: Bool) {
        var c = 0
        while c + 2 * W <= hs {
            var a0 = accumulate ? load(out + c) : VF(repeating: 0), a1 = accumulate ? load(out + c + W) : VF(repeating: 0)
            for j in js {
                let k = VF(repeating: a[j * aStride]), r = rows + j * stride + c
                a0 += k * load(r); a1 += k * load(r + W)
            }
            store(out + c, a0); store(out + c + W, a1)
            c += 2 * W
        }
        while c + W <= hs {
            var a0 = accumulate ? load(out + c) : VF(repeating: 0)
            for j in js { a0 += VF(repeating: a[j * aStride]) * load(rows + j * stride + c) }
            store(out + c, a0)
            c += W
        }
        while c < hs {
            var a0: Float = accumulate ? out[c] : 0
            for j in js { a0 += a[j * aStride] * rows[j * stride + c] }
            out[c] = a0
            c += 1
        }
    }

    public static func attentionForward(y: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                        qkv: UnsafePointer<Float>, items: Range<Int>, t: Int, layout: QKVLayout) {
        let hs = layout.headSize, heads = layout.heads, d = heads * hs, w = layout.width
        let scale = 1 / Float(hs).squareRoot(), tp = (t + W - 1) / W * W, sv = VF(repeating: scale), lane = laneIndices()
        // kt [hs, tp] this item's keys transposed; sc [tp] one query's scores
        withUnsafeTemporaryAllocation(of: Float.self, capacity: hs * tp + tp) { buf in
            let kt = buf.baseAddress!, sc = kt + hs * tp
            var lastKeys = -1
            for item in items {
                let bi = item / heads, h = item % heads, g = h / layout.group
                let rows = qkv + bi * t * w
                let qb = rows + layout.q(h), vb = rows + layout.v(g)
                if bi * layout.kvHeads + g != lastKeys {  // query heads of a group share the transposed keys
                    transpose(kt, rows + layout.k(g), w: w, t: t, tp: tp, hs: hs)
                    lastKeys = bi * layout.kvHeads + g
                }
                let pr = probs + item * t * t
                for i in 0..<t {
                    let n = i / W + 1  // vectors holding keys 0...i
                    scoresRow(sc, qb + i * w, kt, hs: hs, tp: tp, n: n)
                    // the softmax over keys 0...i, a vector at a time: later keys are −∞ for the max, 0
                    // after the exp, and every vector past key i is zero, so the sum runs over all t
                    // keys in sum16's order (the same on every build)
                    var mxv = VF(repeating: -.infinity)
                    for c in 0..<n {
                        let s = load(sc + c * W) * sv
                        store(sc + c * W, s)
                        let m = VF(repeating: -.infinity).replacing(with: s, where: lane .<= Float(i - c * W))
                        mxv = mxv.replacing(with: m, where: m .> mxv)
                    }
                    let mv = VF(repeating: maxLane(mxv))
                    for c in 0..<n {
                        let e = VMath.exp(load(sc + c * W) - mv)
                        store(sc + c * W, VF(repeating: 0).replacing(with: e, where: lane .<= Float(i - c * W)))
                    }
                    for c in n..<(tp / W) { store(sc + c * W, VF(repeating: 0)) }
                    let inv = 1 / sum(sc, t), iv = VF(repeating: inv)
                    let p = pr + i * t  // the whole row, zeros past key i included
                    var j = 0
                    while j + W <= t { store(p + j, load(sc + j) * iv); j += W }
                    while j < t { p[j] = sc[j] * inv; j += 1 }
                    combine(y + (bi * t + i) * d + h * hs, p, aStride: 1, vb, stride: w, 0..<(i + 1), hs: hs, accumulate: false)
                }
            }
        }
    }

    public static func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                         qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                         cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                         items: Range<Int>, t: Int, layout: QKVLayout, rot: Int) {
        let hs = layout.headSize, heads = layout.heads, d = heads * hs, w = layout.width, half = rot / 2
        let kvHeads = layout.kvHeads, group = layout.group
        let scale = 1 / Float(hs).squareRoot(), tp = (t + W - 1) / W * W, sv = VF(repeating: scale)
        // vt [hs, tp] this item's values transposed; dsm [t, tp] d scores of one query head
        withUnsafeTemporaryAllocation(of: Float.self, capacity: hs * tp + t * tp) { buf in
            let vt = buf.baseAddress!, dsm = vt + hs * tp
            for item in items {
                let bi = item / kvHeads, g = item % kvHeads
                let rows = qkv + bi * t * w, grows = dqkv + bi * t * w
                let kb = rows + layout.k(g), vb = rows + layout.v(g)
                let dkb = grows + layout.k(g), dvb = grows + layout.v(g)
                transpose(vt, vb, w: w, t: t, tp: tp, hs: hs)
                for h in (g * group)..<((g + 1) * group) {
                    let qb = rows + layout.q(h), dqb = grows + layout.q(h)
                    let pr = probs + (bi * heads + h) * t * t
                    let gyb = dy + bi * t * d + h * hs  // row i at gyb + i·d
                    // dS[i, j] = P[i, j]·(dP[i, j] − Σ_j P·dP)·scale with dP[i, j] = dy_i·v_j
                    for i in 0..<t {
                        let ds = dsm + i * tp, p = pr + i * t
                        let n = i / W + 1
                        scoresRow(ds, gyb + i * d, vt, hs: hs, tp: tp, n: n)
                        // Σ_j P·dP over all t keys in sum16's order: P is 0 past key i, and so is dP
                        // past the vectors just computed
                        for c in n..<(tp / W) { store(ds + c * W, VF(repeating: 0)) }
                        let pdp = dot(p, ds, t), pv = VF(repeating: pdp)
                        var j = 0
                        while j + W <= t && j <= i { store(ds + j, load(p + j) * (load(ds + j) - pv) * sv); j += W }
                        while j <= i { ds[j] = p[j] * (ds[j] - pdp) * scale; j += 1 }
                    }
                    let first = h == g * group  // the group's first query head writes dk, dv; the others add
                    for i in 0..<t {
                        // dq_i = Σ_j≤i dS[i, j]·k_j
                        combine(dqb + i * w, dsm + i * tp, aStride: 1, kb, stride: w, 0..<(i + 1), hs: hs, accumulate: false)
                        // dk_i = Σ_j≥i dS[j, i]·q_j, dv_i = Σ_j≥i P[j, i]·dy_j
                        combine(dkb + i * w, dsm + i, aStride: tp, qb, stride: w, i..<t, hs: hs, accumulate: !first)
                        combine(dvb + i * w, pr + i, aStride: t, gyb, stride: d, i..<t, hs: hs, accumulate: !first)
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

    public static func crossEntropyForward(logits: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                           lossRow: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                                           rows: Range<Int>, v: Int, gradScale: Float?) -> Double {
        var acc = 0.0
        for r in rows {
            let x = logits + r * v
            let tgt = Int(targets[r])
            if tgt < 0 {
                lossRow[r] = 0; lse[r] = 0
                if gradScale != nil { x.update(repeating: 0, count: v) }
                continue
            }
            var mxv = VF(repeating: -.infinity)
            var j = 0
            while j + W <= v { let y = load(x + j); mxv = mxv.replacing(with: y, where: y .> mxv); j += W }
            var mx = maxLane(mxv)
            while j < v { mx = Swift.max(mx, x[j]); j += 1 }
            let xt = x[tgt]
            let total = expSum16(x, v, minus: mx, write: gradScale != nil)
            let l = Float(log(Double(total))) + mx
            lse[r] = l
            lossRow[r] = l - xt
            acc += Double(l - xt)
            if let gs = gradScale {
                let k = gs / total, kv = VF(repeating: k)
                var j = 0
                while j + W <= v { store(x + j, load(x + j) * kv); j += W }
                while j < v { x[j] *= k; j += 1 }
                x[tgt] -= gs
            }
        }
        return acc
    }

    public static func crossEntropyBackward(logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                            targets: UnsafePointer<Int32>, rows: Range<Int>, v: Int, gradScale: Float) {
        for r in rows {
            let x = logits + r * v
            let tgt = Int(targets[r])
            if tgt < 0 { x.update(repeating: 0, count: v); continue }
            let lv = VF(repeating: lse[r]), gv = VF(repeating: gradScale)
            let whole = whole16(v)
            var j = 0
            while j < whole { store(x + j, VMath.exp(load(x + j) - lv) * gv); j += W }
            while j < v { x[j] = expf(x[j] - lse[r]) * gradScale; j += 1 }
            x[tgt] -= gradScale
        }
    }

    // MARK: optimizer

    public static func sumSquares(_ p: UnsafePointer<Float>, range: Range<Int>) -> Double {
        var acc = 0.0
        var i = range.lowerBound
        while i < range.upperBound {
            let e = min(range.upperBound, i + 4096)
            acc += Double(dot(p + i, p + i, e - i))
            i = e
        }
        return acc
    }

    public static func adamW(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m mm: UnsafeMutablePointer<Float>,
                             v vv: UnsafeMutablePointer<Float>, range: Range<Int>, clip: Float, beta1 b1: Float, beta2 b2: Float,
                             eps e: Float, stepSize: Float, bc2sqrt: Float, decay: Float) {
        let clipv = VF(repeating: clip), b1v = VF(repeating: b1), b2v = VF(repeating: b2)
        let c1v = VF(repeating: 1 - b1), c2v = VF(repeating: 1 - b2), invv = VF(repeating: 1 / bc2sqrt)
        let ev = VF(repeating: e), sv = VF(repeating: stepSize), dv = VF(repeating: decay)
        let o = range.lowerBound, p = p + o, g = g + o, mm = mm + o, vv = vv + o
        let n = range.count, whole = whole16(n)
        var i = 0
        while i < whole {
            let gi = load(g + i) * clipv
            let mi = b1v * load(mm + i) + c1v * gi
            let vi = b2v * load(vv + i) + c2v * gi * gi
            store(mm + i, mi); store(vv + i, vi)
            let denom = vi.squareRoot() * invv + ev
            store(p + i, load(p + i) * dv - sv * mi / denom)
            i += W
        }
        while i < n {
            let gi = g[i] * clip
            let mi = b1 * mm[i] + (1 - b1) * gi
            let vi = b2 * vv[i] + (1 - b2) * gi * gi
            mm[i] = mi; vv[i] = vi
            let denom = vi.squareRoot() / bc2sqrt + e
            p[i] = p[i] * decay - stepSize * mi / denom
            i += 1
        }
    }

    public static func exp(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        let whole = whole16(count)
        var i = 0
        while i < whole { store(out + i, VMath.exp(load(x + i))); i += W }
        while i < count { out[i] = expf(x[i]); i += 1 }
    }
}
