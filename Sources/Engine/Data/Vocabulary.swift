/// The token space, laid out as the official Behemoth generator lays it out (behemoth-method.md §1.2):
///
///   0..<85        special: EOS, padding, ".", the role markers " SS" " RR" " OO" " QQ" " AA",
///                 Pythia's whitespace runs, "Ġ", digits, and the characters/prefixes for BPE merges
///   85..          subjects (one token each, or two-token words with disjoint first/second ranges
///                 when there are 1000 or more), relations, R blocks of O objects, and for nested
///                 data the subject→nested relations, object→nested relations and R blocks of K
///                 nested objects
///   one unused id (the official generator skips it)
///   1010 grammar ids (W0–W10, 3 simple-repeat, 3 fine-tuning-QA, WQ1–WQ4, W11–W999)
///   85 unused words (the official generator creates words up to 85 + its token count)
///   the BPE merge prefixes ("Ġ0", "Ġ01", "Ġ017", ...)
///
/// Every word is one token whose text is " " + its own id as 4 zero-padded digits.
public struct VocabRole: Equatable, Sendable {
    public let name: String
    public let first: Int
    public let count: Int
    public var range: Range<Int> { first..<(first + count) }

    public init(name: String, first: Int, count: Int) {
        self.name = name
        self.first = first
        self.count = count
    }
}

/// The id layout computed from the entity counts alone (no allocation beyond a few arrays).
public struct VocabularyLayout: Equatable, Sendable {
    public static let firstMeaningful = 85
    /// Grammar ids reserved after the entities (get_all_special_tokens of the official generator).
    public static let grammarCount = 1010
    public static let unusedWordCount = 85

    public let subjects: Int, relationships: Int, objects: Int, nested: Int
    /// 1 or 2 tokens per subject; for 2, `subjectDivisor` second-position tokens.
    public let subjectWidth: Int
    public let subjectDivisor: Int
    public let subjectFirstCount: Int
    public let subjectStart: Int
    public let relationStart: Int
    public let objectStart: Int
    public let subjectNestedRelationStart: Int
    public let objectNestedRelationStart: Int
    public let nestedObjectStart: Int
    public let gapId: Int
    public let grammarStart: Int
    public let unusedStart: Int
    /// One past the last word id ("Ġdddd"); prefix tokens start here.
    public let wordsEnd: Int
    public let size: Int
    /// Intentional token collisions (Collisions.swift): the token written for each id of the
    /// layout above, canonical id → actual id (empty: every id is its own token, no collisions).
    public internal(set) var tokenMap: [Int32] = []
    /// subject_parts collisions of one-token subjects: per subject, the token written before its
    /// own (another subject's token, making it a two-token word), or -1 (empty: none).
    public internal(set) var subjectPrefix: [Int32] = []

    public init(subjects: Int, relationships: Int, objects: Int, nested: Int) throws(EngineError) {
        self.subjects = subjects
        self.relationships = relationships
        self.objects = objects
        self.nested = nested
        var cursor = VocabularyLayout.firstMeaningful
        subjectStart = cursor
        if subjects < 1000 {
            subjectWidth = 1; subjectDivisor = subjects; subjectFirstCount = subjects
            cursor += subjects
        } else {
            guard subjects <= DatasetSpec.maxSubjects else {
                throw .invalid("dataset spec: subjects = \(subjects) is more than the \(DatasetSpec.maxSubjects) the official two-token words allow")
            }
            // The official rule (split_numerical_to_ids): divisor 1000 when it divides the count,
            // otherwise floor(sqrt(n)) - n % floor(sqrt(n)).
            let d: Int
            if subjects % 1000 == 0 {
                d = 1000
            } else {
                var b = Int(Double(subjects).squareRoot())
                while b * b > subjects { b -= 1 }
                while (b + 1) * (b + 1) <= subjects { b += 1 }
                d = b - subjects % b
            }
            if subjects / d > 1000 {
                throw .invalid("dataset spec: subjects = \(subjects) cannot be split evenly into two-token words (use a multiple of 1000)")
            }
            subjectWidth = 2; subjectDivisor = d; subjectFirstCount = (subjects - 1) / d + 1
            cursor += subjectFirstCount + d
        }
        relationStart = cursor
        cursor += relationships
        objectStart = cursor
        cursor += relationships * objects
        if nested > 0 {
            subjectNestedRelationStart = cursor
            cursor += relationships
            objectNestedRelationStart = cursor
            cursor += relationships
            nestedObjectStart = cursor
            cursor += relationships * nested
        } else {
            subjectNestedRelationStart = cursor
            objectNestedRelationStart = cursor
            nestedObjectStart = cursor
        }
        gapId = cursor
        grammarStart = cursor + 1
        unusedStart = grammarStart + VocabularyLayout.grammarCount
        wordsEnd = unusedStart + VocabularyLayout.unusedWordCount
        // Ids must fit in 4 digits: the official check runs before each word's prefixes are added.
        let prefixes = VocabularyLayout.prefixCount(wordsEnd: wordsEnd, excludingLast: true)
        if wordsEnd + prefixes > 9999 {
            throw .invalid("dataset spec: the vocabulary needs more than 10000 token ids (subjects = \(subjects), relationships = \(relationships), objects = \(objects), num_nested_objects = \(nested)); the official format supports only 4-digit ids")
        }
        size = wordsEnd + VocabularyLayout.prefixCount(wordsEnd: wordsEnd, excludingLast: false)
    }

