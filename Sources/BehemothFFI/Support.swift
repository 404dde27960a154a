import CBehemoth
import Engine
#if canImport(Glibc)
import Glibc
#endif

// Every export runs its body through `exported`, which turns a thrown EngineError into a status code
// and a thread-local message. Nothing may trap here: a trap kills the caller's process (Python).

@inline(__always)
func exported(_ body: () throws(EngineError) -> Void) -> Int32 {
    do {
        try body()
        bh__clear_error()
        return BH_OK
    } catch {
        bh__set_error(error.message)
        return error.status.rawValue
    }
}

/// Like `exported`, for *_step calls that return BH_STEP or BH_DONE on success.
@inline(__always)
func exportedStep(_ body: () throws(EngineError) -> Int32) -> Int32 {
    do {
        let r = try body()
        bh__clear_error()
        return r
    } catch {
        bh__set_error(error.message)
        return error.status.rawValue
    }
}

/// Wraps a Swift object as an opaque C handle, and back.
enum Handle {
    static func make<T: AnyObject>(_ object: T) -> OpaquePointer {
        OpaquePointer(Unmanaged.passRetained(object).toOpaque())
    }
    static func get<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type, _ fn: String, _ what: String = "handle") throws(EngineError) -> T {
        guard let handle else { throw .invalid("\(fn): \(what) is NULL") }
        // A dynamic cast, so passing one kind of handle where another is expected is an error, not a crash.
        let object = Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
        guard let typed = object as? T else { throw .invalid("\(fn): \(what) is not a \(T.self) handle") }
        return typed
    }
    static func free<T: AnyObject>(_ handle: OpaquePointer?, _ type: T.Type) {
        guard let handle else { return }
        let object = Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(handle))
        guard object.takeUnretainedValue() is T else { return }  // the wrong kind of handle: leave it alone
        object.release()
    }
}

/// Checks a caller's C string: non-NULL and valid UTF-8.
func cString(_ p: UnsafePointer<CChar>?, _ fn: String, _ what: String) throws(EngineError) -> String {
    guard let p else { throw .invalid("\(fn): \(what) is NULL") }
    let n = strnlen(p, 1 << 28)
    guard n < 1 << 28 else { throw .invalid("\(fn): \(what) is not NUL-terminated within 256 MiB") }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: n)
    guard let s = String(validating: bytes, as: UTF8.self) else { throw .invalid("\(fn): \(what) is not valid UTF-8") }
    return s
}

/// Returns a library-owned copy of a string, freed with bh_string_free.
func returnString(_ s: String, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ fn: String) throws(EngineError) {
    guard let out else { throw .invalid("\(fn): output pointer is NULL") }
    guard let p = strdup(s) else { throw EngineError(.noMemory, "\(fn): out of memory for a \(s.utf8.count)-byte string") }
    out.pointee = p
}

/// Clears an out-handle first, so it is NULL on every failure path.
func clearOut(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ fn: String) throws(EngineError) -> UnsafeMutablePointer<OpaquePointer?> {
    guard let out else { throw .invalid("\(fn): output handle pointer is NULL") }
    out.pointee = nil
    return out
}

/// The buffer convention of behemoth.h for an output of `total` elements computed on demand:
/// *count = total; a NULL buffer with capacity 0 is a size query (body not run); a buffer smaller
/// than total is BH_ERR_BUFFER_TOO_SMALL; else `body` fills the buffer.
func withOutputBuffer<T>(_ buffer: UnsafeMutablePointer<T>?, _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?, total: Int,
                         _ fn: String, _ body: (UnsafeMutablePointer<T>) throws(EngineError) -> Void) throws(EngineError) {
    guard let count else { throw .invalid("\(fn): count pointer is NULL") }
    count.pointee = Int64(total)
    guard capacity >= 0 else { throw .invalid("\(fn): capacity = \(capacity) is negative") }
    guard let buffer else {
        guard capacity == 0 else { throw .invalid("\(fn): buffer is NULL but capacity is \(capacity)") }
        return  // a size query
    }
    guard capacity >= Int64(total) else {
        throw EngineError(.bufferTooSmall, "\(fn): buffer holds \(capacity) elements but \(total) are needed")
    }
    try body(buffer)
}

/// The buffer convention for an output that already exists: report the count, copy if it fits.
func copyOut<T>(_ source: UnsafeBufferPointer<T>, _ buffer: UnsafeMutablePointer<T>?, _ capacity: Int64,
                _ count: UnsafeMutablePointer<Int64>?, _ fn: String) throws(EngineError) {
    try withOutputBuffer(buffer, capacity, count, total: source.count, fn) { (out: UnsafeMutablePointer<T>) throws(EngineError) in
        if source.count > 0, let base = source.baseAddress { out.update(from: base, count: source.count) }
    }
}

func copyOut<T>(_ source: [T], _ buffer: UnsafeMutablePointer<T>?, _ capacity: Int64,
                _ count: UnsafeMutablePointer<Int64>?, _ fn: String) throws(EngineError) {
    try source.withUnsafeBufferPointer { (b: UnsafeBufferPointer<T>) throws(EngineError) in
        try copyOut(b, buffer, capacity, count, fn)
    }
}

/// Checks a caller's input array pointer and element count.
func inputBuffer<T>(_ p: UnsafePointer<T>?, _ n: Int64, _ fn: String, _ what: String, max: Int64 = 1 << 40) throws(EngineError) -> UnsafeBufferPointer<T> {
    guard n >= 0 else { throw .invalid("\(fn): \(what) count = \(n) is negative") }
    guard n <= max else { throw .invalid("\(fn): \(what) count = \(n) is larger than \(max)") }
    if n == 0 { return UnsafeBufferPointer(start: nil, count: 0) }
    guard let p else { throw .invalid("\(fn): \(what) is NULL but its count is \(n)") }
    return UnsafeBufferPointer(start: p, count: Int(n))
}
