/// The sentence templates of the official generator (behemoth-method.md §1.3), writing token ids.
///
/// Inverted grammar (default), with W-tokens from the grammar range:
///   SRO ` SS s W0 W1 RR r W2 OO o.`   SOR ` SS s W0 OO o W3 W4 RR r.`
///   OSR ` OO o W5 SS s W8 RR r.`      RSO ` W9 RR r W7 SS s W5 OO o.`
/// each followed by EOS; with probability inversion_frac one of the last three, uniformly.
/// Nonsense grammar: 1–5 random filler words (geometric, p = 0.4) before each of the RR, SS and OO
/// phrases, in RSO order, or SRO order with probability inversion_frac.
/// Question grammar: ` QQ WQ1 RR r WQ2 SS s WQ3 WQ4 AA OO o.`
/// Several templates per relation (templates_per_relation > 1): Templates.swift.

/// A head word: one or two token ids.
struct Head {
    let a: Int32, b: Int32, width: Int
    init(_ t: [Int32]) { a = t[0]; b = t.count > 1 ? t[1] : 0; width = t.count }
    init(a: Int32, b: Int32, width: Int) { self.a = a; self.b = b; self.width = width }
}

extension Array where Element == Int32 {
    @inline(__always) static func += (lhs: inout [Int32], rhs: Head) {
        lhs.append(rhs.a)
        if rhs.width == 2 { lhs.append(rhs.b) }
    }
}

struct Grammar {
    let layout: VocabularyLayout
    let creator: DatasetSpec.PhraseCreator
    let inversionFrac: Double
    let w: [Int32]       // W0...W10
    let wq: [Int32]      // index 1...4
    /// The nonsense grammar's filler words: W0–W10, WQ1–WQ4, W11–W999 (1004 words).
    let fillers: [Int32]

    static let ss = Vocabulary.ss, rr = Vocabulary.rr, oo = Vocabulary.oo, qq = Vocabulary.qq, aa = Vocabulary.aa
    static let dot = Vocabulary.dot, eos = Vocabulary.eos

    /// Several templates per relation (Templates.swift): the plan's pool as token ids.
    let resolved: [[Int32]]

    init(layout: VocabularyLayout, creator: DatasetSpec.PhraseCreator, inversionFrac: Double, templates: TemplatePlan? = nil) {
        self.layout = layout
        self.creator = creator
        self.inversionFrac = inversionFrac
        w = (0...10).map { layout.w($0) }
        wq = [0] + (1...4).map { layout.wq($0) }
        fillers = layout.grammarTokenNames().map { $0.1 }
        resolved = templates?.pool.map { $0.resolved(layout) } ?? []
    }

    /// Appends template t of the pool filled in, then "." and EOS.
    func templated(_ out: inout [Int32], template t: Int, head: Head, relation r: Int32, object o: Int32) {
        fillTemplate(&out, t, head: head, relation: r, object: o)
        out.append(Grammar.dot)
        out.append(Grammar.eos)
    }

    /// Appends template t's words before its object: an evaluation prompt (the template is evaluable).
    func templatePrompt(_ out: inout [Int32], template t: Int, head: Head, relation r: Int32) {
        fillTemplate(&out, t, head: head, relation: r, object: nil)
    }

    private func fillTemplate(_ out: inout [Int32], _ t: Int, head: Head, relation r: Int32, object o: Int32?) {
        Template.fill(&out, resolved[t], head: head, relation: r, object: o)
    }

    /// Template kinds of the inverted grammar.
    enum Order { case sro, sor, osr, rso }

    @inline(__always)
    private func fill(_ out: inout [Int32], _ rng: inout RNG, fixed: Int? = nil) {
        if let fixed {
            for _ in 0..<fixed { out.append(fillers[rng.below(fillers.count)]) }
            return
        }
        out.append(fillers[rng.below(fillers.count)])
        var n = 1
        while n < 5 && rng.uniform() < 0.4 {
            out.append(fillers[rng.below(fillers.count)])
            n += 1
        }
    }

