#if canImport(Glibc)
import Glibc
#endif

/// Scratch of `GPTNeoX.suffixForward`, grown on demand (n = rows × positions).
final class SuffixWorkspace {
    private(set) var rows = 0, positions = 0
    var x = FloatBuffer(count: 0), ln1 = FloatBuffer(count: 0), ln2 = FloatBuffer(count: 0)
    var qkv = FloatBuffer(count: 0), y = FloatBuffer(count: 0), attn = FloatBuffer(count: 0), mid = FloatBuffer(count: 0)
    var pre = FloatBuffer(count: 0), hid = FloatBuffer(count: 0), mlp = FloatBuffer(count: 0)
    var mean = FloatBuffer(count: 0), rstd = FloatBuffer(count: 0)
    var last = FloatBuffer(count: 0), lastNorm = FloatBuffer(count: 0), logits = FloatBuffer(count: 0)

    /// qkvWidth: the fused q|k|v columns; fc1Out: the first MLP product's (I, or llama's 2I).
    func ensure(rows r: Int, positions p: Int, d: Int, i: Int, v: Int, qkvWidth: Int, fc1Out: Int) {
        guard r > rows || p > positions else { return }
        rows = max(r, rows); positions = max(p, positions)
        let n = rows * positions
        x = FloatBuffer(count: n * d); ln1 = FloatBuffer(count: n * d); ln2 = FloatBuffer(count: n * d)
        qkv = FloatBuffer(count: n * qkvWidth); y = FloatBuffer(count: n * d); attn = FloatBuffer(count: n * d); mid = FloatBuffer(count: n * d)
        pre = FloatBuffer(count: n * fc1Out); hid = FloatBuffer(count: n * i); mlp = FloatBuffer(count: n * d)
        mean = FloatBuffer(count: n); rstd = FloatBuffer(count: n)
        last = FloatBuffer(count: rows * d); lastNorm = FloatBuffer(count: rows * d); logits = FloatBuffer(count: rows * v)
    }
}

