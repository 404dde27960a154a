/// Content digests: what a dataset, a model or an edit file holds, as one 64-bit XXH64 value written
/// "xxh64:<16 hex digits>". It is stored as the root attribute `digest` of every file, checked on
/// load (a hand-edited spec or swapped arrays no longer load silently), and is the key later caches
/// use. The stream it hashes is canonical (docs/formats.md, "Content digest"):
///
///     "behemoth-digest-1\0" format "\0" spec "\0"
///     then for each array, in byte order of its path: path "\0" dtype "\0" rank shape... data
///
/// with rank and shape as little-endian int64 and data as the array's little-endian bytes. It does
/// not depend on the HDF5 layout, so a file and the object in memory give the same digest.
public struct ContentDigest {
    private var state: XXH64

    public init(format: String, spec: String) {
        state = XXH64(seed: 0)
        add("behemoth-digest-1"); add(format); add(spec)
    }

    private mutating func add(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0)
        state.update(bytes)
    }

    public mutating func addArray<T>(_ path: String, dtype: String, shape: [Int], _ data: UnsafeBufferPointer<T>) {
        beginArray(path, dtype: dtype, shape: shape)
        addData(UnsafeRawBufferPointer(data))
    }

    /// An array in pieces (a large file read slab by slab): the header, then its bytes in order.
    public mutating func beginArray(_ path: String, dtype: String, shape: [Int]) {
        add(path); add(dtype)
        let header: [Int64] = [Int64(shape.count)] + shape.map { Int64($0) }
        header.withUnsafeBytes { state.update($0) }
    }

    public mutating func addData(_ bytes: UnsafeRawBufferPointer) { state.update(bytes) }

    public mutating func addArray<T>(_ path: String, dtype: String, shape: [Int], _ data: [T]) {
        data.withUnsafeBufferPointer { addArray(path, dtype: dtype, shape: shape, $0) }
    }

    /// "xxh64:" and 16 lower-case hex digits.
    public func finish() -> String {
        let v = state.digest()
        let hex = String(v, radix: 16)
        return "xxh64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit), streaming. Checked against the published test vectors.
public struct XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v: (UInt64, UInt64, UInt64, UInt64)
    private let seed: UInt64
    private var total: UInt64 = 0
    private var buffer = [UInt8](repeating: 0, count: 32)
    private var buffered = 0

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v = (seed &+ XXH64.p1 &+ XXH64.p2, seed &+ XXH64.p2, seed, seed &- XXH64.p1)
    }

    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        let a = acc &+ input &* p2
        return ((a << 31) | (a >> 33)) &* p1
    }

    @inline(__always) private static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    @inline(__always) private static func load64(_ p: UnsafeRawPointer, _ i: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }

    /// Consumes 32-byte stripes from p[0..<n]; returns how many bytes it used.
    private mutating func stripes(_ p: UnsafeRawPointer, _ n: Int) -> Int {
        var (a, b, c, d) = v
        var i = 0
        while i + 32 <= n {
            a = XXH64.round(a, XXH64.load64(p, i)); b = XXH64.round(b, XXH64.load64(p, i + 8))
            c = XXH64.round(c, XXH64.load64(p, i + 16)); d = XXH64.round(d, XXH64.load64(p, i + 24))
            i += 32
        }
        v = (a, b, c, d)
        return i
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var p = base, n = bytes.count
        total &+= UInt64(n)
        if buffered > 0 {
            let take = min(32 - buffered, n)
            buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: buffered).copyMemory(from: p, byteCount: take) }
            buffered += take; p += take; n -= take
            if buffered < 32 { return }
            let full = buffer  // a copy: stripes() mutates self while it reads the bytes
            full.withUnsafeBytes { _ = stripes($0.baseAddress!, 32) }
            buffered = 0
        }
        let used = stripes(p, n)
        p += used; n -= used
        if n > 0 {
            buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            buffered = n
        }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public func digest() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            let (a, b, c, d) = v
            h = ((a << 1) | (a >> 63)) &+ ((b << 7) | (b >> 57)) &+ ((c << 12) | (c >> 52)) &+ ((d << 18) | (d >> 46))
            h = XXH64.merge(h, a); h = XXH64.merge(h, b); h = XXH64.merge(h, c); h = XXH64.merge(h, d)
        } else {
            h = seed &+ XXH64.p5
        }
        h &+= total
        buffer.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let p = raw.baseAddress!
            var i = 0
            while i + 8 <= buffered {
                let k = XXH64.round(0, XXH64.load64(p, i))
                h ^= k
                h = ((h << 27) | (h >> 37)) &* XXH64.p1 &+ XXH64.p4
                i += 8
            }
            if i + 4 <= buffered {
                h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* XXH64.p1
                h = ((h << 23) | (h >> 41)) &* XXH64.p2 &+ XXH64.p3
                i += 4
            }
            while i < buffered {
                h ^= UInt64(raw[i]) &* XXH64.p5
                h = ((h << 11) | (h >> 53)) &* XXH64.p1
                i += 1
            }
        }
        h ^= h >> 33; h = h &* XXH64.p2
        h ^= h >> 29; h = h &* XXH64.p3
        h ^= h >> 32
        return h
    }
}
