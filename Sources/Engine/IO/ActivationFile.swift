#if canImport(Glibc)
import Glibc
#endif

/// The activations file (format = "behemoth.activations", format_version 2): what a recording wrote,
/// one float32 array per hook point, /activations/<site>[.<block>] of shape [rows, tokens, width],
/// rows in run order. Root attributes as every Behemoth file; `spec` is the recording's description
/// ({"rows", "tokens", "points": [{"name", "site", "layer", "width"}], plus what the caller adds}).
public enum ActivationFile {
    public static let format = "behemoth.activations"
    public static let formatVersion: Int64 = 2
}

/// Streams activations into an activations file as they arrive, chunk by chunk: extendable chunked
/// datasets with hyperslab writes, so memory stays bounded however many rows are recorded. The file
/// is written to a temporary file beside `path` and moved into place by `finish()` (with its
/// digests, computed by reading it back slab by slab); a recording that is not finished leaves nothing.
public final class HDF5ActivationRecorder: Recorder {
    public let path: String
    let tmp: String
    var file: H5File?
    var rows: [HookPoint: Int] = [:]
    var shapes: [HookPoint: (seq: Int, width: Int)] = [:]
    let extra: [(String, JSON)]

    /// `spec`: fields the caller adds to the file's spec (what was recorded, on which model).
    public init(path: String, spec: [(String, JSON)] = []) throws(EngineError) {
        guard !path.isEmpty else { throw .invalid("activation recorder: the path is empty") }
        self.path = path
        tmp = FileSystem.temporaryPath(for: path)
        do { file = try H5File.create(tmp) } catch {
            throw .io("activation recorder: cannot write \(path): \(error.message)")
        }
        extra = spec
    }

    deinit {
        if let f = file { f.close(); unlink(tmp) }   // never finished: leave nothing behind
    }

    public func receive(_ point: HookPoint, _ view: ActivationView) throws(EngineError) {
        guard let f = file else { throw .misuse("activation recorder: \(path) is already finished") }
        let name = "/activations/\(point.name)"
        if let s = shapes[point] {
            guard s.seq == view.seq, s.width == view.width else {
                throw .invalid("activation recorder: \(point.name) changed shape from [\(s.seq), \(s.width)] to [\(view.seq), \(view.width)] per row")
            }
        } else {
            let chunkRows = max(1, min(view.batch, (1 << 20) / (4 * view.seq * view.width)))
            try f.createExtendable(name, rowShape: [view.seq, view.width], chunkRows: chunkRows, as: Float.self)
            shapes[point] = (view.seq, view.width)
            rows[point] = 0
        }
        guard rows[point] == view.firstRow else {
            throw .invalid("activation recorder: rows of \(point.name) arrived out of order (expected row \(rows[point]!), got \(view.firstRow)); record one run per recorder")
        }
        try f.appendRows(name, UnsafeBufferPointer(view.all), rows: view.batch)
        rows[point]! += view.batch
    }

    /// Writes a whole array beside the activations (the prompts, their positions), before `finish`.
    public func writeArray<T: H5Scalar>(_ name: String, _ data: [T], shape: [Int]?) throws(EngineError) {
        guard let f = file else { throw .misuse("activation recorder: \(path) is already finished") }
        try f.write(name, data, shape: shape)
    }

    /// Writes the attributes and digests and moves the file into place.
    public func finish() throws(EngineError) {
        guard let f = file else { throw .misuse("activation recorder: \(path) is already finished") }
        file = nil
        do {
            let points = shapes.keys.sorted { $0.name < $1.name }
            let rowCounts = Set(points.map { rows[$0]! })
            var spec: [(String, JSON)] = [
                ("rows", rowCounts.count == 1 ? .int(rowCounts.first!) : .ints(points.map { rows[$0]! })),
                ("tokens", points.first.map { .int(shapes[$0]!.seq) } ?? .null),
                ("points", .array(points.map { p in
                    .object([("name", .string(p.name)), ("site", .string(p.site.rawValue)), ("layer", .int(p.layer)),
                             ("width", .int(shapes[p]!.width))])
                })),
            ]
            spec += extra
            try f.stampFormat(ActivationFile.format, version: ActivationFile.formatVersion, spec: JSON.object(spec).serialized())
            try f.setAttribute("digest", string: try f.computeDigest())
            try f.setAttribute("file_digest", string: try f.computeFileDigest())
            f.close()
        } catch {
            f.close()
            unlink(tmp)
            throw error
        }
        try FileSystem.commitTemporary(tmp, to: path)
    }
}
