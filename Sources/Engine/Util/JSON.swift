/// A small JSON value, parser and writer: specs come in as JSON and reports go out as JSON, and the
/// engine needs exact control over unknown keys, types and ranges (and no Foundation).
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])  // keeps insertion order so reports read in a fixed order

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public static func int(_ v: Int) -> JSON { .number(Double(v)) }
    public static func ints(_ v: [Int]) -> JSON { .array(v.map { .number(Double($0)) }) }
    public static func doubles(_ v: [Double]) -> JSON { .array(v.map { .number($0) }) }
    public static func strings(_ v: [String]) -> JSON { .array(v.map { .string($0) }) }

    public subscript(key: String) -> JSON? {
        if case let .object(fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    // MARK: writing

    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        write(into: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(into out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(d): out += JSON.format(d)
        case let .string(s): JSON.quote(s, into: &out)
        case let .array(items):
            if items.isEmpty { out += "[]"; return }
            let simple = items.allSatisfy { if case .object = $0 { return false }; if case .array = $0 { return false }; return true }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += pretty && simple ? ", " : "," }
                if pretty && !simple { out += "\n" + String(repeating: "  ", count: indent + 1) }
                item.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty && !simple { out += "\n" + String(repeating: "  ", count: indent) }
            out += "]"
        case let .object(fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                JSON.quote(k, into: &out)
                out += pretty ? ": " : ":"
                v.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    static func format(_ d: Double) -> String {
        if !d.isFinite { return "null" }
        if d == d.rounded(), abs(d) < 9.007e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// Writes a JSON string literal. `asciiOnly` escapes everything outside printable ASCII as
    /// \uXXXX (surrogate pairs above U+FFFF), as Python's json.dumps does by default.
    static func quote(_ s: String, into out: inout String, asciiOnly: Bool = false) {
        func hex4(_ v: UInt32) {
            let h = String(v, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        }
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || (asciiOnly && u.value > 0x7E) {
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        hex4(0xD800 + (v >> 10)); hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        hex4(u.value)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// A JSON string literal as Python's json.dumps writes it (ensure_ascii).
    static func pythonQuoted(_ s: String) -> String {
        var out = ""
        quote(s, into: &out, asciiOnly: true)
        return out
    }

    // MARK: parsing

    /// Parses UTF-8 JSON text. `what` names the document in error messages ("dataset spec").
    /// The largest JSON document accepted (specs, reports, attributes): 16 MB.
    public static let maxInputBytes = 16 << 20

    public static func parse(_ text: String, what: String) throws(EngineError) -> JSON {
        guard text.utf8.count <= maxInputBytes else {
            throw .invalid("\(what): the JSON text is \(text.utf8.count) bytes; the limit is \(maxInputBytes) (16 MB)")
        }
        var p = Parser(bytes: Array(text.utf8), what: what)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.i != p.bytes.count { throw p.fail("unexpected text after the JSON value") }
        return v
    }

    struct Parser {
        let bytes: [UInt8]
        let what: String
        var i = 0

        init(bytes: [UInt8], what: String) { self.bytes = bytes; self.what = what }

        func fail(_ m: String) -> EngineError {
            // Report line and column so a hand-written spec is easy to fix.
            var line = 1, col = 1
            for b in bytes[0..<min(i, bytes.count)] { if b == 10 { line += 1; col = 1 } else { col += 1 } }
            return .invalid("\(what): malformed JSON at line \(line), column \(col): \(m)")
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
        }

        mutating func value(depth: Int) throws(EngineError) -> JSON {
            guard depth < 64 else { throw fail("nesting deeper than 64 levels") }
            guard i < bytes.count else { throw fail("unexpected end of text") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var fields: [(String, JSON)] = []
                var seen = Set<String>()  // duplicate keys found in linear time
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
                    let key = try string()
                    if !seen.insert(key).inserted { throw fail("duplicate key '\(key)'") }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after key '\(key)'") }
                    i += 1
                    skipSpace()
                    fields.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of text in an object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                    throw fail("expected ',' or '}' in an object")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of text in an array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected ',' or ']' in an array")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            // Not JSON, but Python's json module writes them: accept them so the field that holds one
            // is reported by name ("learning_rate must be finite") instead of as malformed text.
            case UInt8(ascii: "N"): try literal("NaN"); return .number(.nan)
            case UInt8(ascii: "I"): try literal("Infinity"); return .number(.infinity)
            case UInt8(ascii: "-") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "I"):
                i += 1; try literal("Infinity"); return .number(-.infinity)
            default:
                return .number(try number())
            }
        }

        mutating func literal(_ word: String) throws(EngineError) {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw fail("unexpected character") }
            i += w.count
        }

        mutating func number() throws(EngineError) -> Double {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            let digitsStart = i
            while i < bytes.count, (48...57).contains(bytes[i]) { i += 1 }
            guard i > digitsStart else { throw fail("unexpected character") }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                let f = i
                while i < bytes.count, (48...57).contains(bytes[i]) { i += 1 }
                guard i > f else { throw fail("expected digits after '.'") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                let e = i
                while i < bytes.count, (48...57).contains(bytes[i]) { i += 1 }
                guard i > e else { throw fail("expected digits in the exponent") }
            }
            guard let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw fail("bad number") }
            return d
        }

        mutating func hex4() throws(EngineError) -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
                throw fail("bad \\u escape")
            }
            i += 4
            return v
        }

        mutating func string() throws(EngineError) -> String {
            i += 1  // opening quote
            var run = i
            var out = ""
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    out += String(decoding: bytes[run..<i], as: UTF8.self)
                    i += 1
                    return out
                }
                if b < 0x20 { throw fail("control character in a string") }
                if b == UInt8(ascii: "\\") {
                    out += String(decoding: bytes[run..<i], as: UTF8.self)
                    i += 1
                    guard i < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): out += "\""
                    case UInt8(ascii: "\\"): out += "\\"
                    case UInt8(ascii: "/"): out += "/"
                    case UInt8(ascii: "b"): out += "\u{08}"
                    case UInt8(ascii: "f"): out += "\u{0C}"
                    case UInt8(ascii: "n"): out += "\n"
                    case UInt8(ascii: "r"): out += "\r"
                    case UInt8(ascii: "t"): out += "\t"
                    case UInt8(ascii: "u"):
                        var v = try hex4()
                        if (0xD800..<0xDC00).contains(v), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                            i += 2
                            let lo = try hex4()
                            guard (0xDC00..<0xE000).contains(lo) else { throw fail("bad surrogate pair") }
                            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        guard let s = Unicode.Scalar(v) else { throw fail("bad \\u escape") }
                        out.unicodeScalars.append(s)
                    default: throw fail("unknown escape")
                    }
                    run = i
                    continue
                }
                i += 1
            }
        }
    }
}

