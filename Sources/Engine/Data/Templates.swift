/// Several sentence templates per relation (dataset spec `templates_per_relation`,
/// `heldout_templates`, `template_weights`, `templates`): more than one way to state a fact, some
/// of them held out of training, so an edit can be tested on phrasings of the edited fact the
/// model never read for that fact (CounterFact's paraphrase prompts).
///
/// A template is a line of token names and three slots, e.g. `SS {s} W0 W1 RR {r} W2 OO {o}`:
/// the markers SS RR OO QQ AA, the grammar words W0–W999 and WQ1–WQ4, and the slots {s} (the head
/// word: a subject, or an object for object→nested facts), {r} (the relation word) and {o} (the
/// object). A sentence is the template filled in, then "." and EOS. A template is *evaluable* when
/// {s} and {r} both come before {o}: its words before {o} are then a prompt whose next token is
/// the object. Only evaluable templates can be held out; the others are training-only.
public struct Template: Equatable, Sendable {
    public enum Item: Equatable, Sendable { case head, relation, object, word(String) }
    public let items: [Item]
    /// Its items up to and including the object: what a held-out prompt and its answer are.
    let statement: [Item]

    /// A template from a known-good constant (the official sentence and the generated family).
    init(_ text: String) {
        items = text.split(separator: " ").map { piece in
            switch piece {
            case "{s}": return .head
            case "{r}": return .relation
            case "{o}": return .object
            default: return .word(String(piece))
            }
        }
        statement = Array(items.prefix { $0 != .object }) + [.object]
    }

    /// A caller's template: every token name known, each slot exactly once.
    public init(parsing text: String, what: String) throws(EngineError) {
        self.init(text)
        if items.isEmpty { throw .invalid("\(what) is empty; write e.g. \"SS {s} W0 W1 RR {r} W2 OO {o}\"") }
        for case let .word(name) in items where !Template.isTokenName(name) {
            throw .invalid("\(what): \"\(name)\" is not a token name; use SS, RR, OO, QQ, AA, W0–W999, WQ1–WQ4 and the slots {s}, {r}, {o}, separated by spaces (\".\" and EOS are added)")
        }
        for (slot, item) in [("{s}", Item.head), ("{r}", .relation), ("{o}", .object)] {
            let n = items.filter { $0 == item }.count
            if n == 0 { throw .invalid("\(what) has no \(slot) slot; every template names the head {s}, the relation {r} and the object {o} once") }
            if n > 1 { throw .invalid("\(what) has the \(slot) slot \(n) times; each slot appears exactly once") }
        }
    }

    /// Limits on a spec's `templates`: how many, and tokens and slots in each.
    static let maxCount = 1000, maxLength = 64

    static func isTokenName(_ name: String) -> Bool {
        if ["SS", "RR", "OO", "QQ", "AA"].contains(name) { return true }
        for (prefix, range) in [("WQ", 1...4), ("W", 0...999)] where name.hasPrefix(prefix) {
            let digits = String(name.dropFirst(prefix.count))
            if let n = Int(digits), String(n) == digits, range.contains(n) { return true }
        }
        return false
    }

    /// The template as its spec writes it.
    public var text: String {
        items.map {
            switch $0 {
            case .head: return "{s}"
            case .relation: return "{r}"
            case .object: return "{o}"
            case .word(let w): return w
            }
        }.joined(separator: " ")
    }

    /// {s} and {r} before {o}: the words before the object are an evaluation prompt.
    public var isEvaluable: Bool {
        guard let o = items.firstIndex(of: .object) else { return false }
        return items[..<o].contains(.head) && items[..<o].contains(.relation)
    }

    /// Whether a sentence of `other` holds this template's statement (so, were this one held out,
    /// the model would still read its prompts and answers inside `other`'s sentences).
    func leaks(into other: Template) -> Bool {
        let s = statement, o = other.items
        guard o.count >= s.count, other != self else { return false }
        return (0...(o.count - s.count)).contains { start in s.indices.allSatisfy { o[start + $0] == s[$0] } }
    }

    /// Tokens of one sentence: every item (the head `headWidth` tokens), then "." and EOS.
    func sentenceLength(headWidth: Int) -> Int { items.count + headWidth - 1 + 2 }

    /// Token ids, with the slots as the negative codes `Template.head`, `.relation`, `.object`.
    func resolved(_ layout: VocabularyLayout) -> [Int32] {
        items.map {
            switch $0 {
            case .head: return Template.headCode
            case .relation: return Template.relationCode
            case .object: return Template.objectCode
            case .word(let w): return Template.tokenID(w, layout)
            }
        }
    }
    static let headCode: Int32 = -1, relationCode: Int32 = -2, objectCode: Int32 = -3

