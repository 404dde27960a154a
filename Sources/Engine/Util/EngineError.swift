/// The one error type the engine throws. `status` is the C API's status code (behemoth.h);
/// `message` says what was wrong and where, e.g. "dataset spec: subjects = -5 must be at least 1".
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public enum Status: Int32, Sendable {
        case invalid = 1, misuse = 2, io = 3, format = 4, numeric = 5, cancelled = 6
        case bufferTooSmall = 7, noMemory = 8, internalError = 9
    }
    public let status: Status
    public let message: String

    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }

    public static func invalid(_ m: String) -> EngineError { EngineError(.invalid, m) }
    public static func misuse(_ m: String) -> EngineError { EngineError(.misuse, m) }
    public static func io(_ m: String) -> EngineError { EngineError(.io, m) }
    public static func format(_ m: String) -> EngineError { EngineError(.format, m) }
    public static func numeric(_ m: String) -> EngineError { EngineError(.numeric, m) }
    public static func cancelled(_ m: String) -> EngineError { EngineError(.cancelled, m) }
    public static func internalError(_ m: String) -> EngineError { EngineError(.internalError, m) }
}

/// Multiplies counts from specs without trapping on overflow.
public func checkedProduct(_ values: [Int], what: String, limit: Int = Int.max) throws(EngineError) -> Int {
    var p = 1
    for v in values {
        let (r, o) = p.multipliedReportingOverflow(by: v)
        if o || r > limit { throw .invalid("\(what) is too large (\(values.map(String.init).joined(separator: " x ")) exceeds \(limit))") }
        p = r
    }
    return p
}

/// Values a caller gives for weights must be finite: the first that is not is named.
public func checkFinite(_ values: UnsafeBufferPointer<Float>, _ fn: String) throws(EngineError) {
    for (i, x) in values.enumerated() where !x.isFinite { throw .invalid("\(fn): values[\(i)] = \(x) is not finite") }
}
