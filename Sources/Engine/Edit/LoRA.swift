#if canImport(Glibc)
import Glibc
#endif

/// A LoRA adapter on one weight matrix W [out, in] (PyTorch layout): y = x·W₀ᵀ + s·(drop(x)·Aᵀ)·Bᵀ
/// with A [rank, in], B [out, rank], s = alpha / rank. Initialised as LoRA does: A uniform in
/// ±1/sqrt(in) (Kaiming-uniform with a = √5), B zero, so training starts from W₀ exactly. Merged,
/// W = W₀ + s·B·A. Training runs it as a side path of the model (LoRANetwork).
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

    /// An adapter with given factors (read from a file; sizes checked by the caller).
    public init(target: TensorEntry, rank: Int, alpha: Double, a: [Float], b: [Float]) {
        self.target = target; self.rank = rank; self.alpha = alpha; self.a = a; self.b = b
    }

    /// ΔW = s·B·A, [out, in].
    public func delta() -> [Float] {
        var d = [Float](repeating: 0, count: rows * cols)
        addDelta(into: &d, beta: 0)
        return d
    }

    /// weights[target] += s·B·A (the flat block's layout).
    public func addDelta(into weights: UnsafeMutablePointer<Float>) {
        addDelta(into: weights + target.offset, beta: 1)
    }

    /// w[out, in] = s · B[out, r] · A[r, in] + beta · w.
    func addDelta(into w: UnsafeMutablePointer<Float>, beta: Float) {
        b.withUnsafeBufferPointer { bp in a.withUnsafeBufferPointer { ap in
            BLAS.gemm(transA: false, transB: false, m: rows, n: cols, k: rank, alpha: scale, a: bp.baseAddress!, lda: rank,
                      b: ap.baseAddress!, ldb: cols, beta: beta, c: w, ldc: cols)
        } }
    }

}