    /// Appends a resolved template filled in, up to (not including) the object slot when `object` is nil.
    static func fill(_ out: inout [Int32], _ resolved: [Int32], head: Head, relation r: Int32, object o: Int32?) {
        for x in resolved {
            switch x {
            case headCode: out += head
            case relationCode: out.append(r)
            case objectCode:
                guard let o else { return }
                out.append(o)
            default: out.append(x)
            }
        }
    }

    static func tokenID(_ name: String, _ layout: VocabularyLayout) -> Int32 {
        switch name {
        case "SS": return Vocabulary.ss
        case "RR": return Vocabulary.rr
        case "OO": return Vocabulary.oo
        case "QQ": return Vocabulary.qq
        case "AA": return Vocabulary.aa
        default:
            if name.hasPrefix("WQ") { return layout.wq(Int(name.dropFirst(2)) ?? 1) }
            return layout.w(Int(name.dropFirst(1)) ?? 0)
        }
    }

    // MARK: the official sentence and the generated family

    /// The official generator's sentence: every relation's first training template.
    public static let official = Template("SS {s} W0 W1 RR {r} W2 OO {o}")

    /// The generated family, used when the spec lists no `templates`: 7 shapes × 4 word sets, less
    /// the official sentence (27 templates, 19 of them evaluable). Shapes: the official SRO, RSO,
    /// SOR and OSR orders (SOR and OSR put the object before the relation or subject: training
    /// only), the official question form, and SRO with a filler clause after the subject or before
    /// the relation. No template's words up to its object lie inside another (see `leaks`).
    /// Word set 0 uses the official words; sets 1–3 replace every W0–W10 and WQ1–WQ4 by a synonym
    /// (W11–W55, 15 per set) and use their own filler words (W60–W79).
    public static let family: [Template] = {
        let shapes = ["SS {s} W0 W1 RR {r} W2 OO {o}", "W9 RR {r} W7 SS {s} W5 OO {o}",
                      "SS {s} W0 OO {o} W3 W4 RR {r}", "OO {o} W5 SS {s} W8 RR {r}",
                      "QQ WQ1 RR {r} WQ2 SS {s} WQ3 WQ4 AA OO {o}",
                      "SS {s} F1 F2 F3 W0 W1 RR {r} W2 OO {o}", "SS {s} W0 W1 F4 F5 RR {r} W2 OO {o}"]
        var out: [Template] = []
        for shape in shapes {
            for set in 0..<4 {
                let words = shape.split(separator: " ").map { synonym(String($0), set: set) }
                let t = Template(words.joined(separator: " "))
                if t != official { out.append(t) }
            }
        }
        return out
    }()

    /// Word `name` in word set `set`: set 0 keeps the official word; sets 1–3 map W0–W10 and
    /// WQ1–WQ4 (15 words) to W11–W55 and the filler words F1–F5 to W60–W79.
    static func synonym(_ name: String, set: Int) -> String {
        if name.hasPrefix("F"), let k = Int(name.dropFirst()) { return "W\(60 + 5 * set + k - 1)" }
        guard set > 0 else { return name }
        let g: Int
        if name.hasPrefix("WQ"), let q = Int(name.dropFirst(2)) { g = 10 + q }
        else if name.hasPrefix("W"), let w = Int(name.dropFirst()) { g = w }
        else { return name }
        return "W\(11 + 15 * (set - 1) + g)"
    }
}

/// Which templates each relation uses, drawn once per dataset from its seed (stream "templates"),
/// and how often each training template is chosen for a sentence (stream "template choice").
public struct TemplatePlan: Sendable {
    /// pool[0] is the official sentence; then the spec's `templates`, or the generated family.
    public let pool: [Template]
    /// Per relation of the dataset's relation table: pool indices, the official sentence first.
    public let training: [[Int]]
    /// Per relation: pool indices of its held-out (evaluable) templates.
    public let heldout: [[Int]]
    /// Cumulative weights over a relation's training templates, in `training` order.
    let cumulative: [Double]

    static let what = DatasetSpec.what

    /// The plan of a spec (nil for one template per relation: the official grammar, unchanged).
    public static func make(_ spec: DatasetSpec, relations: Int) throws(EngineError) -> TemplatePlan? {
        guard spec.templatesPerRelation > 1 else { return nil }
        let pool = try candidates(spec)
        var rng = RNG(seed: spec.seed, stream: "templates")
        var training: [[Int]] = [], heldout: [[Int]] = []
        let h = spec.heldoutTemplates, t = spec.templatesPerRelation - h
        for _ in 0..<relations {
            var order = Array(1..<pool.count)
            rng.shuffle(&order)
            let held = Array(order.filter { pool[$0].isEvaluable }.prefix(h)), heldSet = Set(held)
            let trained = [0] + order.filter { !heldSet.contains($0) }.prefix(t - 1)
            training.append(trained)
            heldout.append(held)
        }
        let weights = spec.templateWeights.isEmpty ? [Double](repeating: 1, count: t) : spec.templateWeights
        var sum = 0.0
        let cumulative = weights.map { sum += $0; return sum }
        return TemplatePlan(pool: pool, training: training, heldout: heldout, cumulative: cumulative.map { $0 / sum })
    }

