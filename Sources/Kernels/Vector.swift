#if canImport(Glibc)
import Glibc
#endif

// The vector type of this build of the kernels: 16 floats (one AVX-512 register) when the module is
// compiled with BH_WIDE16 (KernelsAVX512), else 8 (one AVX2 register; two SSE or NEON registers in
// the portable build). Every kernel is written once against VF.
#if BH_WIDE16
public typealias VF = SIMD16<Float>
typealias VI = SIMD16<Int32>
#else
public typealias VF = SIMD8<Float>
typealias VI = SIMD8<Int32>
#endif
let W = VF.scalarCount

@inline(__always) func load(_ p: UnsafePointer<Float>) -> VF { UnsafeRawPointer(p).loadUnaligned(as: VF.self) }
@inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> VF { UnsafeRawPointer(p).loadUnaligned(as: VF.self) }
@inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ v: VF) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: VF.self) }

/// Vectorised exp and erf (libm's scalar expf/erff would dominate the softmax over a 5,000-token
/// vocabulary and the GELU over the MLP width). Lane by lane the same arithmetic at every width, so
/// the instruction sets differ only in the order of sums.
enum VMath {
    /// e^x, Cephes-style: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e^r, 2^n from the
    /// exponent bits. Relative error ~1e-7 over [-87, 88]; inputs are clamped to that range.
    @_transparent  // (@inline(__always) was not honoured at 16 lanes: an out-of-line call per vector)
    static func exp(_ x0: VF) -> VF {
        // (comparisons + replacing inline; the stdlib's clamped/pointwiseMin and float→int SIMD
        // conversions are out-of-line calls, so they are avoided here)
        var x = x0.replacing(with: -87.0, where: x0 .< -87.0)
        x = x.replacing(with: 88.0, where: x .> 88.0)
        let magic = VF(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to the nearest integer
        let k = x * 1.44269504088896341 + magic
        let n = k - magic
        var r = x - n * 0.693359375
        r = r + n * 2.12194440e-4
        let r2 = r * r
        var p = VF(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r2 + r + 1
        // n as an integer sits in the low mantissa bits of k = n + 1.5·2^23
        let ni = unsafeBitCast(k, to: VI.self) &- 0x4B40_0000 &+ 127
        let scale = unsafeBitCast(ni &<< 23, to: VF.self)
        return p * scale
    }

    /// erf(x) and, because GELU's derivative needs it, e^{-x²}. Abramowitz & Stegun 7.1.26
    /// (absolute error ≤ 1.5e-7).
    @_transparent
    static func erfAndGauss(_ x: VF) -> (erf: VF, gauss: VF) {
        let ax = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (ax * 0.3275911 + 1)
        var p = VF(repeating: 1.061405429)
        p = p * t - 1.453152027
        p = p * t + 1.421413741
        p = p * t - 0.284496736
        p = p * t + 0.254829592
        p = p * t
        let g = exp(-(ax * ax))
        let e = 1 - p * g
        return (e.replacing(with: -e, where: x .< 0), g)
    }

    /// Scalar exact GELU (libm erf), for the tails of loops.
    @inline(__always)
    static func geluScalar(_ x: Float) -> Float {
        let xd = Double(x)
        return Float(0.5 * xd * (1 + erf(xd * 0.7071067811865476)))
    }

    @inline(__always)
    static func geluGradScalar(_ x: Float) -> Float {
        let xd = Double(x)
        let cdf = 0.5 * (1 + erf(xd * 0.7071067811865476))
        let pdf = Glibc.exp(-0.5 * xd * xd) * 0.3989422804014327
        return Float(cdf + xd * pdf)
    }
}

/// Σ over j < n of a row's values, in the same order on every build, so sums (and so trained models)
/// are bit-identical whatever instruction set runs: element j goes to running sum j mod 16 for each
/// whole block of 16 (`vec(j)` gives elements j..<j+W), the 16 sums are folded in one fixed tree,
/// then the elements past the last block are added one by one (`one(j)`). `vec` and `one` are
/// called once per element range, so they may also store.
@inline(__always)
func sum16(_ n: Int, _ vec: (Int) -> VF, _ one: (Int) -> Float) -> Float {
    var lo = VF(repeating: 0), j = 0
    #if BH_WIDE16
    while j + 16 <= n { lo += vec(j); j += 16 }
    var s = fold(lo.lowHalf + lo.highHalf)
    #else
    var hi = VF(repeating: 0)
    while j + 16 <= n { lo += vec(j); hi += vec(j + 8); j += 16 }
    var s = fold(lo + hi)
    #endif
    while j < n { s += one(j); j += 1 }
    return s
}

/// sum16's fixed tree over the 16 running sums (already paired into 8).
@inline(__always)
func fold(_ h: SIMD8<Float>) -> Float { let q = h.lowHalf + h.highHalf, e = q.lowHalf + q.highHalf; return e[0] + e[1] }

/// Σ_j e^{x[j] − m} over n in sum16's order, writing each term over x[j] when `write` (the softmax's
/// pass). A loop of its own rather than a closure passed to sum16, for the reason `whole16` gives.
@inline(__always)
func expSum16(_ x: UnsafeMutablePointer<Float>, _ n: Int, minus m: Float, write: Bool) -> Float {
    let mv = VF(repeating: m)
    var lo = VF(repeating: 0), j = 0
    #if BH_WIDE16
    while j + 16 <= n { let e = VMath.exp(load(x + j) - mv); if write { store(x + j, e) }; lo += e; j += 16 }
    var s = fold(lo.lowHalf + lo.highHalf)
    #else
    var hi = VF(repeating: 0)
    while j + 16 <= n {
        let e0 = VMath.exp(load(x + j) - mv), e1 = VMath.exp(load(x + j + 8) - mv)
        if write { store(x + j, e0); store(x + j + 8, e1) }
        lo += e0; hi += e1; j += 16
    }
    var s = fold(lo + hi)
    #endif
    while j < n { let e = expf(x[j] - m); if write { x[j] = e }; s += e; j += 1 }
    return s
}

/// The elements of n that whole blocks of 16 hold. An element-wise kernel runs its vector formula
/// over j < whole16(n), W at a time, and its scalar formula past it: the two may differ in the last
/// bit (an erf approximation against libm's), so every build takes the same elements the same way.
/// The loops are written out in each kernel: passed to a helper as a closure, a body with an exp or
/// an erf was compiled out of line, where Swift's calling convention splits a 16-lane vector into
/// four 4-lane ones (the cross-entropy ran at a third of its speed).
@inline(__always)
func whole16(_ n: Int) -> Int { n / 16 * 16 }

/// Two sums of `sum16`'s kind in one pass.
@inline(__always)
func sum16x2(_ n: Int, _ vec: (Int) -> (VF, VF), _ one: (Int) -> (Float, Float)) -> (Float, Float) {
    var a = VF(repeating: 0), b = a, j = 0
    #if BH_WIDE16
    while j + 16 <= n { let (x, y) = vec(j); a += x; b += y; j += 16 }
    var (s, t) = (fold(a.lowHalf + a.highHalf), fold(b.lowHalf + b.highHalf))
    #else
    var a2 = a, b2 = b
    while j + 16 <= n { let (x, y) = vec(j); a += x; b += y; let (x2, y2) = vec(j + 8); a2 += x2; b2 += y2; j += 16 }
    var (s, t) = (fold(a + a2), fold(b + b2))
    #endif
    while j < n { let (x, y) = one(j); s += x; t += y; j += 1 }
    return (s, t)
}

/// Σ a[e]·b[e] over n (`sum16`'s order).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    sum16(n, { load(a + $0) * load(b + $0) }, { a[$0] * b[$0] })
}

/// y[e] += alpha·x[e] over n.
@inline(__always)
func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let a = VF(repeating: alpha)
    var e = 0
    while e + W <= n { store(y + e, load(y + e) + a * load(x + e)); e += W }
    while e < n { y[e] += alpha * x[e]; e += 1 }
}

/// Σ x[j] over n (`sum16`'s order).
@inline(__always)
func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    sum16(n, { load(x + $0) }, { x[$0] })
}

/// (0, 1, …, W − 1): compared against a bound, the lanes of a vector that fall before it.
@inline(__always)
func laneIndices() -> VF {
    var v = VF(repeating: 0)
    for k in 0..<W { v[k] = Float(k) }
    return v
}

/// The largest lane, folded in halves (the stdlib's `max()` is a scalar loop with a branch per lane).
@inline(__always)
func maxLane(_ v: VF) -> Float {
    #if BH_WIDE16
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
    #else
    let a = v
    #endif
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
    let c = b.lowHalf.replacing(with: b.highHalf, where: b.highHalf .> b.lowHalf)
    return Swift.max(c[0], c[1])
}
