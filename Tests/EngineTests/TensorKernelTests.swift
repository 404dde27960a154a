import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Engine

@Suite struct TensorKernelTests {
    @Test func vectorGeluIsAccurate() {
        let n = 4000
        let xs = (0..<n).map { Float($0 - n / 2) * 0.005 }
        var pre = xs, h = [Float](repeating: 0, count: n), bias = [Float](repeating: 0, count: n)
        Kernels.biasGeluForward(h: &h, pre: &pre, bias: &bias, n: 1, width: n)
        var d = [Float](repeating: 2, count: n)
        Kernels.geluBackward(dpre: &d, dh: d, geluGrad: pre, count: n)
        for i in 0..<n {
            let x = Double(xs[i]), cdf = 0.5 * (1 + erf(x / 2.0.squareRoot()))
            #expect(abs(Double(h[i]) - x * cdf) < 3e-7 * max(1, abs(x)))
            #expect(abs(Double(d[i]) - 2 * (cdf + x * Glibc.exp(-x * x / 2) * 0.3989422804014327)) < 2e-6)
        }
    }
}

