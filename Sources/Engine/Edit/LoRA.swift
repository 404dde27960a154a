import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// A LoRA adapter on one weight matrix W [out, in] (PyTorch layout): W_eff = W₀ + s·B·A with
/// A [rank, in], B [out, rank], s = alpha / rank. Initialised as LoRA does: A uniform in
/// ±1/sqrt(in) (Kaiming-uniform with a = √5), B zero, so training starts from W₀ exactly.
///
/// W enters the network linearly, so the gradients of A and B follow from the gradient of the
/// merged weight: ∂L/∂B = s·∂L/∂W·Aᵀ and ∂L/∂A = s·Bᵀ·∂L/∂W. Training runs the network on the
/// merged weight and maps its weight gradient back (exact for dropout 0).
public struct LoRAAdapter {
    public let target: TensorEntry
    public let rank: Int
    public let alpha: Double
    public var a: [Float]
    public var b: [Float]
    public var rows: Int { target.shape[0] }
    public var cols: Int { target.shape[1] }
    public var scale: Float { Float(alpha / Double(rank)) }

    public init(target: TensorEntry, rank: Int, alpha: Double, rng: inout RNG) throws(EngineError) {
        guard target.shape.count == 2 else { throw .invalid("LoRA: \(target.name) is not a matrix (shape \(target.shape))") }
        let (out, inp) = (target.shape[0], target.shape[1])
        guard rank >= 1, rank <= min(out, inp) else {
            throw .invalid("LoRA: rank = \(rank) must be between 1 and \(min(out, inp)) for \(target.name) (shape \(out)x\(inp))")
        }
        guard alpha > 0, alpha.isFinite else { throw .invalid("LoRA: alpha = \(alpha) must be positive") }
        self.target = target
        self.rank = rank
        self.alpha = alpha
        let bound = 1 / Double(inp).squareRoot()
        a = (0..<(rank * inp)).map { _ in Float((rng.uniform() * 2 - 1) * bound) }
        b = [Float](repeating: 0, count: out * rank)
    }

    /// ΔW = s·B·A, [out, in].
    public func delta() -> [Float] {
        var d = [Float](repeating: 0, count: rows * cols)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(rank),
                    scale, b, Int32(rank), a, Int32(cols), 0, &d, Int32(cols))
        return d
    }

    /// weights[target] = base[target] + s·B·A.
    public func merge(base: UnsafePointer<Float>, into weights: UnsafeMutablePointer<Float>) {
        let w = weights + target.offset
        (w).update(from: base + target.offset, count: rows * cols)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(rank),
                    scale, b, Int32(rank), a, Int32(cols), 1, w, Int32(cols))
    }

    /// Maps the merged weight's gradient gW [out, in] to gA [rank, in] and gB [out, rank].
    public func gradients(weightGradient gW: UnsafePointer<Float>, gA: UnsafeMutablePointer<Float>, gB: UnsafeMutablePointer<Float>) {
        // gB = s · gW · Aᵀ : [out, in] × [in, rank]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(rank), Int32(cols),
                    scale, gW, Int32(cols), a, Int32(cols), 0, gB, Int32(rank))
        // gA = s · Bᵀ · gW : [rank, out] × [out, in]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rank), Int32(cols), Int32(rows),
                    scale, b, Int32(rank), gW, Int32(cols), 0, gA, Int32(cols))
    }
}
