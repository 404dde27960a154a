/// The paper sizes its data by binary search: the largest number of subjects (other counts fixed)
/// whose facts a model learns to a target accuracy within a fixed epoch budget. Accuracy is assumed
/// to fall as subjects grow; every probe is recorded.
public struct CapacitySearchSpec {
    public var minSubjects = 16
    public var maxSubjects = 4096
    public var targetAccuracy = 0.95
    /// Stop when the bracket [good, bad) is narrower than this fraction of `good` (or 1 subject).
    public var relativeTolerance = 0.05
    public var maxProbes = 12
    /// Print a line per probe to standard error (the search is one long call).
    public var printProgress = false

    public init() {}

    public init(_ r: inout JSONReader) throws(EngineError) {
        minSubjects = try r.int("min_subjects", default: minSubjects, min: 1, max: 10_000_000)
        maxSubjects = try r.int("max_subjects", default: maxSubjects, min: 1, max: 10_000_000)
        targetAccuracy = try r.double("target_accuracy", default: targetAccuracy, min: 0, max: 1, exclusiveMin: true)
        relativeTolerance = try r.double("relative_tolerance", default: relativeTolerance, min: 0, max: 1)
        maxProbes = try r.int("max_probes", default: maxProbes, min: 1, max: 64)
        printProgress = try r.bool("print_progress", default: printProgress)
        guard maxSubjects >= minSubjects else {
            throw .invalid("\(r.path): max_subjects = \(maxSubjects) is smaller than min_subjects = \(minSubjects)")
        }
    }

    public func toJSON() -> JSON {
        .object([
            ("min_subjects", .int(minSubjects)), ("max_subjects", .int(maxSubjects)),
            ("target_accuracy", .number(targetAccuracy)), ("relative_tolerance", .number(relativeTolerance)),
            ("max_probes", .int(maxProbes)), ("print_progress", .bool(printProgress)),
        ])
    }
}

public struct CapacityProbe {
    public let subjects: Int
    public let accuracy: Double
    public let passed: Bool
    public let details: JSON
}

public struct CapacitySearchResult {
    /// The largest subject count that reached the target, nil if even min_subjects did not.
    public var bestSubjects: Int?
    public var probes: [CapacityProbe] = []

    public func toJSON(spec: CapacitySearchSpec) -> JSON {
        .object([
            ("best_subjects", bestSubjects.map { .int($0) } ?? .null),
            ("spec", spec.toJSON()),
            ("probes", .array(probes.map {
                .object([("subjects", .int($0.subjects)), ("accuracy", .number($0.accuracy)),
                         ("passed", .bool($0.passed)), ("details", $0.details)])
            })),
        ])
    }
}

/// Runs the search; `probe(subjects)` trains a fresh model on that many subjects and returns its
/// fact accuracy (and any details to record).
public func capacitySearch(_ spec: CapacitySearchSpec,
                           probe: (Int) throws(EngineError) -> (accuracy: Double, details: JSON)) throws(EngineError) -> CapacitySearchResult {
    var result = CapacitySearchResult()
    func run(_ s: Int) throws(EngineError) -> Bool {
        if spec.printProgress { printError("capacity search: probe \(result.probes.count + 1): \(s) subjects ...") }
        let (acc, details) = try probe(s)
        let ok = acc >= spec.targetAccuracy
        if spec.printProgress { printError("capacity search: \(s) subjects -> accuracy \(acc) (\(ok ? "passed" : "failed"))") }
        result.probes.append(CapacityProbe(subjects: s, accuracy: acc, passed: ok, details: details))
        return ok
    }
    guard try run(spec.minSubjects) else { return result }
    var good = spec.minSubjects
    if spec.maxSubjects == good { result.bestSubjects = good; return result }
    if try run(spec.maxSubjects) { result.bestSubjects = spec.maxSubjects; return result }
    var bad = spec.maxSubjects
    while result.probes.count < spec.maxProbes {
        let width = bad - good
        if width <= 1 || Double(width) <= spec.relativeTolerance * Double(good) { break }
        // Bisect in log space: capacity questions span orders of magnitude.
        var mid = Int((Double(good) * Double(bad)).squareRoot().rounded())
        mid = min(max(mid, good + 1), bad - 1)
        if try run(mid) { good = mid } else { bad = mid }
    }
    result.bestSubjects = good
    return result
}

/// One line to standard error, flushed (progress of long single calls).
func printError(_ line: String) {
    fputs(line + "\n", stderr)
    fflush(stderr)
}

#if canImport(Glibc)
import Glibc
#endif
