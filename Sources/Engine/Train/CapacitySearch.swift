/// The paper sizes its data by binary search: the largest number of subjects (other counts fixed)
/// whose facts a model learns to a target accuracy within a fixed epoch budget. Accuracy is assumed
/// to fall as subjects grow; every probe is recorded.
public struct CapacitySearchSpec: DeclaredSpec {
    public var minSubjects = 16
    public var maxSubjects = 4096
    public var targetAccuracy = 0.95
    /// Stop when the bracket [good, bad) is narrower than this fraction of `good` (or 1 subject).
    public var relativeTolerance = 0.05
    public var maxProbes = 12
    /// Print a line per probe to standard error (the search is one long call).
    public var printProgress = false

    public init() {}

    public static let specPath = "capacity search spec.search"
    public static let fields: [SpecField<CapacitySearchSpec>] = [
        .int("min_subjects", \.minSubjects, min: 1, max: 10_000_000),
        .int("max_subjects", \.maxSubjects, min: 1, max: 10_000_000),
        .double("target_accuracy", \.targetAccuracy, min: 0, max: 1, exclusiveMin: true),
        .double("relative_tolerance", \.relativeTolerance, min: 0, max: 1),
        .int("max_probes", \.maxProbes, min: 1, max: 64),
        .bool("print_progress", \.printProgress),
    ]

    public func validate() throws(EngineError) {
        guard maxSubjects >= minSubjects else {
            throw .invalid("\(CapacitySearchSpec.specPath): max_subjects = \(maxSubjects) is smaller than min_subjects = \(minSubjects)")
        }
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

/// The whole search as bh_capacity_search runs it: {"dataset": spec, "model": config, "training":
/// spec, "search": CapacitySearchSpec}. Every probe generates the dataset with that many subjects,
/// trains a new model on it and measures fact accuracy ("sro").
public struct CapacitySearchRun {
    public let dataset: JSON
    public let model: JSON
    public let training: TrainSpec
    public let search: CapacitySearchSpec

    /// Reads and checks every part before the first (long) probe.
    public init(json text: String) throws(EngineError) {
        var r = try JSONReader(text: text, path: "capacity search spec")
        dataset = r.value("dataset") ?? .object([])
        model = r.value("model") ?? .object([])
        let trainJSON = r.value("training") ?? .object([])
        var searchReader = try r.object("search")
        search = try CapacitySearchSpec(reading: &searchReader)
        try searchReader.finish()
        try r.finish()
        training = try TrainSpec(json: trainJSON.serialized())
        let base = try Dataset.generate(specJSON: try datasetSpec(subjects: search.minSubjects).serialized())
        _ = try ModelConfig.forDataset(json: model.serialized(), dataset: base, what: "capacity search spec: model")
    }

    /// The dataset spec with its subject count replaced.
    func datasetSpec(subjects n: Int) throws(EngineError) -> JSON {
        guard case var .object(fields) = dataset else { throw .invalid("capacity search spec: dataset must be an object") }
        fields.removeAll { $0.0 == "subjects" }
        fields.append(("subjects", .int(n)))
        return .object(fields)
    }

    /// One probe: a new model trained on `subjects` subjects; its fact accuracy and details.
    public func probe(subjects: Int) throws(EngineError) -> (accuracy: Double, details: JSON) {
        let t0 = monotonicSeconds()
        let ds = try Dataset.generate(specJSON: try datasetSpec(subjects: subjects).serialized())
        let m = try LanguageModel(config: try ModelConfig.forDataset(json: model.serialized(), dataset: ds, what: "capacity search spec: model"))
        var spec = training
        spec.evalGroups = ["sro"]
        let session = try TrainingSession(model: m, dataset: ds, spec: spec)
        try session.run()
        let accuracy = try Evaluation.group(m, try ds.promptSet("sro")).accuracy
        return (accuracy, .object([("facts", .int(ds.numFacts)), ("vocab_size", .int(ds.vocabSize)),
                                   ("steps", .int(session.trainer.stepsTaken)), ("seconds", .number(monotonicSeconds() - t0))]))
    }

    /// Runs the search; the report holds every probe and the specs.
    public func run() throws(EngineError) -> JSON {
        let start = monotonicSeconds()
        let result = try capacitySearch(search) { (subjects: Int) throws(EngineError) in try probe(subjects: subjects) }
        guard case var .object(fields) = result.toJSON(spec: search) else { return result.toJSON(spec: search) }
        fields += [("dataset", dataset), ("model", model), ("training", training.toJSON()),
                   ("seconds", .number(monotonicSeconds() - start)), ("library_version", .string(Version.string))]
        return .object(fields)
    }
}
