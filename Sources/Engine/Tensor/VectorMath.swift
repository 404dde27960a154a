/// Vectorised exp and erf for the element-wise kernels (Glibc's scalar expf/erff would dominate the
/// softmax over a 5000-token vocabulary and the GELU over the MLP width).
public typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 { UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> F8 { UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
@inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: F8) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self) }

public enum VMath {
    /// e^x, Cephes-style: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e^r, 2^n from the
    /// exponent bits. Relative error ~1e-7 over [-87, 88]; inputs are clamped to that range.
    @inline(__always)
    public static func exp(_ x0: F8) -> F8 {
        // (comparisons + replacing inline; the stdlib's clamped/pointwiseMin and float→int SIMD
        // conversions are out-of-line calls, so they are avoided here)
        var x = x0.replacing(with: -87.0, where: x0 .< -87.0)
        x = x.replacing(with: 88.0, where: x .> 88.0)
        let magic = F8(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to the nearest integer
        let k = x * 1.44269504088896341 + magic
        let n = k - magic
        var r = x - n * 0.693359375
        r = r + n * 2.12194440e-4
        let r2 = r * r
        var p = F8(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r2 + r + 1
        // n as an integer sits in the low mantissa bits of k = n + 1.5·2^23
        let ni = unsafeBitCast(k, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127
        let scale = unsafeBitCast(ni &<< 23, to: F8.self)
        return p * scale
    }

    /// erf(x) and, because GELU's derivative needs it, e^{-x²}. Abramowitz & Stegun 7.1.26
    /// (absolute error ≤ 1.5e-7).
    @inline(__always)
    public static func erfAndGauss(_ x: F8) -> (erf: F8, gauss: F8) {
        let ax = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (ax * 0.3275911 + 1)
        var p = F8(repeating: 1.061405429)
        p = p * t - 1.453152027
        p = p * t + 1.421413741
        p = p * t - 0.284496736
        p = p * t + 0.254829592
        p = p * t
        let g = exp(-(ax * ax))
        let e = 1 - p * g
        return (e.replacing(with: -e, where: x .< 0), g)
    }

    /// Scalar exact GELU (Glibc erf), for the tails of loops and for tests.
    @inline(__always)
    public static func geluScalar(_ x: Float) -> Float {
        let xd = Double(x)
        return Float(0.5 * xd * (1 + erf(xd * 0.7071067811865476)))
    }

    @inline(__always)
    public static func geluGradScalar(_ x: Float) -> Float {
        let xd = Double(x)
        let cdf = 0.5 * (1 + erf(xd * 0.7071067811865476))
        let pdf = Glibc.exp(-0.5 * xd * xd) * 0.3989422804014327
        return Float(cdf + xd * pdf)
    }
}
#if canImport(Glibc)
import Glibc
#endif
