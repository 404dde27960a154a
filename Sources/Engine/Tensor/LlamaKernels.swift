/// The element-wise kernels only the llama architecture uses: RMSNorm and the SwiGLU gate
/// (split across threads here, run by the instruction set's build; see KernelDispatch).
extension Kernels {
    // MARK: RMSNorm

    /// out[N, D] = x · ρ · w with ρ = 1 / sqrt(mean(x²) + eps), as Hugging Face's LlamaRMSNorm
    /// (no mean subtracted, no bias); rstd[N] = ρ is kept for the backward pass. With `residual`,
    /// x[N, D] is first written as its sum (the residual add fused in).
    public static func rmsNormForward(out: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                      x: UnsafeMutablePointer<Float>, residual: Residual? = nil, n: Int, d: Int, eps: Float) {
        let k = isa.kernels
        Work.chunks(n, grain: rowGrain(d)) { _, rows in
            k.rmsNormForward(out: out, w: w, rstd: rstd, x: x, residual: residual, rows: rows, d: d, eps: eps)
        }
    }

    /// Backward of `rmsNormForward`, with x̂ = x·ρ and g = dy·w:
    /// dx[N, D] += ρ·(g − x̂·mean(g·x̂))   (when dx is given);  dw[D] += Σ_rows dy·x̂ (when given).
    /// `partial` is scratch of at least threads·D floats for the per-thread column sums.
    public static func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                       dy: UnsafePointer<Float>, w: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                       rstd: UnsafePointer<Float>, n: Int, d: Int, partial: UnsafeMutablePointer<Float>) {
        let grain = rowGrain(d), chunks = Work.chunkCount(n, grain: grain)
        if dw != nil { partial.update(repeating: 0, count: chunks * d) }
        let k = isa.kernels
        Work.chunks(n, grain: grain) { c, rows in
            k.rmsNormBackward(dx: dx, dy: dy, w: w, x: x, rstd: rstd, rows: rows, d: d, partial: dw != nil ? partial + c * d : nil)
        }
        if let dw {
            for c in 0..<chunks { let pw = partial + c * d; for j in 0..<d { dw[j] += pw[j] } }
        }
    }

    // MARK: SwiGLU

    /// h[N, I] = silu(gate) · up, with pre[N, 2I] = [gate | up] per row (gate_proj and up_proj as one
    /// product) and silu(g) = g·σ(g). pre is kept as it is for the backward pass.
    public static func swigluForward(h: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, n: Int, width i: Int) {
        let k = isa.kernels
        Work.chunks(n, grain: rowGrain(i)) { _, rows in k.swigluForward(h: h, pre: pre, rows: rows, width: i) }
    }

    /// dpre[N, 2I] = [d gate | d up] from dh[N, I]:  d up = dh·silu(g),  d gate = dh·u·σ(g)·(1 + g·(1 − σ(g))).
    public static func swigluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, pre: UnsafePointer<Float>,
                                      n: Int, width i: Int) {
        let k = isa.kernels
        Work.chunks(n, grain: rowGrain(i)) { _, rows in k.swigluBackward(dpre: dpre, dh: dh, pre: pre, rows: rows, width: i) }
    }
}
