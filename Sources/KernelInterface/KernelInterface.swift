/// The element-wise kernels' contract. One implementation is compiled per instruction set from the
/// same source (Sources/Kernels: KernelsPortable, KernelsAVX2, KernelsAVX512) and the engine picks
/// one at run time (Engine's `Kernels`, reported by bh_runtime_info). Every kernel here is serial over
/// the rows (or items) it is given; the engine splits the work across threads.
///
/// Shapes: N = B·T rows, D hidden, I intermediate, H heads, hs head size, V vocabulary; row-major
/// float32 over raw pointers; nothing allocates.
public protocol ElementwiseKernels {
    /// The instruction set the implementation was compiled for ("avx512", "avx2", "portable").
    static var name: String { get }
    /// Floats per vector register in the implementation's loops (16, 8, or 8 split into halves).
    static var vectorWidth: Int { get }

    // MARK: norms

    /// out1[r, D] = (x − μ)·σ⁻¹·w1 + b1, and out2 with w2, b2 when given (the same μ, σ); mean, rstd kept.
    /// With `addB` (and `addC`), x is first written as x ← addA + addB (+ addC): the residual add fused in.
    static func layerNormForward(out1: UnsafeMutablePointer<Float>, w1: UnsafePointer<Float>, b1: UnsafePointer<Float>,
                                 out2: UnsafeMutablePointer<Float>?, w2: UnsafePointer<Float>?, b2: UnsafePointer<Float>?,
                                 mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                 x: UnsafeMutablePointer<Float>, residual: Residual?, rows: Range<Int>, d: Int, eps: Float)
    /// dx[r, D] += σ⁻¹·(g − mean(g) − x̂·mean(g·x̂)) with g = dy1·w1 (+ dy2·w2) (when dx is given);
    /// partial (4·D floats: Σ dy1·x̂, Σ dy1, Σ dy2·x̂, Σ dy2 over the rows) += when given.
    static func layerNormBackward(dx: UnsafeMutablePointer<Float>?, dy1: UnsafePointer<Float>, w1: UnsafePointer<Float>,
                                  dy2: UnsafePointer<Float>?, w2: UnsafePointer<Float>?,
                                  x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                  rows: Range<Int>, d: Int, partial: UnsafeMutablePointer<Float>?)
    /// out[r, D] = x·ρ·w, ρ = 1/sqrt(mean(x²) + eps) (LlamaRMSNorm); rstd[r] = ρ. `residual` as above.
    static func rmsNormForward(out: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               x: UnsafeMutablePointer<Float>, residual: Residual?, rows: Range<Int>, d: Int, eps: Float)
    /// dx[r, D] += ρ·(g − x̂·mean(g·x̂)), g = dy·w (when dx is given); partial[D] += Σ dy·x̂ (when given).
    static func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Range<Int>, d: Int,
                                partial: UnsafeMutablePointer<Float>?)

    // MARK: element-wise

    /// out[i] = a[i] + b[i] (+ c[i]) over `range`.
    static func add(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                    _ c: UnsafePointer<Float>?, range: Range<Int>)
    /// out[i] = a[i]·b[i] over `range` (out may alias a).
    static func multiply(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, range: Range<Int>)
    /// x = pre[r, I] + bias; h = gelu(x) (exact, erf); with `derivative`, pre ← gelu'(x) (else pre is
    /// left as it was: an evaluation-only pass).
    static func biasGeluForward(h: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                                rows: Range<Int>, width: Int, derivative: Bool)
    /// h[r, I] = silu(gate)·up with pre[r, 2I] = [gate | up].
    static func swigluForward(h: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, rows: Range<Int>, width: Int)
    /// dpre[r, 2I] = [d gate | d up] from dh[r, I].
    static func swigluBackward(dpre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, pre: UnsafePointer<Float>,
                               rows: Range<Int>, width: Int)

    // MARK: attention

    /// qkv[r, width] += bias (when given), then rotate-half rotary on the first `rot` dims of each query
    /// and key head at position r mod t.
    static func qkvBiasRotaryForward(qkv: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                     cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                     rows: Range<Int>, t: Int, layout: QKVLayout, rot: Int)
    /// Causal softmax attention for the (batch, head) items given: y[N, H·hs], probs[B, H, T, T].
    static func attentionForward(y: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                 qkv: UnsafePointer<Float>, items: Range<Int>, t: Int, layout: QKVLayout)
    /// Backward of attention and rotary for the (batch, key/value head) items given; dqkv overwritten
    /// at those items' columns.
    static func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                  qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                  cosT: UnsafePointer<Float>, sinT: UnsafePointer<Float>,
                                  items: Range<Int>, t: Int, layout: QKVLayout, rot: Int)

    // MARK: cross-entropy

    /// Fused softmax + cross-entropy over logits[r, V]: lossRow, lse; with gradScale the logits become
    /// (softmax − onehot)·gradScale (zero rows where the target is negative). Returns Σ lossRow.
    static func crossEntropyForward(logits: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                    lossRow: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                                    rows: Range<Int>, v: Int, gradScale: Float?) -> Double
    /// logits[r, V] ← (softmax − onehot)·gradScale from lse.
    static func crossEntropyBackward(logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                     targets: UnsafePointer<Int32>, rows: Range<Int>, v: Int, gradScale: Float)

    // MARK: optimizer

    /// Σ p[i]² over `range` (float sums per 4096, added in double).
    static func sumSquares(_ p: UnsafePointer<Float>, range: Range<Int>) -> Double
    /// AdamW over `range`: g·clip, moments, decoupled decay factor, bias-corrected step.
    static func adamW(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                      v: UnsafeMutablePointer<Float>, range: Range<Int>, clip: Float, beta1: Float, beta2: Float,
                      eps: Float, stepSize: Float, bc2sqrt: Float, decay: Float)

    // MARK: vector math (for tests)

    /// out[i] = e^x[i] through the vector path (tests compare it with libm).
    static func exp(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int)
}

/// A residual add fused into the norm that reads its sum: x ← a + b (+ c) before normalising x.
public struct Residual {
    public let a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>?
    public init(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>? = nil) { self.a = a; self.b = b; self.c = c }
}

/// Where each head's q, k and v sit in a row of the fused q|k|v activation [N, width].
///   GPT-NeoX (interleaved): per head [q(hs) | k(hs) | v(hs)], width 3·H·hs
///   llama: [q of H heads | k of G heads | v of G heads], width (H + 2G)·hs; query head h reads
///   key/value head h / (H / G) (grouped-query attention; G = H is plain multi-head attention)
public struct QKVLayout: Sendable {
    public let heads: Int, kvHeads: Int, headSize: Int, interleaved: Bool
    public var width: Int { (heads + 2 * kvHeads) * headSize }
    /// Query heads per key/value head.
    public var group: Int { heads / kvHeads }
    @inline(__always) public func q(_ h: Int) -> Int { interleaved ? h * 3 * headSize : h * headSize }
    /// Column of key/value head g's key (interleaved: g = the query head).
    @inline(__always) public func k(_ g: Int) -> Int { interleaved ? g * 3 * headSize + headSize : (heads + g) * headSize }
    @inline(__always) public func v(_ g: Int) -> Int { interleaved ? g * 3 * headSize + 2 * headSize : (heads + kvHeads + g) * headSize }

    public init(heads: Int, kvHeads: Int, headSize: Int, interleaved: Bool) {
        self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize; self.interleaved = interleaved
    }
}