    /// The official sentence and the templates a spec may choose from, after the cross-field checks.
    static func candidates(_ spec: DatasetSpec) throws(EngineError) -> [Template] {
        let w = what, n = spec.templatesPerRelation, h = spec.heldoutTemplates
        if n == 1 {
            if h > 0 || !spec.templates.isEmpty || !spec.templateWeights.isEmpty {
                throw .invalid("\(w): heldout_templates, templates and template_weights need templates_per_relation > 1 (it is 1: every sentence uses the official template)")
            }
            return [Template.official]
        }
        guard spec.phraseCreator == .inverted, spec.inversionFrac == 0 else {
            throw .invalid("\(w): templates_per_relation = \(n) replaces the grammar's own variations; use it with phrase_creator \"inverted\" and inversion_frac 0 (put other orders in `templates`)")
        }
        guard h < n else {
            throw .invalid("\(w): heldout_templates = \(h) must be less than templates_per_relation = \(n) (each relation keeps the official sentence and at least it for training)")
        }
        var pool = [Template.official]
        if spec.templates.isEmpty {
            pool += Template.family
        } else {
            // Bounds that keep the checks below (every pair of templates) quick.
            guard spec.templates.count <= Template.maxCount else {
                throw .invalid("\(w): templates lists \(spec.templates.count) templates; at most \(Template.maxCount) are supported")
            }
            for (i, text) in spec.templates.enumerated() {
                let t = try Template(parsing: text, what: "\(w): templates[\(i)] \"\(text.prefix(80))\"")
                guard t.items.count <= Template.maxLength else {
                    throw .invalid("\(w): templates[\(i)] has \(t.items.count) tokens and slots; at most \(Template.maxLength) are supported")
                }
                if let j = pool.firstIndex(of: t) {
                    throw .invalid("\(w): templates[\(i)] \"\(text)\" repeats \(j == 0 ? "the official sentence, which every relation already trains on" : "templates[\(j - 1)]")")
                }
                pool.append(t)
            }
        }
        // A template that could be held out must not be trained inside another.
        func name(_ i: Int) -> String { i == 0 ? "the official sentence" : spec.templates.isEmpty ? "family template \"\(pool[i].text)\"" : "templates[\(i - 1)]" }
        for (i, a) in pool.enumerated().dropFirst() where a.isEvaluable {
            if let j = pool.indices.first(where: { (pool[$0].isEvaluable && pool[$0].leaks(into: a)) || a.leaks(into: pool[$0]) }) {
                let (inner, outer) = a.leaks(into: pool[j]) ? (i, j) : (j, i)
                throw .invalid("\(w): \(outer == 0 ? "the official sentence" : "templates[\(outer - 1)] \"\(pool[outer].text)\"") holds \(name(inner))'s words up to its object, so that prompt and answer would be trained inside it whichever is held out; make the two differ there")
            }
        }
        let source = spec.templates.isEmpty ? "the generated family has" : "templates lists"
        guard pool.count >= n else {
            throw .invalid("\(w): templates_per_relation = \(n) but \(source) only \(pool.count - 1) templates besides the official sentence (at most \(pool.count) per relation)")
        }
        let evaluable = pool.dropFirst().filter(\.isEvaluable).count
        guard evaluable >= h else {
            throw .invalid("\(w): heldout_templates = \(h) but \(source) only \(evaluable) evaluable templates ({s} and {r} before {o}), which held-out templates must be")
        }
        if !spec.templateWeights.isEmpty && spec.templateWeights.count != n - h {
            throw .invalid("\(w): template_weights has \(spec.templateWeights.count) weights but each relation has \(n - h) training templates (templates_per_relation − heldout_templates)")
        }
        return pool
    }

    /// A training template for one sentence: an index into `training[r]`.
    func pick(_ rng: inout RNG) -> Int {
        let u = rng.uniform()
        return cumulative.firstIndex { u < $0 } ?? cumulative.count - 1
    }

    /// Each relation's templates as text (the dataset's info lists them).
    func infoJSON(_ relations: [Relation]) -> JSON {
        .array(relations.indices.map { r in
            .object([("relation", .string(relations[r].name)),
                     ("training", .strings(training[r].map { pool[$0].text })),
                     ("heldout", .strings(heldout[r].map { pool[$0].text }))])
        })
    }
}