extension GPTNeoX {
    /// A forward pass over the last P = T − t0 positions of R rows whose first t0 positions are fixed,
    /// starting at a block per row: what causal tracing needs to reuse a corrupted run. Causal
    /// attention leaves positions before t0 unchanged, so their keys and values at every block are
    /// the earlier run's (`prefixQKV(block)`: [S, T, layout.width] rotated q|k|v of that run, row r reads sample
    /// `sample[r]`); blocks below a row's start are not run at all.
    ///
    ///   start[R]   the block row r enters (non-decreasing, so the rows running block j are a prefix);
    ///              L = the row only goes through the final LayerNorm
    ///   enter      writes the residual stream [P, D] entering block start[r] for a range of rows (x of row r at x + r·P·D)
    ///   patch      may overwrite a site's output ([rows, P, width], after bias, before the residual add;
    ///              block_output after it) for the rows running that block, as ForwardHooks would
    ///   answers[R] the token whose probability is returned per row (softmax of the last position's logits)
    func suffixForward(_ ws: SuffixWorkspace, rows R: Int, t0: Int, total T: Int, start: [Int], sample: [Int],
                       prefixQKV: (Int) -> UnsafePointer<Float>,
                       enter: (Range<Int>, UnsafeMutablePointer<Float>) -> Void,
                       patch: (HookSite, Int, Int, UnsafeMutablePointer<Float>) -> Void,
                       answers: [Int32]) -> [Float] {
        let P = T - t0, half = rot / 2
        ws.ensure(rows: R, positions: P, d: D, i: I, v: V, qkvWidth: layout.width, fc1Out: fc1Out)
        let eps = Float(config.layerNormEps)
        let x = ws.x.ptr
        var entered = 0, lastDone = 0
        func admit(upTo a: Int) { if a > entered { enter(entered..<a, x + entered * P * D); entered = a } }
        for l in 0..<L {
            var A = 0
            while A < R && start[A] <= l { A += 1 }
            admit(upTo: A)
            if A == 0 { continue }
            let n = A * P
            let ix = { (s: ParameterTable.Slot) in self.params.ptr(self.table.index(layer: l, s)) }
            // attention: LN1 (with LN2 for the parallel residual), q|k|v of the suffix, rotary at positions t0..<T
            if config.parallelResidual {
                Kernels.layerNormForward(out1: ws.ln1.ptr, w1: ix(.ln1W), b1: ix(.ln1B), out2: ws.ln2.ptr, w2: ix(.ln2W), b2: ix(.ln2B),
                                         mean: ws.mean.ptr, rstd: ws.rstd.ptr, x: x, n: n, d: D, eps: eps)
            } else {
                normForward(out: ws.ln1.ptr, l, .ln1W, .ln1B, mean: ws.mean.ptr, rstd: ws.rstd.ptr, x: x, n: n)
            }
            BLAS.linearForward(out: ws.qkv.ptr, x: ws.ln1.ptr, w: ix(.qkvW), rows: n, inDim: D, outDim: layout.width)
            adaptForward(l, .qkvW, x: ws.ln1.ptr, y: ws.qkv.ptr, width: layout.width, rows: n)
            Kernels.qkvBiasRotaryForward(qkv: ws.qkv.ptr, bias: llama ? nil : ix(.qkvB), cosT: cosT.ptr + t0 * half, sinT: sinT.ptr + t0 * half,
                                         n: n, t: P, layout: layout, rot: rot)
            // In the last block only the last position reaches the logits: the others give their keys
            // and values (above) and nothing else, and a patch at t0 < T − 1 there changes nothing read.
            if l == L - 1 && P > 1 {
                lastDone = A
                Self.prefixAttention(y: ws.y.ptr, qkv: ws.qkv.ptr, prefix: prefixQKV(l), sample: sample, rows: A, t0: t0, total: T,
                                     layout: layout, queries: (P - 1)..<P)
                for a in 0..<A { (ws.last.ptr + a * D).update(from: x + (a * P + P - 1) * D, count: D) }   // x at the last position
                if config.parallelResidual { for a in 0..<A { (ws.mid.ptr + a * D).update(from: ws.ln2.ptr + (a * P + P - 1) * D, count: D) } }
                lastBlock(l, rows: A, ws, eps: eps)
                continue
            }
            Self.prefixAttention(y: ws.y.ptr, qkv: ws.qkv.ptr, prefix: prefixQKV(l), sample: sample, rows: A, t0: t0, total: T,
                                 layout: layout)
            attentionOutput(l, rows: n, ws)
            patch(.attnOutput, l, A, ws.attn.ptr)
            if !config.parallelResidual {
                Kernels.add(out: ws.mid.ptr, x, ws.attn.ptr, nil, count: n * D)
                normForward(out: ws.ln2.ptr, l, .ln2W, .ln2B, mean: ws.mean.ptr, rstd: ws.rstd.ptr, x: ws.mid.ptr, n: n)
            }
            mlp(l, rows: n, input: ws.ln2.ptr, ws)
            patch(.mlpOutput, l, A, ws.mlp.ptr)
            if config.parallelResidual {
                Kernels.add(out: x, x, ws.attn.ptr, ws.mlp.ptr, count: n * D)
            } else {
                Kernels.add(out: x, ws.mid.ptr, ws.mlp.ptr, nil, count: n * D)
            }
            patch(.blockOutput, l, A, x)
        }
        admit(upTo: R)
        // the last position of every row (the rows through the last block with P > 1 have it in ws.last):
        // final LayerNorm, unembedding, softmax at the answer
        for r in lastDone..<R { (ws.last.ptr + r * D).update(from: x + (r * P + P - 1) * D, count: D) }
        finalNormForward(out: ws.lastNorm.ptr, mean: ws.mean.ptr, rstd: ws.rstd.ptr, x: ws.last.ptr, n: R)
        BLAS.linearForward(out: ws.logits.ptr, x: ws.lastNorm.ptr, w: params.ptr(table.embedOut), rows: R, inDim: D, outDim: V)
        return (0..<R).map { r in Self.probability(ws.logits.ptr + r * V, V, answers[r]) }
    }

    /// mlp[rows, D] = fc2(gelu(fc1(input) + b1)) + b2, or llama's down(silu(gate(input))·up(input))
    /// (with the adapter's side paths).
    private func mlp(_ l: Int, rows n: Int, input: UnsafeMutablePointer<Float>, _ ws: SuffixWorkspace) {
        let ix = { (s: ParameterTable.Slot) in self.params.ptr(self.table.index(layer: l, s)) }
        BLAS.linearForward(out: ws.pre.ptr, x: input, w: ix(.fc1W), rows: n, inDim: D, outDim: fc1Out)
        adaptForward(l, .fc1W, x: input, y: ws.pre.ptr, width: fc1Out, rows: n)
        if llama {
            Kernels.swigluForward(h: ws.hid.ptr, pre: ws.pre.ptr, n: n, width: I)
        } else {
            Kernels.biasGeluForward(h: ws.hid.ptr, pre: ws.pre.ptr, bias: ix(.fc1B), n: n, width: I)
            Kernels.fillRows(out: ws.mlp.ptr, bias: ix(.fc2B), n: n, width: D)
        }
        BLAS.linearForward(out: ws.mlp.ptr, x: ws.hid.ptr, w: ix(.fc2W), rows: n, inDim: I, outDim: D, accumulate: !llama)
        adaptForward(l, .fc2W, x: ws.hid.ptr, y: ws.mlp.ptr, width: D, rows: n)
    }

