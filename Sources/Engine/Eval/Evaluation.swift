/// Evaluation of a model on a dataset's evaluation groups (bh_evaluate, Model.evaluate): exact-match
/// accuracy, target probability and rank per group, with the spec, digests and versions.
public struct EvaluationSpec: DeclaredSpec {
    /// Empty: every evaluation group of the dataset.
    public var groups: [String] = []
    public var batchSize = 256

    public init() {}
    public static let specPath = "evaluation spec"
    public static let fields: [SpecField<EvaluationSpec>] = [.strings("groups", \.groups), .int("batch_size", \.batchSize, min: 1, max: 65536)]

    /// {"groups": [...] (default: every group of the dataset), "batch_size": 256}
    public init(json text: String, dataset: Dataset) throws(EngineError) {
        self = try EvaluationSpec(json: text)
        if groups.isEmpty { groups = dataset.evalGroups.map(\.name) }
    }
}

public enum Evaluation {
    /// Per-prompt results of one prompt set.
    public static func group(_ model: LanguageModel, _ set: PromptSet, batchSize: Int = 256) throws(EngineError) -> GroupResult {
        try evaluatePrompts(set, vocab: model.vocabSize, batchSize: batchSize) { (tk, rows, width, lengths, o) throws(EngineError) in
            try model.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }
    }

    /// The report of bh_evaluate.
    public static func run(_ model: LanguageModel, _ dataset: Dataset, spec: EvaluationSpec) throws(EngineError) -> JSON {
        try dataset.checkFits(vocabSize: model.vocabSize, what: "evaluation")
        let start = monotonicSeconds()
        var results: [(String, JSON)] = []
        for g in spec.groups { results.append((g, try group(model, try dataset.promptSet(g), batchSize: spec.batchSize).summary())) }
        return .object([
            ("spec", spec.toJSON()),
            ("groups", .object(results)),
            ("model", model.config.toJSON()),
            ("dataset_spec", dataset.spec.toJSON()),
            ("model_digest", .string(model.contentDigest)),
            // the weights' digest alone does not name what ran when an adapter runs beside them
            ("side_path_adapter_digest", AdapterSet.sidePathDigest(of: model).map { .string($0) } ?? .null),
            ("dataset_digest", .string(dataset.contentDigest())),
            ("seconds", .number(monotonicSeconds() - start)),
            ("library_version", .string(Version.string)),
        ])
    }
}