    /// Appends one training sentence (ending in "." and EOS).
    func sentence(_ out: inout [Int32], head: Head, relation r: Int32, object o: Int32, rng: inout RNG) {
        switch creator {
        case .inverted:
            var order = Order.sro
            if inversionFrac > 0 && !(rng.uniform() > inversionFrac) {
                switch rng.below(3) {
                case 0: order = .sor
                case 1: order = .osr
                default: order = .rso
                }
            }
            switch order {
            case .sro:
                out.append(Grammar.ss); out += head; out.append(w[0]); out.append(w[1])
                out.append(Grammar.rr); out.append(r); out.append(w[2]); out.append(Grammar.oo); out.append(o)
            case .sor:
                out.append(Grammar.ss); out += head; out.append(w[0]); out.append(Grammar.oo); out.append(o)
                out.append(w[3]); out.append(w[4]); out.append(Grammar.rr); out.append(r)
            case .osr:
                out.append(Grammar.oo); out.append(o); out.append(w[5]); out.append(Grammar.ss); out += head
                out.append(w[8]); out.append(Grammar.rr); out.append(r)
            case .rso:
                out.append(w[9]); out.append(Grammar.rr); out.append(r); out.append(w[7]); out.append(Grammar.ss); out += head
                out.append(w[5]); out.append(Grammar.oo); out.append(o)
            }
        case .nonsense:
            let sro = rng.uniform() < inversionFrac
            fill(&out, &rng)
            if sro {
                out.append(Grammar.ss); out += head
                fill(&out, &rng)
                out.append(Grammar.rr); out.append(r)
            } else {
                out.append(Grammar.rr); out.append(r)
                fill(&out, &rng)
                out.append(Grammar.ss); out += head
            }
            fill(&out, &rng)
            out.append(Grammar.oo); out.append(o)
        }
        out.append(Grammar.dot)
        out.append(Grammar.eos)
    }

    /// Appends one question sentence.
    func question(_ out: inout [Int32], head: Head, relation r: Int32, object o: Int32) {
        questionPrompt(&out, head: head, relation: r)
        out.append(o); out.append(Grammar.dot); out.append(Grammar.eos)
    }

    /// ` QQ WQ1 RR r WQ2 SS s WQ3 WQ4 AA OO` (target: the object).
    func questionPrompt(_ out: inout [Int32], head: Head, relation r: Int32) {
        out.append(Grammar.qq); out.append(wq[1]); out.append(Grammar.rr); out.append(r); out.append(wq[2])
        out.append(Grammar.ss); out += head; out.append(wq[3]); out.append(wq[4]); out.append(Grammar.aa); out.append(Grammar.oo)
    }

    /// The evaluation templates the official generator writes: names and whether each applies.
    var evalTemplates: [String] {
        switch creator {
        case .inverted: return inversionFrac > 0 ? ["sro", "rso"] : ["sro"]
        case .nonsense: return ["sro", "rso"]
        }
    }

    /// Appends an evaluation prompt (everything up to and including OO).
    func evalPrompt(_ out: inout [Int32], template: String, head: Head, relation r: Int32, rng: inout RNG) {
        switch (creator, template) {
        case (.inverted, "rso"):
            out.append(w[9]); out.append(Grammar.rr); out.append(r); out.append(w[7]); out.append(Grammar.ss); out += head
            out.append(w[5]); out.append(Grammar.oo)
        case (.inverted, _):
            out.append(Grammar.ss); out += head; out.append(w[0]); out.append(w[1])
            out.append(Grammar.rr); out.append(r); out.append(w[2]); out.append(Grammar.oo)
        case (.nonsense, "rso"):
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.rr); out.append(r)
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.ss); out += head
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.oo)
        case (.nonsense, _):
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.ss); out += head
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.rr); out.append(r)
            fill(&out, &rng, fixed: 2)
            out.append(Grammar.oo)
        }
    }
}