    /// attn[rows, D] = dense(y) (+ bias) from the head outputs ws.y (with the adapter's side path).
    private func attentionOutput(_ l: Int, rows n: Int, _ ws: SuffixWorkspace) {
        let ix = { (s: ParameterTable.Slot) in self.params.ptr(self.table.index(layer: l, s)) }
        if !llama { Kernels.fillRows(out: ws.attn.ptr, bias: ix(.denseB), n: n, width: D) }
        BLAS.linearForward(out: ws.attn.ptr, x: ws.y.ptr, w: ix(.denseW), rows: n, inDim: D, outDim: D, accumulate: !llama)
        adaptForward(l, .denseW, x: ws.y.ptr, y: ws.attn.ptr, width: D, rows: n)
    }

    /// The last block at the last position only, one row per sequence: ws.y [A, D] the attention's
    /// head outputs, ws.last [A, D] the block's input (becomes its output), ws.mid [A, D] LN2 of it
    /// (parallel residual).
    private func lastBlock(_ l: Int, rows A: Int, _ ws: SuffixWorkspace, eps: Float) {
        attentionOutput(l, rows: A, ws)
        if config.parallelResidual {
            mlp(l, rows: A, input: ws.mid.ptr, ws)
            Kernels.add(out: ws.last.ptr, ws.last.ptr, ws.attn.ptr, ws.mlp.ptr, count: A * D)
        } else {
            Kernels.add(out: ws.last.ptr, ws.last.ptr, ws.attn.ptr, nil, count: A * D)
            normForward(out: ws.ln2.ptr, l, .ln2W, .ln2B, mean: ws.mean.ptr, rstd: ws.rstd.ptr, x: ws.last.ptr, n: A)
            mlp(l, rows: A, input: ws.ln2.ptr, ws)
            Kernels.add(out: ws.last.ptr, ws.last.ptr, ws.mlp.ptr, nil, count: A * D)
        }
    }

    /// softmax(logits[V])[k], with the max subtracted.
    static func probability(_ z: UnsafePointer<Float>, _ v: Int, _ k: Int32) -> Float {
        var mx = -Float.infinity
        for j in 0..<v where z[j] > mx { mx = z[j] }
        var sum: Double = 0
        for j in 0..<v { sum += Double(expf(z[j] - mx)) }
        return Float(Double(expf(z[Int(k)] - mx)) / sum)
    }

    /// Causal attention of the suffix positions t0..<T of each row over its fixed prefix and itself:
    /// y[A, nq, H·hs] (head h at columns h·hs) for the queries (suffix positions, default all P); qkv[A, P, width] the suffix's
    /// rotated q|k|v; prefix[S, T, width] the earlier run's, row a reading sample[a] at positions 0..<t0.
    static func prefixAttention(y: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, prefix: UnsafePointer<Float>, sample: [Int],
                                rows A: Int, t0: Int, total T: Int, layout: Kernels.QKVLayout, queries: Range<Int>? = nil) {
        let heads = layout.heads, hs = layout.headSize
        let d = heads * hs, w = layout.width, P = T - t0, qs = queries ?? 0..<P, nq = qs.count
        let scale = 1 / Float(hs).squareRoot()
        sample.withUnsafeBufferPointer { smp in
            Work.chunks(A * heads, grain: 4) { _, items in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: T) { sc in
                    let p = sc.baseAddress!
                    for item in items {
                        let a = item / heads, h = item % heads, g = h / layout.group
                        let pre = prefix + smp[a] * T * w   // position j's row at pre + j·w
                        let suf = qkv + a * P * w
                        let (qo, ko, vo) = (layout.q(h), layout.k(g), layout.v(g))
                        for i in qs {
                            let q = suf + i * w + qo
                            var mx = -Float.infinity
                            for j in 0..<t0 { let s = Kernels.dot(q, pre + j * w + ko, hs) * scale; p[j] = s; if s > mx { mx = s } }
                            for j in 0...i { let s = Kernels.dot(q, suf + j * w + ko, hs) * scale; p[t0 + j] = s; if s > mx { mx = s } }
                            let k = t0 + i + 1
                            var sum: Float = 0
                            for j in 0..<k { let e = expf(p[j] - mx); p[j] = e; sum += e }
                            let inv = 1 / sum
                            let out = y + (a * nq + i - qs.lowerBound) * d + h * hs
                            for e in 0..<hs { out[e] = 0 }
                            for j in 0..<t0 { Kernels.axpy(out, p[j] * inv, pre + j * w + vo, hs) }
                            for j in 0...i { Kernels.axpy(out, p[t0 + j] * inv, suf + j * w + vo, hs) }
                        }
                    }
                }
            }
        }
    }
}
