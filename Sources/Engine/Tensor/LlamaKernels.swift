#if canImport(Glibc)
import Glibc
#endif

/// The element-wise kernels only the llama architecture uses: RMSNorm and the SwiGLU gate.
extension Kernels {
    // MARK: RMSNorm

    /// out[N, D] = x · ρ · w with ρ = 1 / sqrt(mean(x²) + eps), as Hugging Face's LlamaRMSNorm
    /// (no mean subtracted, no bias); rstd[N] = ρ is kept for the backward pass.
    public static func rmsNormForward(out: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                      x: UnsafePointer<Float>, n: Int, d: Int, eps: Float) {
        Work.chunks(n, grain: 64) { _, rows in
            for r in rows {
                let xr = x + r * d, o = out + r * d
                var s: Float = 0
                for j in 0..<d { s += xr[j] * xr[j] }
                let rs = 1 / (s / Float(d) + eps).squareRoot()
                rstd[r] = rs
                for j in 0..<d { o[j] = xr[j] * rs * w[j] }
            }
        }
    }

    /// Backward of `rmsNormForward`, with x̂ = x·ρ and g = dy·w:
    /// dx[N, D] += ρ·(g − x̂·mean(g·x̂))   (when dx is given);  dw[D] += Σ_rows dy·x̂ (when given).
    /// `partial` is scratch of at least threads·D floats for the per-thread column sums.
    public static func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                       dy: UnsafePointer<Float>, w: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                       rstd: UnsafePointer<Float>, n: Int, d: Int, partial: UnsafeMutablePointer<Float>) {
        let chunks = Work.chunkCount(n, grain: 64)
        if dw != nil { partial.update(repeating: 0, count: chunks * d) }
        Work.chunks(n, grain: 64) { c, rows in
            let pw = partial + c * d
            for r in rows {
                let xr = x + r * d, g = dy + r * d, rs = rstd[r]
                if dw != nil { for j in 0..<d { pw[j] += g[j] * xr[j] * rs } }
                guard let dx else { continue }
                var sgh: Float = 0
                for j in 0..<d { sgh += g[j] * w[j] * xr[j] * rs }
                let b = sgh / Float(d)
                let o = dx + r * d
                for j in 0..<d { o[j] += rs * (g[j] * w[j] - xr[j] * rs * b) }
            }
        }
        if let dw {
            for c in 0..<chunks { let pw = partial + c * d; for j in 0..<d { dw[j] += pw[j] } }
        }
    }

    // MARK: SwiGLU

    /// h[N, I] = silu(gate) · up, with pre[N, 2I] = [gate | up] per row (gate_proj and up_proj as one
    /// product) and silu(g) = g·σ(g). pre is kept as it is for the backward pass.
    public static func swigluForward(h: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, n: Int, width i: Int) {
        Work.chunks(n, grain: 32) { _, rows in
            for r in rows {
                let g = pre + r * 2 * i, u = g + i, o = h + r * i
                for j in 0..<i { o[j] = g[j] / (1 + expf(-g[j])) * u[j] }
            }
        }
    }

    /// dpre[N, 2I] = [d gate | d up] from dh[N, I]:  d up = dh·silu(g),  d gate = dh·u·σ(g)·(1 + g·(1 − σ(g))).
    public static func swigluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, pre: UnsafePointer<Float>,
                                      n: Int, width i: Int) {
        Work.chunks(n, grain: 32) { _, rows in
            for r in rows {
                let g = pre + r * 2 * i, u = g + i, dg = dpre + r * 2 * i, du = dg + i, d = dh + r * i
                for j in 0..<i {
                    let s = 1 / (1 + expf(-g[j]))
                    du[j] = d[j] * g[j] * s
                    dg[j] = d[j] * u[j] * s * (1 + g[j] * (1 - s))
                }
            }
        }
    }
}