/// Reads a JSON object field by field with defaults, types and ranges checked, then rejects keys
/// nobody asked for. `path` names the object in messages: "dataset spec", "edit spec.optimizer".
public struct JSONReader {
    public let path: String
    private let fields: [(String, JSON)]
    private var asked: [String] = []

    public init(_ json: JSON, path: String) throws(EngineError) {
        guard case let .object(f) = json else { throw .invalid("\(path): expected a JSON object, got \(json.typeName)") }
        self.path = path
        self.fields = f
    }

    public init(text: String, path: String) throws(EngineError) {
        let trimmed = text.trimmingSpaces
        try self.init(trimmed.isEmpty ? .object([]) : JSON.parse(trimmed, what: path), path: path)
    }

    public func has(_ key: String) -> Bool { fields.contains { $0.0 == key } }

    private mutating func raw(_ key: String) -> JSON? {
        asked.append(key)
        guard let v = fields.first(where: { $0.0 == key })?.1 else { return nil }
        if case .null = v { return nil }
        return v
    }

    public mutating func int(_ key: String, default d: Int, min lo: Int? = nil, max hi: Int? = nil) throws(EngineError) -> Int {
        guard let v = raw(key) else { return d }
        guard case let .number(x) = v else { throw .invalid("\(path): \(key) must be an integer, got \(v.typeName)") }
        guard x.isFinite else { throw .invalid("\(path): \(key) must be a finite integer, got \(x)") }
        guard x == x.rounded() else { throw .invalid("\(path): \(key) = \(JSON.format(x)) must be a whole number") }
        if let hi, x > Double(hi) { throw .invalid("\(path): \(key) = \(JSON.format(x)) must be at most \(hi)") }
        if let lo, x < Double(lo) { throw .invalid("\(path): \(key) = \(JSON.format(x)) must be at least \(lo)") }
        guard abs(x) < 9.0e15 else { throw .invalid("\(path): \(key) = \(JSON.format(x)) is too large") }
        let n = Int(x)
        if let lo, n < lo { throw .invalid("\(path): \(key) = \(n) must be at least \(lo)") }
        if let hi, n > hi { throw .invalid("\(path): \(key) = \(n) must be at most \(hi)") }
        return n
    }

