#if canImport(Glibc)
import Glibc
#endif

/// Prompts with one target token each: an evaluation group of a dataset or a group of an edit set
/// (the one prompt-group type). Prompt i is prompts[offsets[i]..<offsets[i+1]].
public struct PromptSet: Equatable, Sendable {
    public var name: String
    public var prompts: [Int32]      // flat prompt tokens
    public var offsets: [Int64]      // count + 1
    public var targets: [Int32]      // one target token per prompt
    public var facts: [Int32]        // fact index per prompt (-1 if none)
    public var relations: [Int32]    // relation per prompt, for per-relation accuracy (-1 if none)
    /// An alternative token per prompt whose probability is also recorded (CounterFact-style
    /// comparisons: the old object of an edited fact, the new object for its neighbours).
    public var alternatives: [Int32]? = nil
    /// The object tokens of each prompt's relation (unlearn sets): the evaluation then also records
    /// the probability mass on them and the truth ratio over them.
    public var objectRanges: [Range<Int32>]? = nil

    public var count: Int { targets.count }

    public init(name: String, prompts: [Int32], offsets: [Int64], targets: [Int32], facts: [Int32]? = nil, relations: [Int32]? = nil) {
        self.name = name
        self.prompts = prompts
        self.offsets = offsets
        self.targets = targets
        self.facts = facts ?? [Int32](repeating: -1, count: targets.count)
        self.relations = relations ?? [Int32](repeating: -1, count: targets.count)
    }

    public func length(_ i: Int) -> Int { Int(offsets[i + 1] - offsets[i]) }

    /// The prompts whose fact is not in `facts` (the same set when none is).
    public func leavingOut(facts left: Set<Int32>) -> PromptSet {
        if left.isEmpty || !self.facts.contains(where: { left.contains($0) }) { return self }
        var out = PromptSet(name: name, prompts: [], offsets: [0], targets: [], facts: [], relations: [])
        if alternatives != nil { out.alternatives = [] }
        if objectRanges != nil { out.objectRanges = [] }
        for i in 0..<count where !left.contains(self.facts[i]) {
            out.prompts += prompt(i)
            out.offsets.append(Int64(out.prompts.count))
            out.targets.append(targets[i]); out.facts.append(self.facts[i]); out.relations.append(relations[i])
            out.alternatives?.append(alternatives![i])
            out.objectRanges?.append(objectRanges![i])
        }
        return out
    }
    public func prompt(_ i: Int) -> ArraySlice<Int32> { prompts[Int(offsets[i])..<Int(offsets[i + 1])] }
}

/// Exact results for one group: per-prompt prediction, correctness, target probability and rank.
public struct GroupResult {
    public let name: String
    public var predicted: [Int32] = []
    public var correct: [UInt8] = []
    public var targetProbability: [Float] = []
    public var targetRank: [Int32] = []   // 1 = the target is the argmax
    public var relations: [Int32] = []
    public var alternativeProbability: [Float] = []
    /// With objectRanges: Σ p over the relation's objects, and the log of the truth ratio
    /// log R = mean_{o ≠ target} log p_o − log p_target over them (TOFU's R with the relation's other
    /// objects as perturbations, averaged in log space; kept as a log so it cannot overflow).
    public var relationMass: [Float] = []
    public var logTruthRatio: [Float] = []

    public var count: Int { correct.count }
    public var accuracy: Double { count == 0 ? 0 : Double(correct.reduce(0) { $0 + Int($1) }) / Double(count) }
    public var meanProbability: Double { count == 0 ? 0 : targetProbability.reduce(0.0) { $0 + Double($1) } / Double(count) }
    public var meanRank: Double { count == 0 ? 0 : targetRank.reduce(0.0) { $0 + Double($1) } / Double(count) }

    public func perRelation() -> [(relation: Int, count: Int, accuracy: Double)] {
        var n: [Int: Int] = [:], c: [Int: Int] = [:]
        for i in 0..<count where relations[i] >= 0 {
            n[Int(relations[i]), default: 0] += 1
            c[Int(relations[i]), default: 0] += Int(correct[i])
        }
        return n.keys.sorted().map { ($0, n[$0]!, Double(c[$0]!) / Double(n[$0]!)) }
    }