    /// BPE prefix tokens ("Ġd", "Ġdd", "Ġddd") needed to build the words 85..<wordsEnd.
    static func prefixCount(wordsEnd: Int, excludingLast: Bool) -> Int {
        let end = excludingLast ? wordsEnd - 1 : wordsEnd
        guard end > firstMeaningful, wordsEnd <= 100_000 else { return end > firstMeaningful ? 1 << 20 : 0 }
        var n = 0
        // Prefixes of lengths 1, 2, 3 of zero-padded 4-digit ids: distinct values of id / 1000, id / 100, id / 10.
        for div in [1000, 100, 10] { n += (end - 1) / div - firstMeaningful / div + 1 }
        return n
    }

    /// The prefix token strings in id order (as the official tokenizer assigns them).
    public func prefixStrings() -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        for id in VocabularyLayout.firstMeaningful..<wordsEnd {
            let digits = fourDigits(id)
            for len in 1...3 {
                let p = "Ġ" + String(digits.prefix(len))
                if seen.insert(p).inserted { out.append(p) }
            }
        }
        return out
    }

    /// Named, contiguous roles covering 0..<size exactly once.
    public func roles() -> [VocabRole] {
        var r: [VocabRole] = [VocabRole(name: "special", first: 0, count: VocabularyLayout.firstMeaningful)]
        if subjectWidth == 1 {
            r.append(VocabRole(name: "subject", first: subjectStart, count: subjects))
        } else {
            r.append(VocabRole(name: "subject_first", first: subjectStart, count: subjectFirstCount))
            r.append(VocabRole(name: "subject_second", first: subjectStart + subjectFirstCount, count: subjectDivisor))
        }
        r.append(VocabRole(name: "relation", first: relationStart, count: relationships))
        for k in 0..<relationships { r.append(VocabRole(name: "object/r\(k)", first: objectStart + k * objects, count: objects)) }
        if nested > 0 {
            r.append(VocabRole(name: "subject_nested_relation", first: subjectNestedRelationStart, count: relationships))
            r.append(VocabRole(name: "object_nested_relation", first: objectNestedRelationStart, count: relationships))
            for k in 0..<relationships { r.append(VocabRole(name: "nested_object/r\(k)", first: nestedObjectStart + k * nested, count: nested)) }
        }
        r.append(VocabRole(name: "unused_gap", first: gapId, count: 1))
        r.append(VocabRole(name: "grammar", first: grammarStart, count: VocabularyLayout.grammarCount))
        r.append(VocabRole(name: "unused_words", first: unusedStart, count: VocabularyLayout.unusedWordCount))
        r.append(VocabRole(name: "bpe_prefix", first: wordsEnd, count: size - wordsEnd))
        return r
    }

    // MARK: words

    /// The token written for a layout id: itself, unless a collision gave it another one.
    @inline(__always)
    public func token(_ id: Int) -> Int32 { tokenMap.isEmpty ? Int32(id) : tokenMap[id] }

    /// Columns of a table of subject words: the subject width, or 2 when subject_parts collisions
    /// made some one-token subjects two-token words (the others padded with -1).
    public var subjectColumns: Int { subjectPrefix.isEmpty ? subjectWidth : 2 }

    /// Whether any collision changed a token or a subject word.
    public var hasCollisions: Bool { !tokenMap.isEmpty || !subjectPrefix.isEmpty }

    public func subjectTokens(_ s: Int) -> [Int32] {
        if subjectWidth == 1 {
            let own = token(subjectStart + s)
            if !subjectPrefix.isEmpty, subjectPrefix[s] >= 0 { return [subjectPrefix[s], own] }
            return [own]
        }
        return [token(subjectStart + s / subjectDivisor), token(subjectStart + subjectFirstCount + s % subjectDivisor)]
    }

    /// The subject ordinal of a one- or two-token word, or nil.
    public func subjectOrdinal(_ t: [Int32]) -> Int? {
        if subjectWidth == 1 {
            guard t.count == 1 else { return nil }
            let s = Int(t[0]) - subjectStart
            return s >= 0 && s < subjects ? s : nil
        }
        guard t.count == 2 else { return nil }
        let a = Int(t[0]) - subjectStart, b = Int(t[1]) - subjectStart - subjectFirstCount
        guard a >= 0, a < subjectFirstCount, b >= 0, b < subjectDivisor else { return nil }
        let s = a * subjectDivisor + b
        return s < subjects ? s : nil
    }

    public func relationToken(_ r: Int) -> Int32 { token(relationStart + r) }
    public func objectToken(relation r: Int, ordinal o: Int) -> Int32 { token(objectStart + r * objects + o) }
    public func subjectNestedRelationToken(_ r: Int) -> Int32 { token(subjectNestedRelationStart + r) }
    public func objectNestedRelationToken(_ r: Int) -> Int32 { token(objectNestedRelationStart + r) }
    public func nestedObjectToken(relation r: Int, ordinal k: Int) -> Int32 { token(nestedObjectStart + r * nested + k) }

    // MARK: grammar words (offsets from grammarStart, as the official generator assigns them)

    /// W0..W10 of the inverted grammar.
    public func w(_ i: Int) -> Int32 {
        if i <= 10 { return Int32(grammarStart + i) }
        return Int32(grammarStart + 21 + (i - 11))  // W11..W999
    }
    /// WQ1..WQ4 of the question grammar.
    public func wq(_ i: Int) -> Int32 { Int32(grammarStart + 16 + i) }

    /// The named grammar tokens, in the order of other_special_tokens.json.
    public func grammarTokenNames() -> [(String, Int32)] {
        var out: [(String, Int32)] = []
        for i in 0...10 { out.append(("W\(i)", w(i))) }
        for i in 1...4 { out.append(("WQ\(i)", wq(i))) }
        for i in 11...999 { out.append(("W\(i)", w(i))) }
        return out
    }
}

