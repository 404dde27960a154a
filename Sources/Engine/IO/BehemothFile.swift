#if canImport(Glibc)
import Glibc
#endif
import CHDF5

/// Checks any file the library writes, whatever its type: the layout, the root attributes and the
/// content digest recomputed from the arrays. Type-specific loaders (Dataset.load, Checkpoint.load)
/// check more (shapes against the spec, values); this is what `behemoth verify` and
/// bh_file_verify run first, and what covers file types that have no loader (edit results).
public enum BehemothFile {
    public static let editFormat = "behemoth.edit"
    public static let editFormatVersion: Int64 = 2  // 2: checksummed layout (v110, Fletcher-32, fixed-length strings)

    /// Each format's newest version and the root attributes its files may carry (beyond the common ones).
    static let formats: [String: (version: Int64, attributes: Set<String>)] = [
        "behemoth.dataset": (2, ["origin"]),
        "behemoth.model": (2, ["tokenizer"]),
        editFormat: (editFormatVersion, ["report", "edit_set"]),
        AdapterSet.format: (AdapterSet.formatVersion, []),
        ActivationFile.format: (ActivationFile.formatVersion, []),
        KeyStatistics.format: (KeyStatistics.formatVersion, []),
        "behemoth.trace": (1, ["report"]),
        "behemoth.rank": (1, ["report"]),
    ]
    static let commonAttributes: Set<String> = ["format", "format_version", "spec", "library_version", "layout", "digest", "file_digest"]
    /// Root attributes that hold JSON text.
    static let jsonAttributes: Set<String> = ["spec", "tokenizer", "report", "edit_set"]

    /// Verifies `path` and describes it: {path, format, format_version, digest, library_version,
    /// arrays (a count), array_bytes, attributes (the root attributes, JSON ones parsed),
    /// group_attributes ({group: {name: value}}: a checkpoint's /trainer state and /optimizer step), contents
    /// ([{name, dtype, shape}] for every array)}. A damaged or foreign file is BH_ERR_FORMAT naming what is wrong.
    public static func verify(_ path: String) throws(EngineError) -> JSON {
        let f = try H5File.open(path)
        defer { f.close() }
        guard f.hasAttribute("format") else { throw .format("\(path) is not a Behemoth file (no 'format' attribute)") }
        let format = try f.stringAttribute("format")
        guard let known = formats[format] else {
            throw .format("\(path) has format = \(format); this library reads \(formats.keys.sorted().joined(separator: ", "))")
        }
        let version = try f.checkFormat(format, maxVersion: known.version)
        try checkRootAttributes(f, format: format)
        let computed = try f.computeDigest()
        try f.checkDigest(computed)
        try f.checkFileDigest()
        var bytes = 0, contents: [JSON] = [], groupAttributes: [(String, JSON)] = []
        try f.visit { (p: String, isGroup: Bool) throws(EngineError) in
            if isGroup {
                // e.g. a checkpoint's /trainer state (JSON); anything else as its text
                let names = try f.attributeNames(at: p)
                guard !names.isEmpty else { return }
                var values: [(String, JSON)] = []
                for name in names {
                    if try f.attributeClass(name, at: p) == H5T_INTEGER {   // /optimizer's step
                        values.append((name, .int(Int(try f.intAttribute(name, at: p)))))
                        continue
                    }
                    let text = try f.stringAttribute(name, at: p)
                    values.append((name, (try? JSON.parse(text, what: name)) ?? .string(text)))
                }
                groupAttributes.append((p, .object(values)))
                return
            }
            let shape = try f.shape(p)
            let type = try f.datasetType(p)
            bytes += shape.reduce(type.size, *)
            contents.append(.object([("name", .string(p)), ("dtype", .string(dtypeName(type))),
                                     ("shape", .array(shape.map { .int($0) }))]))
        }
        var attributes: [(String, JSON)] = []
        for name in try f.attributeNames(at: "/") where name != "format_version" {
            let text = try f.stringAttribute(name)
            attributes.append((name, jsonAttributes.contains(name) && !text.isEmpty ? try parseAttribute(text, name, f.path) : .string(text)))
        }
        return .object([
            ("path", .string(path)), ("format", .string(format)), ("format_version", .int(Int(version))),
            ("digest", .string(computed)), ("library_version", .string(try f.stringAttribute("library_version"))),
            ("arrays", .int(contents.count)), ("array_bytes", .int(bytes)),
            ("attributes", .object(attributes)), ("group_attributes", .object(groupAttributes)), ("contents", .array(contents)),
        ])
    }

    /// numpy's name for a stored element type ("float32", "int64", "uint8", ...).
    static func dtypeName(_ type: (cls: H5T_class_t, size: Int, signed: Bool)) -> String {
        if type.cls == H5T_FLOAT { return "float\(8 * type.size)" }
        if type.cls == H5T_INTEGER { return "\(type.signed ? "int" : "uint")\(8 * type.size)" }
        return "other\(8 * type.size)"
    }

    /// The root attributes of an open file of `format`: only known names, strings where strings
    /// belong, JSON where JSON belongs, and the required ones present.
    public static func checkRootAttributes(_ f: H5File, format: String) throws(EngineError) {
        let allowed = commonAttributes.union(formats[format]?.attributes ?? [])
        for name in try f.attributeNames(at: "/") {
            guard allowed.contains(name) else { throw .format("\(f.path): unexpected root attribute '\(name)' in a \(format) file") }
            if name == "format_version" { continue }
            let text = try f.stringAttribute(name)
            if jsonAttributes.contains(name), !text.isEmpty { _ = try parseAttribute(text, name, f.path) }
            if name == "digest" || name == "file_digest", !(text.hasPrefix("xxh64:") && text.count == 22) {
                throw .format("\(f.path): the digest attribute '\(text)' is not of the form xxh64:<16 hex digits>")
            }
        }
        for name in ["spec", "library_version", "layout", "digest", "file_digest"] where !f.hasAttribute(name) {
            throw .format("\(f.path): missing root attribute '\(name)'")
        }
    }

    private static func parseAttribute(_ text: String, _ name: String, _ path: String) throws(EngineError) -> JSON {
        do { return try JSON.parse(text, what: "\(path): attribute \(name)") } catch { throw .format(error.message) }
    }

    /// Writes `target`, a current-format copy of `source`: a legacy file through the tool in a
    /// separate process (LegacyFiles), a current one after verifying it.
    public static func upgrade(_ source: String, to target: String) throws(EngineError) {
        if !LegacyFiles.isLegacy(source) { _ = try verify(source) }
        try LegacyFiles.upgradeFile(source, to: target)
    }
}
