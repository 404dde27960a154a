#if canImport(Glibc)
import Glibc
#endif

/// Learning rate by step: linear warm-up from lr/warmup to lr over `warmupSteps`, then cosine decay
/// from lr to `minLR` at `totalSteps`, constant `minLR` after.
///   step < warmup:          lr · (step + 1) / warmup
///   warmup ≤ step < total:  minLR + (lr − minLR) · ½(1 + cos(π · (step − warmup) / (total − warmup)))
///   step ≥ total:           minLR
/// (`step` counts from 0: the learning rate of the (step+1)-th update.)
public struct LRSchedule: Equatable, Sendable {
    public var lr: Double
    public var minLR: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(lr: Double, minLR: Double = 0, warmupSteps: Int = 0, totalSteps: Int) {
        self.lr = lr; self.minLR = minLR; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public static func constant(_ lr: Double) -> LRSchedule { LRSchedule(lr: lr, minLR: lr, warmupSteps: 0, totalSteps: 0) }

    public func validate(path: String = "schedule") throws(EngineError) {
        if !(lr >= 0) || !lr.isFinite { throw .invalid("\(path): lr = \(lr) must be a finite number ≥ 0") }
        if !(minLR >= 0) || minLR > lr { throw .invalid("\(path): min_lr = \(minLR) must be between 0 and lr = \(lr)") }
        if warmupSteps < 0 { throw .invalid("\(path): warmup_steps = \(warmupSteps) must be ≥ 0") }
        if totalSteps < 0 { throw .invalid("\(path): total_steps = \(totalSteps) must be ≥ 0") }
    }

    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return lr * Double(step + 1) / Double(warmupSteps) }
        if step >= totalSteps { return minLR }
        let progress = Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
        return minLR + 0.5 * (lr - minLR) * (1 + cos(Double.pi * progress))
    }
}
