#if canImport(Glibc)
import Glibc
#endif

/// The optimizer: AdamW as `torch.optim.AdamW` computes it, over any flat block a tensor table
/// describes (the model's, or an editing wrapper's subset or LoRA adapters):
///   p ← p − lr·λ·p                      (decoupled weight decay on 2-D tensors only: weight matrices
///                                         and both embeddings; never biases or LayerNorms)
///   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
/// with g already scaled by the clip factor (`clipScale`, as `torch.nn.utils.clip_grad_norm_`).
/// The Trainer runs the whole step: `globalNorm`, `clipScale`, the schedule (LRSchedule) and
/// `update`; the PyTorch parity fixture checks that path. Frozen tensors are neither read nor changed.
public final class AdamW: BlockOptimizer {
    public var stepCount = 0
    public var firstMoment: [Float]
    public var secondMoment: [Float]
    let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    let table: TensorTable

    public init(table: TensorTable, blockSize: Int, spec: TrainSpec) {
        firstMoment = [Float](repeating: 0, count: blockSize)
        secondMoment = firstMoment
        beta1 = Float(spec.beta1); beta2 = Float(spec.beta2); eps = Float(spec.eps); weightDecay = Float(spec.weightDecay)
        self.table = table
    }

    public func update(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate lr: Float,
                       gradientScale: Float, trainable: [Bool]?) {
        stepCount += 1
        let bc1 = 1 - pow(Double(beta1), Double(stepCount)), bc2 = 1 - pow(Double(beta2), Double(stepCount))
        let stepSize = Float(Double(lr) / bc1), bc2sqrt = Float(bc2.squareRoot())
        firstMoment.withUnsafeMutableBufferPointer { m in
            secondMoment.withUnsafeMutableBufferPointer { v in
                for (k, e) in table.enumerated() where trainable?[k] ?? true {
                    AdamW.kernel(p: parameters.baseAddress! + e.offset, g: gradients.baseAddress! + e.offset,
                                 m: m.baseAddress! + e.offset, v: v.baseAddress! + e.offset, count: e.count, clip: gradientScale,
                                 beta1: beta1, beta2: beta2, eps: eps, stepSize: stepSize, bc2sqrt: bc2sqrt,
                                 decay: e.shape.count == 2 ? 1 - lr * weightDecay : 1)
                }
            }
        }
    }

    /// The global L2 norm of the trainable tensors' gradients (float sums per 4096, summed in double).
    public static func globalNorm(_ gradients: UnsafeBufferPointer<Float>, table: TensorTable, trainable: [Bool]?) -> Float {
        var sq = 0.0
        for (k, e) in table.enumerated() where trainable?[k] ?? true {
            sq += sumSquares(UnsafeMutablePointer(mutating: gradients.baseAddress! + e.offset), e.count)
        }
        return Float(sq.squareRoot())
    }

    /// The factor gradients are scaled by: maxNorm / (norm + 1e-6) when the norm exceeds maxNorm
    /// (maxNorm 0 = no clipping), else 1.
    public static func clipScale(norm: Float, maxNorm: Double) -> Float {
        maxNorm > 0 && Double(norm) > maxNorm ? Float(maxNorm / (Double(norm) + 1e-6)) : 1
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

    /// The AdamW update of one tensor (count floats), clipped gradients, decoupled decay factor `decay`.
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
}