@inline(__always)
func fourDigits(_ id: Int) -> String {
    let s = String(id)
    return s.count >= 4 ? s : String(repeating: "0", count: 4 - s.count) + s
}

/// Token strings and text for a layout: what the tokenizer.json of the dataset holds.
public struct Vocabulary: Equatable, Sendable {
    public let layout: VocabularyLayout
    public let roles: [VocabRole]
    /// The 85 low tokens as they appear in tokenizer.json ("Ġ" stands for a space). Ids 42..84 are
    /// the characters and prefixes of the special strings, whose order the official generator takes
    /// from a Python set (it differs between runs); imports keep the folder's own order.
    public let specialTokens: [String]
    /// specialTokens as decoded text bytes ("Ġ" as a space).
    let specialBytes: [[UInt8]]

    public static let eos: Int32 = 0, padding: Int32 = 1, dot: Int32 = 2
    public static let ss: Int32 = 3, rr: Int32 = 4, oo: Int32 = 5, qq: Int32 = 6, aa: Int32 = 7

    public var size: Int { layout.size }

    public init(layout: VocabularyLayout, specialTokens: [String] = Vocabulary.defaultSpecialTokens) throws(EngineError) {
        guard specialTokens.count == VocabularyLayout.firstMeaningful else {
            throw .format("vocabulary: expected \(VocabularyLayout.firstMeaningful) special tokens, got \(specialTokens.count)")
        }
        for (i, t) in Vocabulary.defaultSpecialTokens.enumerated().prefix(42) where specialTokens[i] != t {
            throw .format("vocabulary: special token \(i) is \(JSON.string(specialTokens[i]).serialized()), expected \(JSON.string(t).serialized())")
        }
        guard Set(specialTokens).count == specialTokens.count, Set(specialTokens) == Set(Vocabulary.defaultSpecialTokens) else {
            throw .format("vocabulary: the special tokens 42..84 are not the characters and prefixes of the official special strings")
        }
        self.layout = layout
        self.roles = layout.roles()
        self.specialTokens = specialTokens
        self.specialBytes = specialTokens.map { Array(Vocabulary.byteLevelText($0).utf8) }
    }