    public mutating func optionalInt(_ key: String, min lo: Int? = nil, max hi: Int? = nil) throws(EngineError) -> Int? {
        guard has(key), raw(key) != nil else { asked.append(key); return nil }
        return try int(key, default: 0, min: lo, max: hi)
    }

    public mutating func double(_ key: String, default d: Double, min lo: Double? = nil, max hi: Double? = nil,
                                exclusiveMin: Bool = false) throws(EngineError) -> Double {
        guard let v = raw(key) else { return d }
        guard case let .number(x) = v else { throw .invalid("\(path): \(key) must be a number, got \(v.typeName)") }
        guard x.isFinite else { throw .invalid("\(path): \(key) must be finite, got \(x)") }
        if let lo, exclusiveMin ? x <= lo : x < lo {
            throw .invalid("\(path): \(key) = \(JSON.format(x)) must be \(exclusiveMin ? "greater than" : "at least") \(JSON.format(lo))")
        }
        if let hi, x > hi { throw .invalid("\(path): \(key) = \(JSON.format(x)) must be at most \(JSON.format(hi))") }
        return x
    }

    /// A number, or nil when the key is absent or null.
    public mutating func optionalDouble(_ key: String, min lo: Double? = nil, max hi: Double? = nil,
                                        exclusiveMin: Bool = false) throws(EngineError) -> Double? {
        guard has(key), raw(key) != nil else { asked.append(key); return nil }
        return try double(key, default: 0, min: lo, max: hi, exclusiveMin: exclusiveMin)
    }

    public mutating func bool(_ key: String, default d: Bool) throws(EngineError) -> Bool {
        guard let v = raw(key) else { return d }
        guard case let .bool(b) = v else { throw .invalid("\(path): \(key) must be true or false, got \(v.typeName)") }
        return b
    }

    public mutating func string(_ key: String, default d: String, oneOf allowed: [String]? = nil) throws(EngineError) -> String {
        guard let v = raw(key) else { return d }
        guard case let .string(s) = v else { throw .invalid("\(path): \(key) must be a string, got \(v.typeName)") }
        if let allowed, !allowed.contains(s) {
            throw .invalid("\(path): \(key) = \"\(s)\" is not one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        return s
    }

    public mutating func intArray(_ key: String, default d: [Int], min lo: Int? = nil, max hi: Int? = nil) throws(EngineError) -> [Int] {
        guard let v = raw(key) else { return d }
        guard case let .array(items) = v else { throw .invalid("\(path): \(key) must be an array of integers, got \(v.typeName)") }
        var out: [Int] = []
        for (i, item) in items.enumerated() {
            guard case let .number(x) = item, x == x.rounded(), abs(x) < 9.0e15 else {
                throw .invalid("\(path): \(key)[\(i)] must be an integer, got \(item.typeName)")
            }
            let n = Int(x)
            if let lo, n < lo { throw .invalid("\(path): \(key)[\(i)] = \(n) must be at least \(lo)") }
            if let hi, n > hi { throw .invalid("\(path): \(key)[\(i)] = \(n) must be at most \(hi)") }
            out.append(n)
        }
        return out
    }

    public mutating func stringArray(_ key: String, default d: [String]) throws(EngineError) -> [String] {
        guard let v = raw(key) else { return d }
        guard case let .array(items) = v else { throw .invalid("\(path): \(key) must be an array of strings, got \(v.typeName)") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case let .string(s) = item else { throw .invalid("\(path): \(key)[\(i)] must be a string, got \(item.typeName)") }
            out.append(s)
        }
        return out
    }

    /// A nested object (absent gives an empty one, so its own defaults apply).
    public mutating func object(_ key: String) throws(EngineError) -> JSONReader {
        guard let v = raw(key) else { return try JSONReader(.object([]), path: "\(path).\(key)") }
        return try JSONReader(v, path: "\(path).\(key)")
    }

    /// The raw value, for fields with their own decoding (arrays of objects).
    public mutating func value(_ key: String) -> JSON? { raw(key) }

    /// Call after reading every field: rejects keys that were never asked for (usually a typo).
    public func finish() throws(EngineError) {
        for (k, _) in fields where !asked.contains(k) {
            let known = asked.sorted().joined(separator: ", ")
            throw .invalid("\(path): unknown key '\(k)' (known keys: \(known))")
        }
    }
}

extension String {
    var trimmingSpaces: String {
        let s = unicodeScalars
        guard let a = s.firstIndex(where: { !$0.properties.isWhitespace }),
              let b = s.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(s[a...b])
    }
}
