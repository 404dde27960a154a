/// AdamW over any flat block described by a tensor table (the model's, or an editing wrapper's
/// subset or LoRA adapters), with the same kernel and decay rule as `AdamW`: decoupled decay on
/// 2-D tensors only. The trainer computes the global gradient norm and passes the clip factor.
public final class BlockAdamW: BlockOptimizer {
    public var stepCount = 0
    public var firstMoment: [Float]
    public var secondMoment: [Float]
    let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    let table: [TensorEntry]

    public init(table: [TensorEntry], blockSize: Int, spec: TrainSpec) {
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
}
#if canImport(Glibc)
import Glibc
#endif
