#if canImport(Glibc)
import Glibc
#endif

/// AdamW as `torch.optim.AdamW` computes it, over the flat parameter block:
///   p ← p − lr·λ·p                      (decoupled weight decay, only tensors with `decays`: 2-D
///                                         weight matrices and both embeddings; never biases or LayerNorms)
///   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
/// with gradients first clipped to a global L2 norm (as `torch.nn.utils.clip_grad_norm_`:
/// g ← g · min(1, maxNorm / (‖g‖ + 1e-6)), the norm over all trainable tensors).
/// Frozen tensors (trainable = false) are neither read nor changed. `step` counts the updates done.
public final class AdamW {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Global-norm clip threshold; nil or ≤ 0 disables clipping.
    public var maxGradNorm: Float?
    public let m: ParameterBlock, v: ParameterBlock
    public private(set) var step: Int = 0

    public init(table: ParameterTable, beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8,
                weightDecay: Float = 0.1, maxGradNorm: Float? = 1.0) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay; self.maxGradNorm = maxGradNorm
        m = ParameterBlock(table: table); v = ParameterBlock(table: table)
    }

    /// Restores the step count (for resuming; the moments are restored through `m` and `v`).
    public func setStep(_ s: Int) { step = s }

    public func reset() { m.zero(); v.zero(); step = 0 }

    /// Global L2 norm of the trainable gradients.
    public static func gradNorm(_ grads: ParameterBlock, trainable: [Bool]) -> Double {
        var total = 0.0
        for (k, t) in grads.table.tensors.enumerated() where trainable[k] {
            let g = grads.ptr(k)
            let n = t.count
            total += sumSquares(g, n)
        }
        return total.squareRoot()
    }

    static func sumSquares(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
        var acc = 0.0
        var i = 0
        while i < n {
            let e = min(n, i + 4096)
            var s8 = F8(repeating: 0)
            var j = i
            while j + 8 <= e { let x = load8(p + j); s8 += x * x; j += 8 }
            var s = s8.sum()
            while j < e { s += p[j] * p[j]; j += 1 }
            acc += Double(s)
            i = e
        }
        return acc
    }

    /// One update with learning rate `lr`; returns the gradient norm before clipping.
    @discardableResult
    public func update(params: ParameterBlock, grads: ParameterBlock, trainable: [Bool], lr: Float) -> Double {
        let norm = AdamW.gradNorm(grads, trainable: trainable)
        var clip: Float = 1
        if let mx = maxGradNorm, mx > 0 {
            let c = Double(mx) / (norm + 1e-6)
            if c < 1 { clip = Float(c) }
        }
        step += 1
        let bc1 = 1 - pow(Double(beta1), Double(step)), bc2 = 1 - pow(Double(beta2), Double(step))
        let stepSize = Float(Double(lr) / bc1)
        let bc2sqrt = Float(bc2.squareRoot())
        for (k, t) in params.table.tensors.enumerated() where trainable[k] {
            AdamW.kernel(p: params.ptr(k), g: grads.ptr(k), m: m.ptr(k), v: v.ptr(k), count: t.count, clip: clip,
                         beta1: beta1, beta2: beta2, eps: eps, stepSize: stepSize, bc2sqrt: bc2sqrt,
                         decay: t.decays ? 1 - lr * weightDecay : 1)
        }
        return norm
    }

    /// The AdamW update of one tensor (count floats), clipped gradients, decoupled decay factor `decay`:
    /// shared by this optimizer and `BlockAdamW` (editing wrappers' own blocks).
    @inline(__always)
    static func kernel(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m mm: UnsafeMutablePointer<Float>,
                       v vv: UnsafeMutablePointer<Float>, count: Int, clip: Float, beta1 b1: Float, beta2 b2: Float,
                       eps e: Float, stepSize: Float, bc2sqrt: Float, decay: Float) {
        let clip8 = F8(repeating: clip), b18 = F8(repeating: b1), b28 = F8(repeating: b2)
        let c18 = F8(repeating: 1 - b1), c28 = F8(repeating: 1 - b2), inv8 = F8(repeating: 1 / bc2sqrt)
        let e8 = F8(repeating: e), s8 = F8(repeating: stepSize), d8 = F8(repeating: decay)
        let g = UnsafeMutablePointer(mutating: g)
        Work.chunks(count, grain: 1 << 16) { _, r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let gi = load8(g + i) * clip8
                let mi = b18 * load8(mm + i) + c18 * gi
                let vi = b28 * load8(vv + i) + c28 * gi * gi
                store8(mm + i, mi); store8(vv + i, vi)
                let denom = vi.squareRoot() * inv8 + e8
                store8(p + i, load8(p + i) * d8 - s8 * mi / denom)
                i += 8
            }
            while i < r.upperBound {
                let gi = g[i] * clip
                let mi = b1 * mm[i] + (1 - b1) * gi
                let vi = b2 * vv[i] + (1 - b2) * gi * gi
                mm[i] = mi; vv[i] = vi
                let denom = vi.squareRoot() / bc2sqrt + e
                p[i] = p[i] * decay - stepSize * mi / denom
                i += 1
            }
        }
    }

    /// Update using `schedule.rate(at: step)` (the step count before this update).
    @discardableResult
    public func update(params: ParameterBlock, grads: ParameterBlock, trainable: [Bool], schedule: LRSchedule) -> Double {
        update(params: params, grads: grads, trainable: trainable, lr: Float(schedule.rate(at: step)))
    }
}
