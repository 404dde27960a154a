import CHDF5
#if canImport(Glibc)
import Glibc
#endif

/// Element types we store. Files are little-endian IEEE/two's complement, as h5py writes them.
public protocol H5Scalar {
    static var h5Memory: hid_t { get }
    static var h5File: hid_t { get }
    static var h5Name: String { get }
}
extension Float: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_float() }
    public static var h5File: hid_t { chdf5_ieee_f32le() }
    public static var h5Name: String { "float32" }
}
extension Double: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_double() }
    public static var h5File: hid_t { chdf5_native_double() }
    public static var h5Name: String { "float64" }
}
extension Int32: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_int32() }
    public static var h5File: hid_t { chdf5_std_i32le() }
    public static var h5Name: String { "int32" }
}
extension Int64: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_int64() }
    public static var h5File: hid_t { chdf5_std_i64le() }
    public static var h5Name: String { "int64" }
}
extension UInt8: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_uint8() }
    public static var h5File: hid_t { chdf5_std_u8le() }
    public static var h5Name: String { "uint8" }
}
extension Int8: H5Scalar {
    public static var h5Memory: hid_t { chdf5_native_int8() }
    public static var h5File: hid_t { chdf5_std_i8le() }
    public static var h5Name: String { "int8" }
}

/// HDF5's serial library is not thread-safe: every call goes through this one recursive lock.
private final class H5Lock: @unchecked Sendable {
    var mutex = pthread_mutex_t()
    init() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(&mutex, &attr)
        pthread_mutexattr_destroy(&attr)
        H5open()
        H5Eset_auto2(chdf5_e_default(), nil, nil)  // errors come back through our status codes
    }
}
private let h5Lock = H5Lock()

@inline(__always)
func withH5<T>(_ body: () throws(EngineError) -> T) throws(EngineError) -> T {
    pthread_mutex_lock(&h5Lock.mutex)
    defer { pthread_mutex_unlock(&h5Lock.mutex) }
    // Automatic error printing is a per-thread setting in some HDF5 builds: silence it on every
    // calling thread; errors come back through our status codes.
    H5Eset_auto2(chdf5_e_default(), nil, nil)
    return try body()
}

/// File-access properties without HDF5's advisory file locks: our writes go to a temporary file
/// renamed into place, so locks add nothing, and they break when a child process inherits them.
private func unlockedAccess() -> hid_t {
    let fapl = H5Pcreate(chdf5_p_file_access())
    if fapl >= 0 { H5Pset_file_locking(fapl, false, true) }
    return fapl
}

/// An open HDF5 file. Paths inside it are "/group/dataset". Writes of whole files go through
/// `H5File.writeAtomically`, so a crash never leaves a half-written file where a good one was.
public final class H5File {
    public let path: String
    private var id: hid_t

    private init(path: String, id: hid_t) { self.path = path; self.id = id }

    deinit { close() }

    public func close() {
        if id >= 0 { _ = try? withH5 { () throws(EngineError) in H5Fclose(id) }; id = -1 }
    }

    /// Creates (truncates) a file.
    public static func create(_ path: String) throws(EngineError) -> H5File {
        try withH5 { () throws(EngineError) -> H5File in
            let fapl = unlockedAccess()
            defer { if fapl >= 0 { H5Pclose(fapl) } }
            let fid = H5Fcreate(path, chdf5_f_acc_trunc(), chdf5_p_default(), fapl >= 0 ? fapl : chdf5_p_default())
            guard fid >= 0 else { throw .io("cannot create HDF5 file \(path) (does the folder exist and is it writable?)") }
            return H5File(path: path, id: fid)
        }
    }

    /// Opens an existing file; a missing file is an I/O error, a foreign or damaged one a format error.
    public static func open(_ path: String, writable: Bool = false) throws(EngineError) -> H5File {
        try withH5 { () throws(EngineError) -> H5File in
            guard FileSystem.exists(path) else { throw .io("no such file: \(path)") }
            guard !FileSystem.isDirectory(path) else { throw .io("\(path) is a folder, not an HDF5 file") }
            let isH5 = H5Fis_hdf5(path)
            guard isH5 > 0 else { throw .format("\(path) is not an HDF5 file (or is truncated)") }
            let fapl = unlockedAccess()
            defer { if fapl >= 0 { H5Pclose(fapl) } }
            let fid = H5Fopen(path, writable ? chdf5_f_acc_rdwr() : chdf5_f_acc_rdonly(), fapl >= 0 ? fapl : chdf5_p_default())
            guard fid >= 0 else { throw .format("cannot open \(path) as HDF5: the file is damaged or truncated") }
            return H5File(path: path, id: fid)
        }
    }

