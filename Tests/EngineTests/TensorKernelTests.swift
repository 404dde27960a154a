import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Engine

@Suite struct TensorKernelTests {
    @Test func vectorExpIsAccurate() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let v = VMath.exp(F8((0..<8).map { x + Float($0) * 0.0013 }))
            for i in 0..<8 {
                let ref = Foundationless.exp(Double(x + Float(i) * 0.0013))
                worst = max(worst, Float(abs(Double(v[i]) - ref) / ref))
            }
            x += 0.37
        }
        #expect(worst < 3e-7)
    }

    @Test func vectorGeluIsAccurate() {
        let n = 4000
        let xs = (0..<n).map { Float($0 - n / 2) * 0.005 }
        var pre = xs, h = [Float](repeating: 0, count: n), bias = [Float](repeating: 0, count: n)
        Kernels.biasGeluForward(h: &h, pre: &pre, bias: &bias, n: 1, width: n)
        var d = [Float](repeating: 2, count: n)
        Kernels.geluBackward(dpre: &d, dh: d, geluGrad: pre, count: n)
        for i in 0..<n {
            #expect(abs(h[i] - VMath.geluScalar(xs[i])) < 3e-7 * max(1, abs(xs[i])))
            #expect(abs(d[i] - 2 * VMath.geluGradScalar(xs[i])) < 2e-6)
        }
    }
}

enum Foundationless { static func exp(_ x: Double) -> Double { Glibc.exp(x) } }
