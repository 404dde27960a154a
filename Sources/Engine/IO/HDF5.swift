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
    /// The largest string attribute written or read (specs are capped at 16 MB, JSON.maxInputBytes).
    public static let maxStringAttributeBytes = 16 << 20
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
            // Checksummed superblock and object headers: a damaged header is refused, not followed.
            guard fapl >= 0, chdf5_set_libver_v110(fapl) >= 0 else { throw .io("cannot set up HDF5 file access for \(path)") }
            let fcpl = H5Pcreate(chdf5_p_file_create())
            defer { if fcpl >= 0 { H5Pclose(fcpl) } }
            guard fcpl >= 0, chdf5_set_compact_storage(fcpl, 1) >= 0 else { throw .io("cannot set up HDF5 file creation for \(path)") }
            let fid = H5Fcreate(path, chdf5_f_acc_trunc(), fcpl, fapl >= 0 ? fapl : chdf5_p_default())
            guard fid >= 0 else { throw .io("cannot create HDF5 file \(path) (does the folder exist and is it writable?)") }
            return H5File(path: path, id: fid)
        }
    }

    /// Opens an existing file; a missing file is an I/O error, a foreign or damaged one a format error.
    /// A file in HDF5's unchecksummed layout (format version 1) is first copied into the checksummed
    /// one by the `behemoth` tool in a separate process (LegacyFiles.swift), so damage in it can
    /// never reach this process.
    public static func open(_ path: String, writable: Bool = false) throws(EngineError) -> H5File {
        if !writable, !LegacyFiles.inChild, !FileSystem.isDirectory(path), LegacyFiles.isLegacy(path) {
            let copy = try LegacyFiles.upgradeInChild(path)
            defer { unlink(copy) }  // the open handle keeps the data; nothing is left behind
            let f = try openChecked(copy, writable: false)
            return H5File(path: path, id: f.takeID())
        }
        return try openChecked(path, writable: writable)
    }

    private func takeID() -> hid_t { let i = id; id = -1; return i }

    private static func openChecked(_ path: String, writable: Bool) throws(EngineError) -> H5File {
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
            // Every Behemoth file carries the digest of what it holds, computed from the file as written.
            if f.hasAttribute("format") {
                try f.setAttribute("digest", string: try f.computeDigest())
                try f.setAttribute("file_digest", string: try f.computeFileDigest())
            }
            try withH5 { () throws(EngineError) in
                if H5Fflush(f.id, H5F_SCOPE_GLOBAL) < 0 { throw .io("cannot flush \(tmp)") }
            }
            f.close()
        }
    }

    // MARK: groups and links

    public func exists(_ objectPath: String) -> Bool {
        (try? existsChecked(objectPath)) ?? false
    }

    /// Like `exists`, but an HDF5 error (a damaged link table) is a format error, not "absent".
    public func existsChecked(_ objectPath: String) throws(EngineError) -> Bool {
        try withH5 { () throws(EngineError) -> Bool in
            var prefix = ""
            for part in objectPath.split(separator: "/") {
                prefix += "/" + part
                let r = H5Lexists(id, prefix, chdf5_p_default())
                if r < 0 { throw .format("\(path): cannot look up \(prefix): the file is damaged") }
                if r == 0 { return false }
            }
            return true
        }
    }

    /// The file's size in bytes, as HDF5 sees it.
    public func fileSize() throws(EngineError) -> Int {
        try withH5 { () throws(EngineError) -> Int in
            var size: hsize_t = 0
            guard H5Fget_filesize(id, &size) >= 0, let n = Int(exactly: size) else { throw .format("\(path): cannot read the file's size") }
            return n
        }
    }

    public func createGroup(_ groupPath: String) throws(EngineError) {
        try withH5 { () throws(EngineError) in
            var prefix = ""
            for part in groupPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, chdf5_p_default()) > 0 { continue }
                let gcpl = H5Pcreate(chdf5_p_group_create())
                defer { if gcpl >= 0 { H5Pclose(gcpl) } }
                guard gcpl >= 0, chdf5_set_compact_storage(gcpl, 1) >= 0 else { throw .io("\(path): cannot set up group \(prefix)") }
                let g = H5Gcreate2(id, prefix, chdf5_p_default(), gcpl, chdf5_p_default())
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
            // Behemoth writes every group compact (links in the checksummed header); dense storage
            // is unchecked and crash-prone in libhdf5, so it is refused (old layouts: the tool reads them).
            guard LegacyFiles.inChild || info.storage_type == H5G_STORAGE_TYPE_COMPACT else {
                throw .format("\(path): group \(groupPath) keeps its links in dense storage, which Behemoth files never use")
            }
            guard info.nlinks <= 100_000 else { throw .format("\(path): \(groupPath) claims \(info.nlinks) members") }
            var names: [String] = []
            for i in 0..<info.nlinks {
                let n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, chdf5_p_default())
                guard n >= 0, n < 4096 else { throw .format("\(path): a bad link name in \(groupPath)") }
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
            // Non-empty arrays are chunked with the Fletcher-32 filter, which HDF5 verifies on every read.
            let dcpl = H5Pcreate(chdf5_p_dataset_create())
            guard dcpl >= 0, chdf5_set_compact_storage(dcpl, 0) >= 0 else { throw .io("\(path): cannot create dataset properties for \(objectPath)") }
            defer { H5Pclose(dcpl) }
            if data.count > 0 {
                var chunk = H5File.chunkShape(dims, elementSize: MemoryLayout<T>.size).map { hsize_t($0) }
                guard H5Pset_chunk(dcpl, Int32(chunk.count), &chunk) >= 0, H5Pset_fletcher32(dcpl) >= 0 else {
                    throw .io("\(path): cannot set chunking and checksums for \(objectPath)")
                }
            }
            let ds = H5Dcreate2(id, objectPath, T.h5File, space, chdf5_p_default(), dcpl, chdf5_p_default())
            guard ds >= 0 else { throw .io("\(path): cannot create dataset \(objectPath)") }
            defer { H5Dclose(ds) }
            if data.count > 0, H5Dwrite(ds, T.h5Memory, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), data.baseAddress) < 0 {
                throw .io("\(path): cannot write dataset \(objectPath) (disk full?)")
            }
        }
    }

    /// Creates an empty dataset of rows [0, rowShape...] that grows along its first axis (appendRows):
    /// chunks of `chunkRows` rows, Fletcher-32 checked, like every other array.
    public func createExtendable<T: H5Scalar>(_ objectPath: String, rowShape: [Int], chunkRows: Int, as: T.Type = T.self) throws(EngineError) {
        guard rowShape.allSatisfy({ $0 >= 1 }), chunkRows >= 1 else { throw .internalError("HDF5 \(objectPath): bad row shape \(rowShape)") }
        try ensureParent(objectPath)
        try withH5 { () throws(EngineError) in
            var dims = [hsize_t(0)] + rowShape.map { hsize_t($0) }
            var maxDims = [hsize_t.max] + rowShape.map { hsize_t($0) }   // H5S_UNLIMITED on the first axis
            let space = H5Screate_simple(Int32(dims.count), &dims, &maxDims)
            guard space >= 0 else { throw .io("\(path): cannot create dataspace for \(objectPath)") }
            defer { H5Sclose(space) }
            let dcpl = H5Pcreate(chdf5_p_dataset_create())
            guard dcpl >= 0 else { throw .io("\(path): cannot create dataset properties for \(objectPath)") }
            defer { H5Pclose(dcpl) }
            var chunk = [hsize_t(chunkRows)] + rowShape.map { hsize_t($0) }
            guard H5Pset_chunk(dcpl, Int32(chunk.count), &chunk) >= 0, H5Pset_fletcher32(dcpl) >= 0 else {
                throw .io("\(path): cannot set chunking and checksums for \(objectPath)")
            }
            let ds = H5Dcreate2(id, objectPath, T.h5File, space, chdf5_p_default(), dcpl, chdf5_p_default())
            guard ds >= 0 else { throw .io("\(path): cannot create dataset \(objectPath)") }
            H5Dclose(ds)
        }
    }

    /// Appends `rows` rows (row-major, rows × the row shape values) to an extendable dataset.
    public func appendRows<T: H5Scalar>(_ objectPath: String, _ data: UnsafeBufferPointer<T>, rows: Int) throws(EngineError) {
        var dims = try shape(objectPath).map { hsize_t($0) }
        let rowSize = dims.dropFirst().reduce(1) { $0 * Int($1) }
        guard rows >= 1, data.count == rows * rowSize else { throw .internalError("HDF5 append \(objectPath): \(data.count) values for \(rows) rows of \(rowSize)") }
        try withH5 { () throws(EngineError) in
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .io("\(path): cannot open \(objectPath)") }
            defer { H5Dclose(ds) }
            var start = [hsize_t](repeating: 0, count: dims.count)
            start[0] = dims[0]
            dims[0] += hsize_t(rows)
            guard H5Dset_extent(ds, &dims) >= 0 else { throw .io("\(path): cannot extend \(objectPath) to \(dims[0]) rows (disk full?)") }
            let fileSpace = H5Dget_space(ds)
            guard fileSpace >= 0 else { throw .io("\(path): cannot get the dataspace of \(objectPath)") }
            defer { H5Sclose(fileSpace) }
            var count = dims
            count[0] = hsize_t(rows)
            guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil) >= 0 else { throw .io("\(path): cannot select rows of \(objectPath)") }
            let memSpace = H5Screate_simple(Int32(count.count), &count, nil)
            guard memSpace >= 0 else { throw .io("\(path): cannot create a memory dataspace") }
            defer { H5Sclose(memSpace) }
            if H5Dwrite(ds, T.h5Memory, memSpace, fileSpace, chdf5_p_default(), data.baseAddress) < 0 {
                throw .io("\(path): cannot write rows of \(objectPath) (disk full?)")
            }
        }
    }

    /// Rows start..<start+count of a dataset (along its first axis), checked against its shape.
    public func readRows<T: H5Scalar>(_ objectPath: String, start: Int, count n: Int, as: T.Type = T.self) throws(EngineError) -> [T] {
        let dims = try shape(objectPath)
        guard dims.count >= 1, start >= 0, n >= 0, start + n <= dims[0] else {
            throw .invalid("\(path): rows \(start)..<\(start + n) of \(objectPath), which has shape \(dims)")
        }
        let rowSize = dims.dropFirst().reduce(1, *)
        let (total, overflow) = n.multipliedReportingOverflow(by: rowSize)
        guard !overflow, total <= 1 << 31 else { throw .invalid("\(path): \(n) rows of \(objectPath) are too many to read at once") }
        var out = [T](unsafeUninitializedCapacity: total) { _, k in k = total }
        if total == 0 { return out }
        try withH5 { () throws(EngineError) in
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .format("\(path): cannot open \(objectPath)") }
            defer { H5Dclose(ds) }
            let fileSpace = H5Dget_space(ds)
            guard fileSpace >= 0 else { throw .format("\(path): cannot get the dataspace of \(objectPath)") }
            defer { H5Sclose(fileSpace) }
            var s = [hsize_t](repeating: 0, count: dims.count); s[0] = hsize_t(start)
            var c = dims.map { hsize_t($0) }; c[0] = hsize_t(n)
            guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &s, nil, &c, nil) >= 0 else { throw .format("\(path): cannot select rows of \(objectPath)") }
            let memSpace = H5Screate_simple(Int32(c.count), &c, nil)
            guard memSpace >= 0 else { throw .io("\(path): cannot create a memory dataspace") }
            defer { H5Sclose(memSpace) }
            let status = out.withUnsafeMutableBytes { H5Dread(ds, T.h5Memory, memSpace, fileSpace, chdf5_p_default(), $0.baseAddress) }
            guard status >= 0 else { throw .format("\(path): cannot read rows of \(objectPath): the data is damaged (checksum)") }
        }
        return out
    }

    /// Chunks of at most about 1 MiB: whole trailing rows where they fit, so a read touches few chunks.
    static func chunkShape(_ dims: [Int], elementSize: Int, target: Int = 1 << 20) -> [Int] {
        var chunk = dims.map { max($0, 1) }
        var bytes = chunk.reduce(elementSize, *)
        var axis = 0
        while bytes > target, axis < chunk.count {
            let rowBytes = bytes / chunk[axis]
            chunk[axis] = max(1, target / max(rowBytes, 1))
            bytes = rowBytes * chunk[axis]
            axis += 1
        }
        return chunk
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
            var out: [Int] = []
            for d in dims {
                guard let v = Int(exactly: d), v <= 1 << 48 else { throw .format("\(path): \(objectPath) has an impossible dimension \(d)") }
                out.append(v)
            }
            return out
        }
    }

    /// Reads a whole dataset, converting to T when the stored type is a compatible number type.
    public func read<T: H5Scalar>(_ objectPath: String, as: T.Type = T.self) throws(EngineError) -> (data: [T], shape: [Int]) {
        try withH5 { () throws(EngineError) -> ([T], [Int]) in
            let dims = try shape(objectPath)
            let (count, overflow) = dims.reduce((1, false)) { acc, d in
                let (r, o) = acc.0.multipliedReportingOverflow(by: d); return (r, acc.1 || o)
            }
            guard !overflow else { throw .format("\(path): \(objectPath) is implausibly large \(dims)") }
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .format("\(path): cannot open \(objectPath)") }
            defer { H5Dclose(ds) }
            let ftype = H5Dget_type(ds)
            defer { H5Tclose(ftype) }
            let cls = H5Tget_class(ftype)
            // Behemoth never compresses, so an array cannot hold more bytes than the file: a damaged
            // shape is refused here instead of becoming a huge allocation.
            let fileSize = try self.fileSize()
            let (bytes, big) = count.multipliedReportingOverflow(by: max(H5Tget_size(ftype), 1))
            guard !big, bytes <= fileSize else {
                throw .format("\(path): \(objectPath) claims shape \(dims) (\(count) elements), more than the \(fileSize)-byte file can hold")
            }
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

    /// What a link inside the file names: a group, a dataset, or something else.
    func objectKind(_ objectPath: String) throws(EngineError) -> H5O_type_t {
        try withH5 { () throws(EngineError) -> H5O_type_t in
            var info = H5O_info_t()
            guard H5Oget_info_by_name2(id, objectPath, &info, UInt32(H5O_INFO_BASIC), chdf5_p_default()) >= 0 else {
                throw .format("\(path): cannot inspect \(objectPath)")
            }
            return info.type
        }
    }

    /// The names of an object's attributes, in creation order of their index.
    func attributeNames(at objectPath: String) throws(EngineError) -> [String] {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) -> [String] in
            var info = H5O_info_t()
            guard H5Oget_info2(obj, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else { throw .format("\(path): cannot list attributes of \(objectPath)") }
            guard info.num_attrs < 10_000 else { throw .format("\(path): \(objectPath) has \(info.num_attrs) attributes") }
            var names: [String] = []
            for i in 0..<info.num_attrs {
                let n = H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, chdf5_p_default())
                guard n >= 0, n < 4096 else { throw .format("\(path): bad attribute name on \(objectPath)") }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, buf.count, chdf5_p_default())
                names.append(String(cString: buf))
            }
            return names
        }
    }

    /// The stored class and size of an attribute (H5T_STRING / H5T_INTEGER ...).
    func attributeClass(_ name: String, at objectPath: String) throws(EngineError) -> H5T_class_t {
        try withObject(objectPath) { (obj: hid_t) throws(EngineError) -> H5T_class_t in
            let attr = H5Aopen(obj, name, chdf5_p_default())
            guard attr >= 0 else { throw .format("\(path): cannot open attribute \(name)") }
            defer { H5Aclose(attr) }
            let t = H5Aget_type(attr)
            defer { H5Tclose(t) }
            return H5Tget_class(t)
        }
    }

    /// The stored element type of a dataset: its class, size in bytes and signedness.
    func datasetType(_ objectPath: String) throws(EngineError) -> (cls: H5T_class_t, size: Int, signed: Bool) {
        try withH5 { () throws(EngineError) -> (H5T_class_t, Int, Bool) in
            let ds = H5Dopen2(id, objectPath, chdf5_p_default())
            guard ds >= 0 else { throw .format("\(path): cannot open \(objectPath)") }
            defer { H5Dclose(ds) }
            let t = H5Dget_type(ds)
            defer { H5Tclose(t) }
            let cls = H5Tget_class(t)
            return (cls, H5Tget_size(t), cls == H5T_INTEGER ? H5Tget_sign(t) == H5T_SGN_2 : true)
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
            // Fixed-length UTF-8 (null-padded): the text lives in the checksummed object header,
            // not in HDF5's unchecked global heap.
            var bytes = Array(value.utf8)
            guard bytes.count <= H5File.maxStringAttributeBytes else {
                throw .invalid("\(path): attribute \(name) is \(bytes.count) bytes; the limit is \(H5File.maxStringAttributeBytes)")
            }
            if bytes.isEmpty { bytes = [0] }
            let type = H5Tcopy(chdf5_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, bytes.count)
            H5Tset_strpad(type, H5T_STR_NULLPAD)
            H5Tset_cset(type, H5T_CSET_UTF8)
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(obj, name, type, space, chdf5_p_default(), chdf5_p_default())
            guard attr >= 0 else { throw .io("\(path): cannot create attribute \(name)") }
            defer { H5Aclose(attr) }
            let status = H5Awrite(attr, type, bytes)
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
            // Variable-length strings sit in HDF5's unchecked global heap, where a damaged byte can
            // crash the reader: files of format version 2 never hold them, and they are refused.
            // (Version 1 files are read in a child process: see LegacyFiles.swift.)
            if LegacyFiles.inChild, H5Tis_variable_str(ftype) > 0 {
                let mtype = H5Tcopy(chdf5_c_s1())
                defer { H5Tclose(mtype) }
                H5Tset_size(mtype, chdf5_variable())
                H5Tset_cset(mtype, H5Tget_cset(ftype))
                var p: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(attr, mtype, &p) >= 0 else { throw .format("\(path): cannot read attribute \(name)") }
                defer { if let p { H5free_memory(p) } }
                return p.map { String(cString: $0) } ?? ""
            }
            guard H5Tis_variable_str(ftype) == 0 else {
                throw .format("\(path): attribute \(name) on \(objectPath) is a variable-length string; Behemoth files store fixed-length strings (was the file edited by another tool? write it with h5py.string_dtype('utf-8', length=...))")
            }
            let size = H5Tget_size(ftype)
            guard size > 0, size <= H5File.maxStringAttributeBytes else {
                throw .format("\(path): attribute \(name) on \(objectPath) has size \(size); the limit is \(H5File.maxStringAttributeBytes) bytes")
            }
            var buf = [UInt8](repeating: 0, count: size)
            let mtype = H5Tcopy(ftype)
            defer { H5Tclose(mtype) }
            guard H5Aread(attr, mtype, &buf) >= 0 else { throw .format("\(path): cannot read attribute \(name)") }
            let end = buf.firstIndex(of: 0) ?? buf.count
            guard let text = String(validating: buf[..<end], as: UTF8.self) else {
                throw .format("\(path): attribute \(name) on \(objectPath) is not valid UTF-8")
            }
            return text
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
        // Version 1 files reach here as the tool's upgraded copies, so a checksummed file is always current.
        guard v == maxVersion else {
            throw .format("\(path) has \(expected) format_version \(v); this library reads version \(maxVersion) (and version 1 files through `behemoth upgrade`)")
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

// MARK: content digest

extension H5File {
    /// The arrays a file's content digest covers: every dataset, except in model files, where only
    /// the weights are the content (optimizer state and history are in the file digest).
    static func digestCovers(format: String, _ path: String) -> Bool {
        format == "behemoth.model" ? path.hasPrefix("weights/") : true
    }

    /// Calls `body(path, isGroup)` for every group and dataset below `group`, parents before their
    /// members, members in name order; paths start with "/".
    func visit(_ group: String = "/", depth: Int = 0, _ body: (String, Bool) throws(EngineError) -> Void) throws(EngineError) {
        guard depth < 16 else { throw .format("\(path): groups nested too deep at \(group)") }
        for child in try children(group) {
            let p = group == "/" ? "/\(child)" : "\(group)/\(child)"
            switch try objectKind(p) {
            case H5O_TYPE_GROUP: try body(p, true); try visit(p, depth: depth + 1, body)
            case H5O_TYPE_DATASET: try body(p, false)
            default: throw .format("\(path): \(p) is neither a group nor a dataset")
            }
        }
    }

    /// Every dataset's path (without a leading slash).
    func datasetPaths() throws(EngineError) -> [String] {
        var out: [String] = []
        try visit { (p: String, isGroup: Bool) throws(EngineError) in if !isGroup { out.append(String(p.dropFirst())) } }
        return out
    }

    /// A dataset of any element type Behemoth writes.
    enum StoredArray {
        case float32([Float], [Int]), float64([Double], [Int]), int32([Int32], [Int]), int64([Int64], [Int])
        case uint8([UInt8], [Int]), int8([Int8], [Int])

        func addTo(_ d: inout ContentDigest, as p: String) {
            switch self {
            case let .float32(a, s): d.addArray(p, dtype: Float.h5Name, shape: s, a)
            case let .float64(a, s): d.addArray(p, dtype: Double.h5Name, shape: s, a)
            case let .int32(a, s): d.addArray(p, dtype: Int32.h5Name, shape: s, a)
            case let .int64(a, s): d.addArray(p, dtype: Int64.h5Name, shape: s, a)
            case let .uint8(a, s): d.addArray(p, dtype: UInt8.h5Name, shape: s, a)
            case let .int8(a, s): d.addArray(p, dtype: Int8.h5Name, shape: s, a)
            }
        }

        func write(to f: H5File, _ p: String) throws(EngineError) {
            switch self {
            case let .float32(a, s): try f.write(p, a, shape: s)
            case let .float64(a, s): try f.write(p, a, shape: s)
            case let .int32(a, s): try f.write(p, a, shape: s)
            case let .int64(a, s): try f.write(p, a, shape: s)
            case let .uint8(a, s): try f.write(p, a, shape: s)
            case let .int8(a, s): try f.write(p, a, shape: s)
            }
        }
    }

    /// Reads a dataset in whatever element type it is stored as (one of those Behemoth writes).
    func readStored(_ p: String) throws(EngineError) -> StoredArray {
        let t = try datasetType(p)
        switch (t.cls, t.size, t.signed) {
        case (H5T_FLOAT, 4, _): let (a, s) = try read(p, as: Float.self); return .float32(a, s)
        case (H5T_FLOAT, 8, _): let (a, s) = try read(p, as: Double.self); return .float64(a, s)
        case (H5T_INTEGER, 4, true): let (a, s) = try read(p, as: Int32.self); return .int32(a, s)
        case (H5T_INTEGER, 8, true): let (a, s) = try read(p, as: Int64.self); return .int64(a, s)
        case (H5T_INTEGER, 1, false): let (a, s) = try read(p, as: UInt8.self); return .uint8(a, s)
        case (H5T_INTEGER, 1, true): let (a, s) = try read(p, as: Int8.self); return .int8(a, s)
        default: throw .format("\(path): \(p) has an element type Behemoth does not write")
        }
    }

    /// Adds dataset `p` to a digest as `name`. Large float32 arrays are read slab by slab along their
    /// first axis (at most 4 MiB at a time), so digesting a large file needs little memory.
    func addToDigest(_ p: String, _ d: inout ContentDigest, as name: String) throws(EngineError) {
        let t = try datasetType(p)
        let dims = try shape(p)
        let rowSize = dims.dropFirst().reduce(1, *)
        guard t.cls == H5T_FLOAT, t.size == 4, dims.count >= 1, rowSize > 0, dims.reduce(1, *) > 1 << 20 else {
            try readStored(p).addTo(&d, as: name)
            return
        }
        d.beginArray(name, dtype: Float.h5Name, shape: dims)
        let slab = max(1, (1 << 20) / rowSize)
        var r = 0
        while r < dims[0] {
            let n = min(slab, dims[0] - r)
            let rows = try readRows(p, start: r, count: n, as: Float.self)
            rows.withUnsafeBytes { d.addData($0) }
            r += n
        }
    }

    /// Recomputes the content digest (ContentDigest) from the spec attribute and the arrays.
    public func computeDigest() throws(EngineError) -> String {
        let format = try stringAttribute("format")
        var d = ContentDigest(format: format, spec: try stringAttribute("spec"))
        for p in try datasetPaths().filter({ H5File.digestCovers(format: format, $0) }).sorted() { try addToDigest(p, &d, as: p) }
        return d.finish()
    }

    /// The digest of everything the file holds: every group's and dataset's attributes and every
    /// dataset, in path order (the root's `file_digest` itself left out). The content digest covers
    /// what an object is; this one also covers optimizer state, history and every attribute, so an
    /// edit made with HDF5 itself (whose checksums stay valid) is refused.
    public func computeFileDigest() throws(EngineError) -> String {
        var d = ContentDigest(format: "behemoth-file", spec: "")
        func addAttributes(_ obj: String) throws(EngineError) {
            for name in try attributeNames(at: obj).sorted() where !(obj == "/" && name == "file_digest") {
                let key = "\(obj)@\(name)"
                switch try attributeClass(name, at: obj) {
                case H5T_STRING: let text = Array(try stringAttribute(name, at: obj).utf8); d.addArray(key, dtype: "string", shape: [text.count], text)
                case H5T_INTEGER: d.addArray(key, dtype: Int64.h5Name, shape: [], [try intAttribute(name, at: obj)])
                default: throw .format("\(path): attribute \(name) on \(obj) is neither a string nor an integer")
                }
            }
        }
        try addAttributes("/")
        try visit { (p: String, isGroup: Bool) throws(EngineError) in
            try addAttributes(p)
            if !isGroup { try addToDigest(p, &d, as: String(p.dropFirst())) }
        }
        return d.finish()
    }

    /// Compares the stored `file_digest` with the file's contents (computeFileDigest).
    public func checkFileDigest() throws(EngineError) {
        guard hasAttribute("file_digest") else { throw .format("\(path): no 'file_digest' attribute (every Behemoth file since format version 2 has one)") }
        let stored = try stringAttribute("file_digest"), computed = try computeFileDigest()
        guard stored == computed else {
            throw .format("\(path): file digest mismatch: the file says \(stored), its attributes and arrays give \(computed) (the file was changed after it was written)")
        }
    }

    /// Compares the stored `digest` attribute with `computed` (the object as loaded).
    public func checkDigest(_ computed: String) throws(EngineError) {
        guard hasAttribute("digest") else { throw .format("\(path): no 'digest' attribute (every Behemoth file since format version 2 has one)") }
        let stored = try stringAttribute("digest")
        guard stored == computed else {
            throw .format("\(path): content digest mismatch: the file says \(stored), its spec and arrays give \(computed) (the file was changed after it was written)")
        }
    }
}
