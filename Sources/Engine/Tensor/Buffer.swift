#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// A fixed-size, 64-byte-aligned block of floats that owns its memory (freed on deinit).
/// Kernels work on `ptr` directly; nothing here reallocates after `init`.
public final class FloatBuffer {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        ptr = raw.bindMemory(to: Float.self, capacity: max(1, count))
        ptr.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(ptr).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: ptr, count: count) }

    public func zero() { ptr.update(repeating: 0, count: count) }

    public func toArray() -> [Float] { Array(buffer) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        ptr.update(from: other.ptr, count: count)
    }
}

/// Work split for the element-wise kernels: `chunks(n)` contiguous ranges of 0..<n, one per thread,
/// each body told its chunk index (for per-thread partial sums). Serial when n is below `grain`.
public enum Work {
    /// Number of chunks a loop of `n` items with at least `grain` items per chunk gets.
    @inline(__always)
    public static func chunkCount(_ n: Int, grain: Int) -> Int {
        max(1, min(Parallel.threads, n / max(1, grain)))
    }

    public static func chunks(_ n: Int, grain: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let c = chunkCount(n, grain: grain)
        if c <= 1 { body(0, 0..<n); return }
        let per = (n + c - 1) / c
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: c) { i in
                let lo = i * per, hi = min(n, lo + per)
                if lo < hi { body(i, lo..<hi) }
            }
        }
    }
}