    /// Creates `path` through a temporary file: `fill` writes into it, then it is renamed into place.
    public static func writeAtomically(_ path: String, _ fill: (H5File) throws(EngineError) -> Void) throws(EngineError) {
        try FileSystem.atomically(path) { (tmp: String) throws(EngineError) in
            let f = try H5File.create(tmp)
            try fill(f)
            try withH5 { () throws(EngineError) in
                if H5Fflush(f.id, H5F_SCOPE_GLOBAL) < 0 { throw .io("cannot flush \(tmp)") }
            }
            f.close()
        }
    }

    // MARK: groups and links

    public func exists(_ objectPath: String) -> Bool {
        (try? withH5 { () throws(EngineError) -> Bool in
            var prefix = ""
            for part in objectPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, chdf5_p_default()) <= 0 { return false }
            }
            return true
        }) ?? false
    }

    public func createGroup(_ groupPath: String) throws(EngineError) {
        try withH5 { () throws(EngineError) in
            var prefix = ""
            for part in groupPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, chdf5_p_default()) > 0 { continue }
                let g = H5Gcreate2(id, prefix, chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
                guard g >= 0 else { throw .io("\(path): cannot create group \(prefix)") }
                H5Gclose(g)
            }
        }
    }

    /// Names of the links directly inside a group, sorted.
    public func children(_ groupPath: String) throws(EngineError) -> [String] {
        try withH5 { () throws(EngineError) -> [String] in
            let g = H5Gopen2(id, groupPath, chdf5_p_default())
            guard g >= 0 else { throw .format("\(path): missing group \(groupPath)") }
            defer { H5Gclose(g) }
            var info = H5G_info_t()
            guard H5Gget_info(g, &info) >= 0 else { throw .format("\(path): cannot list \(groupPath)") }
            var names: [String] = []
            for i in 0..<info.nlinks {
                let n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, chdf5_p_default())
                guard n >= 0 else { continue }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, buf.count, chdf5_p_default())
                names.append(String(cString: buf))
            }
            return names.sorted()
        }
    }

    private func ensureParent(_ objectPath: String) throws(EngineError) {
        let parts = objectPath.split(separator: "/")
        if parts.count > 1 { try createGroup(parts.dropLast().joined(separator: "/")) }
    }

    // MARK: datasets

    /// Writes a row-major array with the given shape (the product must equal data.count).
    public func write<T: H5Scalar>(_ objectPath: String, _ data: [T], shape: [Int]? = nil) throws(EngineError) {
        try data.withUnsafeBufferPointer { (b: UnsafeBufferPointer<T>) throws(EngineError) in
            try write(objectPath, b, shape: shape)
        }
    }

    public func write<T: H5Scalar>(_ objectPath: String, _ data: UnsafeBufferPointer<T>, shape: [Int]? = nil) throws(EngineError) {
        let dims = shape ?? [data.count]
        guard dims.reduce(1, *) == data.count else {
            throw .internalError("HDF5 write \(objectPath): shape \(dims) does not hold \(data.count) values")
        }
        try ensureParent(objectPath)
        try withH5 { () throws(EngineError) in
            var hdims = dims.map { hsize_t($0) }
            let space = H5Screate_simple(Int32(hdims.count), &hdims, nil)
            guard space >= 0 else { throw .io("\(path): cannot create dataspace for \(objectPath)") }
            defer { H5Sclose(space) }
            let ds = H5Dcreate2(id, objectPath, T.h5File, space, chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
            guard ds >= 0 else { throw .io("\(path): cannot create dataset \(objectPath)") }
            defer { H5Dclose(ds) }
            if data.count > 0, H5Dwrite(ds, T.h5Memory, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), data.baseAddress) < 0 {
                throw .io("\(path): cannot write dataset \(objectPath) (disk full?)")
            }
        }
    }

    /// Shape of a dataset, or a format error naming it if it is missing.
    public func shape(_ objectPath: String) throws(EngineError) -> [Int] {
        try withH5 { () throws(EngineError) -> [Int] in
            guard exists(objectPath) else { throw .format("\(path): missing dataset \(objectPath)") }
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .format("\(path): \(objectPath) is not a dataset") }
            defer { H5Dclose(ds) }
            let space = H5Dget_space(ds)
            guard space >= 0 else { throw .format("\(path): cannot read the shape of \(objectPath)") }
            defer { H5Sclose(space) }
            let rank = H5Sget_simple_extent_ndims(space)
            guard rank >= 0 else { throw .format("\(path): bad dataspace for \(objectPath)") }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            H5Sget_simple_extent_dims(space, &dims, nil)
            return dims.map { Int($0) }
        }
    }

    /// Reads a whole dataset, converting to T when the stored type is a compatible number type.
    public func read<T: H5Scalar>(_ objectPath: String, as: T.Type = T.self) throws(EngineError) -> (data: [T], shape: [Int]) {
        try withH5 { () throws(EngineError) -> ([T], [Int]) in
            let dims = try shape(objectPath)
            let (count, overflow) = dims.reduce((1, false)) { acc, d in
                let (r, o) = acc.0.multipliedReportingOverflow(by: d); return (r, acc.1 || o)
            }
            guard !overflow, count < (1 << 34) else { throw .format("\(path): \(objectPath) is implausibly large \(dims)") }
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .format("\(path): cannot open \(objectPath)") }
            defer { H5Dclose(ds) }
            let ftype = H5Dget_type(ds)
            defer { H5Tclose(ftype) }
            let cls = H5Tget_class(ftype)
            let wantFloat = T.self == Float.self || T.self == Double.self
            guard cls == (wantFloat ? H5T_FLOAT : H5T_INTEGER) else {
                throw .format("\(path): \(objectPath) holds \(cls == H5T_FLOAT ? "floats" : cls == H5T_INTEGER ? "integers" : "non-numeric data"), expected \(T.h5Name)")
            }
            var out = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
            if count > 0 {
                let status = out.withUnsafeMutableBytes { H5Dread(ds, T.h5Memory, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress) }
                guard status >= 0 else { throw .format("\(path): cannot read \(objectPath): the file is damaged or truncated") }
            }
            return (out, dims)
        }
    }

    // MARK: attributes

    private func withObject<T>(_ objectPath: String, _ body: (hid_t) throws(EngineError) -> T) throws(EngineError) -> T {
        try withH5 { () throws(EngineError) -> T in
            let obj = H5Oopen(id, objectPath, chdf5_p_default())
            guard obj >= 0 else { throw .format("\(path): missing object \(objectPath)") }
            defer { H5Oclose(obj) }
            return try body(obj)
        }
    }

    public func setAttribute(_ name: String, string value: String, at objectPath: String = "/") throws(EngineError) {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) in
            if H5Aexists(obj, name) > 0 { H5Adelete(obj, name) }
            let type = H5Tcopy(chdf5_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, chdf5_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(obj, name, type, space, chdf5_p_default(), chdf5_p_default())
            guard attr >= 0 else { throw .io("\(path): cannot create attribute \(name)") }
            defer { H5Aclose(attr) }
            let status = value.withCString { (c: UnsafePointer<CChar>) -> herr_t in
                var p: UnsafePointer<CChar>? = c
                return H5Awrite(attr, type, &p)
            }
            guard status >= 0 else { throw .io("\(path): cannot write attribute \(name)") }
        }
    }

    public func setAttribute(_ name: String, int value: Int64, at objectPath: String = "/") throws(EngineError) {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) in
            if H5Aexists(obj, name) > 0 { H5Adelete(obj, name) }
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(obj, name, chdf5_std_i64le(), space, chdf5_p_default(), chdf5_p_default())
            guard attr >= 0 else { throw .io("\(path): cannot create attribute \(name)") }
            defer { H5Aclose(attr) }
            var v = value
            guard H5Awrite(attr, chdf5_native_int64(), &v) >= 0 else { throw .io("\(path): cannot write attribute \(name)") }
        }
    }

    public func hasAttribute(_ name: String, at objectPath: String = "/") -> Bool {
        (try? withObject(objectPath) { (obj: hid_t) throws(EngineError) -> Bool in H5Aexists(obj, name) > 0 }) ?? false
    }

    /// Reads a string attribute (variable- or fixed-length, as h5py may write either).
    public func stringAttribute(_ name: String, at objectPath: String = "/") throws(EngineError) -> String {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) -> String in
            guard H5Aexists(obj, name) > 0 else { throw .format("\(path): missing attribute '\(name)' on \(objectPath)") }
            let attr = H5Aopen(obj, name, chdf5_p_default())
            guard attr >= 0 else { throw .format("\(path): cannot open attribute \(name)") }
            defer { H5Aclose(attr) }
            let ftype = H5Aget_type(attr)
            defer { H5Tclose(ftype) }
            guard H5Tget_class(ftype) == H5T_STRING else { throw .format("\(path): attribute \(name) is not a string") }
            let space = H5Aget_space(attr)
            defer { H5Sclose(space) }
            guard H5Sget_simple_extent_npoints(space) == 1 else { throw .format("\(path): attribute \(name) is not a single string") }
            if H5Tis_variable_str(ftype) > 0 {
                let mtype = H5Tcopy(chdf5_c_s1())
                defer { H5Tclose(mtype) }
                H5Tset_size(mtype, chdf5_variable())
                H5Tset_cset(mtype, H5Tget_cset(ftype))
                var p: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(attr, mtype, &p) >= 0 else { throw .format("\(path): cannot read attribute \(name)") }
                defer { if let p { H5free_memory(p) } }
                return p.map { String(cString: $0) } ?? ""
            } else {
                let size = H5Tget_size(ftype)
                guard size > 0, size < (1 << 30) else { throw .format("\(path): attribute \(name) has a bad size") }
                var buf = [CChar](repeating: 0, count: size + 1)
                guard H5Aread(attr, ftype, &buf) >= 0 else { throw .format("\(path): cannot read attribute \(name)") }
                return String(cString: buf)
            }
        }
    }

    public func intAttribute(_ name: String, at objectPath: String = "/") throws(EngineError) -> Int64 {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) -> Int64 in
            guard H5Aexists(obj, name) > 0 else { throw .format("\(path): missing attribute '\(name)' on \(objectPath)") }
            let attr = H5Aopen(obj, name, chdf5_p_default())
            guard attr >= 0 else { throw .format("\(path): cannot open attribute \(name)") }
            defer { H5Aclose(attr) }
            let ftype = H5Aget_type(attr)
            defer { H5Tclose(ftype) }
            guard H5Tget_class(ftype) == H5T_INTEGER else { throw .format("\(path): attribute \(name) is not an integer") }
            var v: Int64 = 0
            guard H5Aread(attr, chdf5_native_int64(), &v) >= 0 else { throw .format("\(path): cannot read attribute \(name)") }
            return v
        }
    }

    /// Checks the root `format` and `format_version` attributes every Behemoth file carries.
    public func checkFormat(_ expected: String, maxVersion: Int64) throws(EngineError) -> Int64 {
        guard hasAttribute("format") else {
            throw .format("\(path) is not a Behemoth file (no 'format' attribute; expected format = \(expected))")
        }
        let f = try stringAttribute("format")
        guard f == expected else { throw .format("\(path) has format = \(f), expected \(expected)") }
        let v = try intAttribute("format_version")
        guard v >= 1, v <= maxVersion else {
            throw .format("\(path) has \(expected) format_version \(v); this library reads versions 1 to \(maxVersion)")
        }
        return v
    }

    /// Stamps the root attributes every Behemoth file carries.
    public func stampFormat(_ format: String, version: Int64, spec: String) throws(EngineError) {
        try setAttribute("format", string: format)
        try setAttribute("format_version", int: version)
        try setAttribute("spec", string: spec)
        try setAttribute("library_version", string: Version.string)
        try setAttribute("layout", string: "row-major (C order); Julia's HDF5.jl shows dimensions reversed")
    }
}
