/// Spec fields declared once. A spec type lists its fields: each names its key, its type and range,
/// and where its value lives in the Swift value (a key path); the default is the value's own initial
/// value. The one list decodes the spec (strict: unknown keys refused; errors name the path),
/// echoes it (every field, defaults filled in, in the documented order) and is what the docs'
/// tables are checked against (SpecDocsTests).
public struct SpecField<S> {
    public let key: String
    let read: (inout JSONReader, inout S) throws(EngineError) -> Void
    /// nil leaves the field out of the echo (a field added later, at its default, so that specs
    /// and content digests written before it existed stay the same).
    let write: (S) -> JSON?

    public init(_ key: String, read: @escaping (inout JSONReader, inout S) throws(EngineError) -> Void, write: @escaping (S) -> JSON?) {
        self.key = key; self.read = read; self.write = write
    }

    public static func int(_ key: String, _ p: WritableKeyPath<S, Int>, min: Int? = nil, max: Int? = nil) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = try r.int(key, default: s[keyPath: p], min: min, max: max) },
                  write: { .int($0[keyPath: p]) })
    }

    public static func double(_ key: String, _ p: WritableKeyPath<S, Double>, min: Double? = nil, max: Double? = nil,
                              exclusiveMin: Bool = false) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            s[keyPath: p] = try r.double(key, default: s[keyPath: p], min: min, max: max, exclusiveMin: exclusiveMin)
        }, write: { .number($0[keyPath: p]) })
    }

    /// A number or null (absent: the default, which may be nil: "chosen from the model").
    public static func optionalDouble(_ key: String, _ p: WritableKeyPath<S, Double?>, min: Double? = nil, max: Double? = nil,
                                      exclusiveMin: Bool = false) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            // absent: the default; null: nil; a number: checked
            if r.has(key) { s[keyPath: p] = try r.optionalDouble(key, min: min, max: max, exclusiveMin: exclusiveMin) } else { _ = r.value(key) }
        }, write: { $0[keyPath: p].map { .number($0) } ?? .null })
    }

    public static func bool(_ key: String, _ p: WritableKeyPath<S, Bool>) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = try r.bool(key, default: s[keyPath: p]) },
                  write: { .bool($0[keyPath: p]) })
    }

    public static func string(_ key: String, _ p: WritableKeyPath<S, String>, oneOf allowed: [String]? = nil) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = try r.string(key, default: s[keyPath: p], oneOf: allowed) },
                  write: { .string($0[keyPath: p]) })
    }

    /// One of an enum's raw values (the message lists them).
    public static func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ p: WritableKeyPath<S, E>) -> SpecField where E.RawValue == String {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in
            let name = try r.string(key, default: s[keyPath: p].rawValue, oneOf: E.allCases.map(\.rawValue))
            s[keyPath: p] = E(rawValue: name)!
        }, write: { .string($0[keyPath: p].rawValue) })
    }

    public static func strings(_ key: String, _ p: WritableKeyPath<S, [String]>) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = try r.stringArray(key, default: s[keyPath: p]) },
                  write: { .strings($0[keyPath: p]) })
    }

    public static func ints(_ key: String, _ p: WritableKeyPath<S, [Int]>, min: Int? = nil, max: Int? = nil) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = try r.intArray(key, default: s[keyPath: p], min: min, max: max) },
                  write: { .ints($0[keyPath: p]) })
    }

    /// A seed: a non-negative integer.
    public static func seed(_ key: String, _ p: WritableKeyPath<S, UInt64>, max: Int? = nil) -> SpecField {
        SpecField(key, read: { (r: inout JSONReader, s: inout S) throws(EngineError) in s[keyPath: p] = UInt64(try r.int(key, default: Int(s[keyPath: p]), min: 0, max: max)) },
                  write: { .int(Int($0[keyPath: p])) })
    }
}

public enum SpecFields {
    /// Reads `fields` from `r` into `value`, which holds the defaults (`r` is not finished here).
    public static func decode<S>(_ fields: [SpecField<S>], into value: inout S, from r: inout JSONReader) throws(EngineError) {
        for f in fields { try f.read(&r, &value) }
    }

    /// Every field of `value`, in declaration order (but those whose write gives nil).
    public static func echo<S>(_ fields: [SpecField<S>], _ value: S) -> [(String, JSON)] {
        fields.compactMap { f in f.write(value).map { (f.key, $0) } }
    }
}

/// A spec whose fields are declared once (`fields`) with its defaults in `init()`.
public protocol DeclaredSpec {
    init()
    /// How messages name it: "training spec", "capacity search spec.search".
    static var specPath: String { get }
    static var fields: [SpecField<Self>] { get }
    /// Checks that span fields, after decoding.
    func validate() throws(EngineError)
}

extension DeclaredSpec {
    public func validate() throws(EngineError) {}

    public init(json text: String) throws(EngineError) {
        var r = try JSONReader(text: text, path: Self.specPath)
        try self.init(reading: &r)
        try r.finish()
    }

    /// Reads the fields from `r` (a nested object, say) and validates; the caller finishes `r`.
    public init(reading r: inout JSONReader) throws(EngineError) {
        self.init()
        try SpecFields.decode(Self.fields, into: &self, from: &r)
        try validate()
    }

    public func toJSON() -> JSON { .object(SpecFields.echo(Self.fields, self)) }
    public static var keys: [String] { fields.map(\.key) }
}
