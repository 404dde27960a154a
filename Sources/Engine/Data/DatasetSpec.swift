/// What a dataset is made from: the official Behemoth generator's `args.json` keys (same names and
/// meanings) plus `seed` and `preset`, declared once in `fields`: decoding fills in defaults, checks every field
/// and rejects unknown keys; `toJSON()` echoes the full spec. docs/formats.md documents every key.
public struct DatasetSpec: DeclaredSpec, Equatable, Sendable {
    /// Named starting points; explicit keys override them.
    public enum Preset: String, Sendable, CaseIterable {
        case tiny, demo, paper

        /// (subjects, relationships, objects)
        public var counts: (Int, Int, Int) {
            switch self {
            case .tiny: return (64, 3, 8)
            case .demo: return (256, 4, 50)   // the main job: Pythia-31M shape learns it in about 2 minutes on 2 cores
            case .paper: return (100_000, 6, 400)
            }
        }
    }

    public enum PhraseCreator: String, Sendable, CaseIterable {
        case inverted, nonsense
    }

    public var preset: Preset = .paper
    public var subjects: Int = 100_000
    public var relationships: Int = 6
    public var objects: Int = 400
    public var repeats: Int = 1
    public var shuffle: Bool = true
    public var inversionFrac: Double = 0
    public var minorityPositionEntityFrac: Double = 0
    public var minorityPositionFrac: Double = 0.1
    public var phraseCreator: PhraseCreator = .inverted
    public var questionsEntityFrac: Double = 0.5
    public var questionsFrac: Double = 0
    public var correlatedPair: Bool = false
    public var correlationStrength: Double = 1.0
    public var binarizeFirstCorrelated: Bool = false
    public var numNestedObjects: Int = 0
    public var objNestedObjEdgesUpweight: Int = 1
    /// Fact indices (rows of the fact table) whose sentences are left out of the training text; the
    /// facts stay in the table and the evaluation groups (an unlearning oracle never sees them).
    public var excludeFacts: [Int] = []
    /// Intentional token collisions (Collisions.swift), applied in list order.
    public var collisions: [CollisionSpec] = []
    /// The collisions' own seed (nil: `seed`, through a separate random stream).
    public var collisionSeed: UInt64? = nil
    /// Sentence templates per relation (Templates.swift): 1 is the official grammar.
    public var templatesPerRelation = 1
    /// Of those, how many each relation holds out of training (evaluated as paraphrases).
    public var heldoutTemplates = 0
    /// Relative frequency of each training template (the official sentence first); empty: equal.
    public var templateWeights: [Double] = []
    /// Templates to choose from besides the official sentence; empty: the generated family.
    public var templates: [String] = []
    public var seed: UInt64 = 0

    public init() {}

    // MARK: limits

    /// The official generator's limit for two-token words (1000 first x 1000 second tokens).
    public static let maxSubjects = 1_000_000
    /// Relations, objects per relation and nested objects per relation must be one-token words.
    public static let maxSingleTokenGroup = 999
    /// Datasets larger than this are refused: epochs are the trainer's job, not `repeats`.
    public static let maxTokens = 500_000_000
    public static let maxRepeats = 1_000_000

    static let what = "dataset spec"
    public static var specPath: String { what }

    // MARK: fields

