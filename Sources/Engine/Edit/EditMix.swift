/// The fine-tuning mix part by part: what the spec asked for, what the scale made of it and what
/// the dataset supplied. The official counts (250 : ≤ 150 : 500 : 250 per edit, 2 : 1 : 4 + 2) need
/// a large dataset; on a smaller one the last parts used to come out short or empty, silently.
/// Unless the spec sets `absolute_counts`, every part is scaled by one factor instead, so the ratio
/// holds; each part that still differs from what was asked gets a warning. The same-value part is
/// an upper bound that depends on subjects per object, so it does not set the scale
/// (docs/training-and-editing.md).
public struct EditMix {
    public struct Part {
        public let name: String
        /// Training sentences the spec asks for (its absolute counts).
        public let requested: Int
        /// requested × scale, rounded down: what the builder tried to draw.
        public let scaled: Int
        /// Training sentences the set holds.
        public let obtained: Int
    }

    public var scale = 1.0
    public private(set) var parts: [Part] = []
    public private(set) var warnings: [String] = []

    /// `count` × scale, rounded down.
    func scaled(_ count: Int) -> Int { scale >= 1 ? count : Int((scale * Double(count)).rounded(.down)) }

    /// The largest scale ≤ 1 at which the same-relation part (two subjects per sentence: one trained,
    /// one held out) and the regularisation part (`otherRelations` facts per subject left) both fit
    /// in `free` subjects: 2·s·a + s·b / (R − 1) ≤ free. With no other relation, regularisation
    /// cannot be had at any scale, so only the same-relation part sets it.
    static func subjectScale(free: Int, otherRelations: Int, sameRelation a: Int, regularization b: Int) -> Double {
        let perUnit = 2 * Double(a) + (otherRelations > 0 ? Double(b) / Double(otherRelations) : 0)
        return perUnit > 0 ? min(1, Double(max(0, free)) / perUnit) : 1
    }

    /// Records a part; `limit` says why the dataset could not supply more (used when obtained ≠ scaled).
    mutating func add(_ name: String, requested: Int, scaled: Int, obtained: Int, limit: @autoclosure () -> String) {
        parts.append(Part(name: name, requested: requested, scaled: scaled, obtained: obtained))
        if obtained != scaled { warnings.append("\(name): \(obtained) of the \(scaled) training sentences asked for: \(limit())") }
    }

    /// Puts the warning about the scale first, naming the counts it replaced.
    func explained() -> EditMix {
        guard scale < 1 else { return self }
        var m = self
        let asked = parts.map { "\($0.name) \($0.requested)" }.joined(separator: ", ")
        m.warnings.insert("the dataset cannot supply the requested counts (\(asked)): every part is scaled by \(JSON.format((scale * 10_000).rounded() / 10_000)) so their ratio holds; set absolute_counts to train the requested counts", at: 0)
        return m
    }

    public func toJSON() -> JSON {
        .object([
            ("scale", .number(scale)),
            ("parts", .object(parts.map {
                ($0.name, .object([("requested", .int($0.requested)), ("scaled", .int($0.scaled)), ("obtained", .int($0.obtained))]))
            })),
            ("warnings", .strings(warnings)),
        ])
    }
}
