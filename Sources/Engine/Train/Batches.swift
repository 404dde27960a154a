/// Batches of training sequences for next-token training. Each epoch visits every sequence once in
/// a seeded order (RNG stream "epoch <e>"), so a position (epoch, batch index) names a batch exactly
/// and a resumed run sees the same batches as an uninterrupted one.
public struct SequenceBatcher {
    public let tokens: [Int32]
    public let offsets: [Int64]
    public let batchSize: Int
    /// Columns of a batch: the longest sequence (inputs are the sequence without its last token).
    public let width: Int
    public let seed: UInt64
    public let padToken: Int32

    public var sequenceCount: Int { offsets.count - 1 }
    public var batchesPerEpoch: Int { (sequenceCount + batchSize - 1) / batchSize }

    private var orderEpoch = -1
    private var order: [Int] = []

    public init(tokens: [Int32], offsets: [Int64], batchSize: Int, seed: UInt64, padToken: Int32 = 1, maxWidth: Int) throws(EngineError) {
        guard offsets.count >= 2 else { throw .invalid("training data: the dataset has no sequences") }
        guard batchSize >= 1 else { throw .invalid("training spec: batch_size = \(batchSize) must be at least 1") }
        var longest = 0
        for i in 0..<(offsets.count - 1) {
            let n = Int(offsets[i + 1] - offsets[i])
            guard n >= 2 else { throw .invalid("training data: sequence \(i) has \(n) tokens; at least 2 are needed") }
            longest = max(longest, n - 1)
        }
        guard longest <= maxWidth else {
            throw .invalid("training data: the longest sequence needs \(longest) positions but the model has max_positions = \(maxWidth)")
        }
        self.tokens = tokens
        self.offsets = offsets
        self.batchSize = batchSize
        self.width = longest
        self.seed = seed
        self.padToken = padToken
    }

    private mutating func prepare(epoch: Int) {
        if orderEpoch == epoch { return }
        order = Array(0..<sequenceCount)
        var rng = RNG(seed: seed, stream: "epoch \(epoch)")
        rng.shuffle(&order)
        orderEpoch = epoch
    }

    /// Fills `inputs` and `targets` ([rows, width], row-major) for batch `index` of `epoch`; padding
    /// positions get the pad token as input and -1 as target (ignored by the loss). Returns rows used.
    @discardableResult
    public mutating func fill(epoch: Int, index: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) -> Int {
        prepare(epoch: epoch)
        let start = index * batchSize
        let rows = min(batchSize, sequenceCount - start)
        for r in 0..<rows {
            let s = order[start + r]
            let lo = Int(offsets[s]), n = Int(offsets[s + 1]) - lo
            let inRow = inputs + r * width, tRow = targets + r * width
            for t in 0..<width {
                if t < n - 1 {
                    inRow[t] = tokens[lo + t]
                    tRow[t] = tokens[lo + t + 1]
                } else {
                    inRow[t] = padToken
                    tRow[t] = -1
                }
            }
        }
        return rows
    }
}