    public func role(named name: String) -> VocabRole? { roles.first { $0.name == name } }

    /// The role holding a token id (binary search over the contiguous ranges).
    public func roleIndex(of token: Int) -> Int? {
        guard token >= 0, token < size else { return nil }
        var lo = 0, hi = roles.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if roles[mid].first <= token { lo = mid } else { hi = mid - 1 }
        }
        return roles[lo].range.contains(token) ? lo : nil
    }

    /// The token's string in tokenizer.json ("Ġ0172", "ĠSS", ".").
    public func tokenString(_ id: Int) -> String {
        if id < VocabularyLayout.firstMeaningful { return specialTokens[id] }
        if id < layout.wordsEnd { return "Ġ" + fourDigits(id) }
        let p = layout.prefixStrings()
        let k = id - layout.wordsEnd
        return k < p.count ? p[k] : ""
    }

    /// Text of token ids in the official format (" SS 0172 0714 3592 ..."): byte-level "Ġ" is a space.
    public func decode<C: Collection>(_ tokens: C) throws(EngineError) -> String where C.Element == Int32 {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count * 5)
        var prefixes: [String]? = nil
        for t in tokens {
            let id = Int(t)
            guard id >= 0, id < size else { throw .invalid("decode: token \(id) is outside the vocabulary 0..<\(size)") }
            if id >= VocabularyLayout.firstMeaningful && id < layout.wordsEnd {
                out.append(32)
                out.append(48 + UInt8(id / 1000)); out.append(48 + UInt8(id / 100 % 10))
                out.append(48 + UInt8(id / 10 % 10)); out.append(48 + UInt8(id % 10))
            } else if id < VocabularyLayout.firstMeaningful {
                out += specialBytes[id]
            } else {
                if prefixes == nil { prefixes = layout.prefixStrings() }
                out += Array(Vocabulary.byteLevelText(prefixes![id - layout.wordsEnd]).utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func byteLevelText(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars { if u == "Ġ" { out += " " } else { out.unicodeScalars.append(u) } }
        return out
    }

    /// The 85 low tokens in the order the official generator produced them for the fixtures.
    public static let defaultSpecialTokens: [String] = {
        var t = ["<|endoftext|>", "<|padding|>", ".", "ĠSS", "ĠRR", "ĠOO", "ĠQQ", "ĠAA"]
        for n in stride(from: 24, through: 2, by: -1) { t.append(String(repeating: " ", count: n)) }  // Pythia's whitespace runs
        t.append("Ġ")
        for d in 0...9 { t.append(String(d)) }
        t += ["e", ">", "d", "|", "<", "o", "x", "n", "t", "f"]
        let eot = Array("<|endoftext|")
        for i in 2...eot.count { t.append(String(eot[0..<i])) }
        t += ["g", "i", "a", "p"]
        let pad = Array("<|padding|")
        for i in 3...pad.count { t.append(String(pad[0..<i])) }
        for c in ["S", "R", "O", "Q", "A"] { t.append(c); t.append("Ġ" + c) }
        return t
    }()
}
