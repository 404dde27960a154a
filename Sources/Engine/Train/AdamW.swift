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

    /// Σ p² over n floats, split across threads (float sums per 4096, added in double per thread).
    static func sumSquares(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
        let k = Kernels.isa.kernels
        let grain = 1 << 16, chunks = Work.chunkCount(n, grain: grain)
        if chunks <= 1 { return k.sumSquares(p, range: 0..<n) }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { part in
            Work.chunks(n, grain: grain) { c, r in part[c] = k.sumSquares(p, range: r) }
            return part.reduce(0, +)
        }
    }

    /// The AdamW update of one tensor (count floats), clipped gradients, decoupled decay factor `decay`.
    static func kernel(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m mm: UnsafeMutablePointer<Float>,
                       v vv: UnsafeMutablePointer<Float>, count: Int, clip: Float, beta1 b1: Float, beta2 b2: Float,
                       eps e: Float, stepSize: Float, bc2sqrt: Float, decay: Float) {
        let k = Kernels.isa.kernels
        Work.chunks(count, grain: 1 << 15) { _, r in
            k.adamW(p: p, g: g, m: mm, v: vv, range: r, clip: clip, beta1: b1, beta2: b2, eps: e, stepSize: stepSize, bc2sqrt: bc2sqrt, decay: decay)
        }
    }
}