    /// Declared once: decode, echo and the docs table (docs/formats.md) all follow this list. The
    /// preset comes first: it sets the defaults of the three counts that follow.
    public static let fields: [SpecField<DatasetSpec>] = [
        SpecField("preset", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            let name = try r.string("preset", default: s.preset.rawValue, oneOf: Preset.allCases.map(\.rawValue))
            s.preset = Preset(rawValue: name)!
            (s.subjects, s.relationships, s.objects) = s.preset.counts
        }, write: { .string($0.preset.rawValue) }),
        count("subjects", \.subjects, max: maxSubjects, why: "the official generator's limit for two-token subject words"),
        count("relationships", \.relationships, max: maxSingleTokenGroup, why: "relations must be one-token words"),
        count("objects", \.objects, max: maxSingleTokenGroup,
              why: "objects must be one-token words so each evaluation prompt has one target token"),
        count("repeats", \.repeats, max: maxRepeats, why: "the largest supported repeat count"),
        .bool("shuffle", \.shuffle),
        .double("inversion_frac", \.inversionFrac, min: 0, max: 1),
        .double("minority_position_entity_frac", \.minorityPositionEntityFrac, min: 0, max: 1),
        .double("minority_position_frac", \.minorityPositionFrac, min: 0, max: 1),
        .choice("phrase_creator", \.phraseCreator),
        .double("questions_entity_frac", \.questionsEntityFrac, min: 0, max: 1),
        .double("questions_frac", \.questionsFrac, min: 0, max: 1000),
        .bool("correlated_pair", \.correlatedPair),
        .double("correlation_strength", \.correlationStrength, min: 0, max: 1),
        .bool("binarize_first_correlated", \.binarizeFirstCorrelated),
        .int("num_nested_objects", \.numNestedObjects, min: 0, max: maxSingleTokenGroup),
        .int("obj_nested_obj_edges_upweight", \.objNestedObjEdgesUpweight, min: 0, max: 1000),
        // Echoed only when set: every dataset generated before it existed keeps its spec and digest.
        SpecField("exclude_facts", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.excludeFacts = try r.intArray("exclude_facts", default: [], min: 0, max: Int(Int32.max))
        }, write: { $0.excludeFacts.isEmpty ? nil : .ints($0.excludeFacts) }),
        // Echoed only when set, like exclude_facts.
        CollisionSpec.listField("collisions"),
        SpecField("collision_seed", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.collisionSeed = try r.optionalInt("collision_seed", min: 0, max: 1 << 52).map { UInt64($0) }
        }, write: { $0.collisionSeed.map { .int(Int($0)) } }),
        // Templates (echoed only when set, like exclude_facts): checked together in validate().
        SpecField("templates_per_relation", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.templatesPerRelation = try r.int("templates_per_relation", default: 1, min: 1, max: 1000)
        }, write: { $0.templatesPerRelation == 1 ? nil : .int($0.templatesPerRelation) }),
        SpecField("heldout_templates", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.heldoutTemplates = try r.int("heldout_templates", default: 0, min: 0, max: 1000)
        }, write: { $0.heldoutTemplates == 0 ? nil : .int($0.heldoutTemplates) }),
        SpecField("template_weights", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.templateWeights = try readWeights(&r, "template_weights")
        }, write: { $0.templateWeights.isEmpty ? nil : .array($0.templateWeights.map { .number($0) }) }),
        SpecField("templates", read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            s.templates = try r.stringArray("templates", default: [])
        }, write: { $0.templates.isEmpty ? nil : .strings($0.templates) }),
        .seed("seed", \.seed, max: 1 << 52),
    ]

    /// A count of at least 1 whose upper limit says why.
    private static func count(_ key: String, _ p: WritableKeyPath<DatasetSpec, Int>, max hi: Int, why: String) -> SpecField<DatasetSpec> {
        SpecField(key, read: { (r: inout JSONReader, s: inout DatasetSpec) throws(EngineError) in
            let n = try r.int(key, default: s[keyPath: p])
            if n < 1 { throw .invalid("\(what): \(key) = \(n) must be at least 1") }
            if n > hi { throw .invalid("\(what): \(key) = \(n) is more than the \(hi) this generator supports (\(why))") }
            s[keyPath: p] = n
        }, write: { .int($0[keyPath: p]) })
    }

    /// An array of positive finite numbers.
    private static func readWeights(_ r: inout JSONReader, _ key: String) throws(EngineError) -> [Double] {
        guard let v = r.value(key) else { return [] }
        guard case let .array(items) = v else { throw .invalid("\(what): \(key) must be an array of numbers, got \(v.typeName)") }
        var out: [Double] = []
        for (i, item) in items.enumerated() {
            guard case let .number(x) = item else { throw .invalid("\(what): \(key)[\(i)] must be a number, got \(item.typeName)") }
            guard x.isFinite, x > 0 else { throw .invalid("\(what): \(key)[\(i)] = \(JSON.format(x)) must be a positive number (a relative frequency)") }
            out.append(x)
        }
        return out
    }

    /// Parses a JSON DatasetSpec ("" or "{}" gives the defaults: the `paper` preset).
    public static func parse(_ text: String) throws(EngineError) -> DatasetSpec { try DatasetSpec(json: text) }

    public static func parse(_ json: JSON) throws(EngineError) -> DatasetSpec {
        var r = try JSONReader(json, path: what)
        let s = try DatasetSpec(reading: &r)
        try r.finish()
        return s
    }

    /// Cross-field rules (the official generator's guards) and the size limits. Runs before any
    /// allocation, so absurd specs fail fast.
    public func validate() throws(EngineError) {
        let w = DatasetSpec.what
        if subjects < 1 || subjects > DatasetSpec.maxSubjects { throw .invalid("\(w): subjects = \(subjects) must be between 1 and \(DatasetSpec.maxSubjects)") }
        if relationships < 1 || relationships > DatasetSpec.maxSingleTokenGroup { throw .invalid("\(w): relationships = \(relationships) must be between 1 and 999") }
        if objects < 1 || objects > DatasetSpec.maxSingleTokenGroup { throw .invalid("\(w): objects = \(objects) must be between 1 and 999") }
        if repeats < 1 || repeats > DatasetSpec.maxRepeats { throw .invalid("\(w): repeats = \(repeats) must be between 1 and \(DatasetSpec.maxRepeats)") }
        if correlatedPair {
            if relationships < 2 { throw .invalid("\(w): correlated_pair needs at least 2 relationships, got \(relationships)") }
            if objects < 2 { throw .invalid("\(w): correlated_pair needs at least 2 objects per relationship, got \(objects)") }
            if minorityPositionEntityFrac > 0 {
                throw .invalid("\(w): correlated_pair cannot be combined with minority_position_entity_frac = \(JSON.format(minorityPositionEntityFrac)) (as in the official generator)")
            }
            if correlationStrength <= 1 / Double(objects) {
                throw .invalid("\(w): correlation_strength = \(JSON.format(correlationStrength)) must be greater than 1/objects = \(JSON.format(1 / Double(objects))) (the official generator's guard against an accidental anti-correlation)")
            }
            if binarizeFirstCorrelated && correlationStrength <= 0.5 {
                throw .invalid("\(w): correlation_strength = \(JSON.format(correlationStrength)) must be greater than 0.5 with binarize_first_correlated (the official generator's guard)")
            }
        } else if binarizeFirstCorrelated {
            throw .invalid("\(w): binarize_first_correlated = true needs correlated_pair = true")
        }
        if numNestedObjects > 0 {
            if objects % numNestedObjects != 0 {
                throw .invalid("\(w): objects = \(objects) must be a multiple of num_nested_objects = \(numNestedObjects)")
            }
            if minorityPositionEntityFrac > 0 {
                throw .invalid("\(w): minority_position_entity_frac > 0 is not supported with num_nested_objects > 0 (as in the official generator)")
            }
            if questionsFrac > 0 {
                throw .invalid("\(w): questions_frac > 0 is not supported with num_nested_objects > 0")
            }
        }
        if minorityPositionEntityFrac > 0 && objects < 2 {
            throw .invalid("\(w): minority_position_entity_frac > 0 needs at least 2 objects per relationship")
        }
        if questionsFrac > 0 && questionsEntityFrac <= 0 {
            throw .invalid("\(w): questions_frac = \(JSON.format(questionsFrac)) needs questions_entity_frac > 0")
        }
        if collisionSeed != nil && collisions.isEmpty {
            throw .invalid("\(w): collision_seed is set but collisions is empty; drop collision_seed or add collisions")
        }
        if !collisions.isEmpty && templatesPerRelation > 1 {
            throw .invalid("\(w): collisions and templates_per_relation > 1 are not supported together yet (the collision checks cover the official sentence's prompts only); use one or the other")
        }
        _ = try TemplatePlan.candidates(self)
        // Vocabulary: ids must fit the official 4-digit word scheme; collisions must be possible and unambiguous.
        _ = try VocabularyLayout.of(self)
        // Size: refuse before allocating.
        _ = try sizeBound()
    }

    /// Repeats of each question sentence: int(repeats / questions_entity_frac * questions_frac), as
    /// the official generator computes it.
    public var questionRepeats: Int {
        guard questionsFrac > 0, questionsEntityFrac > 0 else { return 0 }
        let q = (Double(repeats) / questionsEntityFrac * questionsFrac).rounded(.towardZero)
        return q < 1e15 ? Int(q) : Int(1e15)
    }

    /// Number of subjects that also get questions: int(questions_entity_frac * subjects).
    public var questionSubjectCount: Int {
        guard questionsFrac > 0 else { return 0 }
        return Int((questionsEntityFrac * Double(subjects)).rounded(.towardZero))
    }

    /// Upper bounds on (sentences, tokens), overflow-checked; throws if over `maxTokens`.
    public func sizeBound() throws(EngineError) -> (sentences: Int, tokens: Int) {
        let w = DatasetSpec.what
        let subjectWidth = subjects >= 1000 ? 2 : 1
        let edges = try checkedProduct([subjects, relationships], what: "\(w): subjects x relationships")
        var perEdgeSentences = repeats
        let nested = numNestedObjects > 0
        if nested { perEdgeSentences = try checkedProduct([repeats, 2], what: "\(w): repeats") }
        var sentences = try checkedProduct([edges, perEdgeSentences], what: "\(w): subjects x relationships x repeats")
        if nested {
            let ono = try checkedProduct([relationships, objects, objNestedObjEdgesUpweight, repeats], what: "\(w): object-nested sentences")
            sentences = try checkedAdd(sentences, ono, "\(w): sentence count")
        }
        if questionsFrac > 0 {
            let qr = questionRepeats
            let q = try checkedProduct([questionSubjectCount, relationships, qr], what: "\(w): question sentences")
            sentences = try checkedAdd(sentences, q, "\(w): sentence count")
        }
        var perSentence: Int
        switch phraseCreator {
        case .inverted: perSentence = 10 + subjectWidth
        case .nonsense: perSentence = 23 + subjectWidth
        }
        // Several templates: the longest one a sentence may use; each fact gets a prompt for each.
        let pool = try TemplatePlan.candidates(self)
        for t in pool { perSentence = max(perSentence, t.sentenceLength(headWidth: subjectWidth)) }
        let qa = 12 + subjectWidth
        let tokens = try checkedProduct([sentences, max(perSentence, questionsFrac > 0 ? qa : 0)], what: "\(w): token count")
        if tokens > DatasetSpec.maxTokens {
            throw .invalid("\(w): this dataset would have up to \(tokens) tokens (\(sentences) sentences), more than the \(DatasetSpec.maxTokens) a dataset may hold; lower repeats (epochs are the trainer's job) or the counts")
        }
        // Priced before generating: tokens, sentence offsets and facts, the fact table (4 int32 and
        // an index per edge), and the evaluation prompts (about 16 tokens, 3 ints, per edge and group,
        // with a group per extra template).
        try MemoryBudget.check(MemoryBudget.total([[tokens, 4], [sentences, 12], [edges, 4 * 5], [edges, 4 + templatesPerRelation - 1, 4 * 19]]),
                               "\(w): \(subjects) subjects × \(relationships) relations (\(tokens) tokens)")
        return (sentences, tokens)
    }
}

func checkedAdd(_ a: Int, _ b: Int, _ what: String) throws(EngineError) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    if o { throw .invalid("\(what) overflows") }
    return r
}