    public func summary() -> JSON {
        var fields: [(String, JSON)] = [
            ("count", .int(count)),
            ("accuracy", .number(accuracy)),
            ("mean_target_probability", .number(meanProbability)),
            ("mean_target_rank", .number(meanRank)),
        ]
        let per = perRelation()
        if !per.isEmpty {
            fields.append(("per_relation", .array(per.map {
                .object([("relation", .int($0.relation)), ("count", .int($0.count)), ("accuracy", .number($0.accuracy))])
            })))
        }
        return .object(fields)
    }
}

/// Evaluates a prompt set in batches. `logitsAtLast` runs the model on `rows` right-padded prompts
/// ([rows, width] tokens) and writes the logits at each prompt's last position ([rows, vocab]).
/// Right padding keeps positions exact: causal attention never looks at the padding.
public func evaluatePrompts(
    _ set: PromptSet, vocab: Int, batchSize: Int, padToken: Int32 = 1,
    logitsAtLast: (_ tokens: UnsafePointer<Int32>, _ rows: Int, _ width: Int, _ lengths: [Int], _ out: UnsafeMutablePointer<Float>) throws(EngineError) -> Void
) throws(EngineError) -> GroupResult {
    var result = GroupResult(name: set.name)
    result.relations = set.relations
    let n = set.count
    result.predicted.reserveCapacity(n)
    result.correct.reserveCapacity(n)
    result.targetProbability.reserveCapacity(n)
    result.targetRank.reserveCapacity(n)
    guard n > 0 else { return result }
    var width = 0
    for i in 0..<n { width = max(width, set.length(i)) }
    let b = max(1, batchSize)
    var tokens = [Int32](repeating: padToken, count: b * width)
    var logits = [Float](repeating: 0, count: b * vocab)
    var start = 0
    while start < n {
        let rows = min(b, n - start)
        var lengths: [Int] = []
        for r in 0..<rows {
            let i = start + r, lo = Int(set.offsets[i]), len = set.length(i)
            lengths.append(len)
            for t in 0..<width { tokens[r * width + t] = t < len ? set.prompts[lo + t] : padToken }
        }
        try tokens.withUnsafeBufferPointer { (tk: UnsafeBufferPointer<Int32>) throws(EngineError) in
            try logits.withUnsafeMutableBufferPointer { (lg: inout UnsafeMutableBufferPointer<Float>) throws(EngineError) in
                try logitsAtLast(tk.baseAddress!, rows, width, lengths, lg.baseAddress!)
            }
        }
        for r in 0..<rows {
            let row = logits[(r * vocab)..<((r + 1) * vocab)]
            let target = Int(set.targets[start + r])
            var best = 0, bestValue = -Float.infinity, maxValue = -Float.infinity
            for (j, v) in row.enumerated() {
                if v > bestValue { bestValue = v; best = j }
            }
            maxValue = bestValue
            var sum: Double = 0
            var above: Int32 = 0
            let tv = (target >= 0 && target < vocab) ? row[row.startIndex + target] : -Float.infinity
            for v in row {
                sum += Double(expf(v - maxValue))
                if v > tv { above += 1 }
            }
            result.predicted.append(Int32(best))
            result.correct.append(best == target ? 1 : 0)
            result.targetProbability.append(tv.isFinite ? Float(Double(expf(tv - maxValue)) / sum) : 0)
            result.targetRank.append(above + 1)
            if let ranges = set.objectRanges {
                // log p_j = v_j − max − log Σ, in float64
                let logSum = log(sum), range = ranges[start + r]
                var mass = 0.0, altLog = 0.0, alts = 0
                for j in range where j >= 0 && Int(j) < vocab {
                    let lp = Double(row[row.startIndex + Int(j)] - maxValue) - logSum
                    mass += exp(lp)
                    if Int(j) != target { altLog += lp; alts += 1 }
                }
                let targetLog = tv.isFinite ? Double(tv - maxValue) - logSum : -Double.infinity
                result.relationMass.append(Float(mass))
                result.logTruthRatio.append(alts > 0 ? Float(max(-1e30, min(1e30, altLog / Double(alts) - targetLog))) : .nan)
            }
            if let alts = set.alternatives {
                let a = Int(alts[start + r])
                let av = (a >= 0 && a < vocab) ? row[row.startIndex + a] : -Float.infinity
                result.alternativeProbability.append(av.isFinite ? Float(Double(expf(av - maxValue)) / sum) : 0)
            }
        }
        start += rows
    }
    return result
}
