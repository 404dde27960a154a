/// An edit set's arrays by name (what bh_editset_array_* copies out and the digest covers):
/// tokens, offsets, edits [n, 4], and per group prompts, targets, facts, relations, alternatives,
/// offsets.
extension EditSet {
    public func int32Array(_ name: String) -> [Int32]? {
        switch name {
        case "tokens": return tokens
        case "answer_positions": return answerPositions.isEmpty ? nil : answerPositions
        case "edits": return edits.flatMap { [Int32($0.subject), Int32($0.relation), Int32($0.oldObject), Int32($0.newObject)] }
        default: break
        }
        let parts = name.split(separator: "/").map(String.init)
        guard parts.count == 3, parts[0] == "groups", let g = group(parts[1]) else { return nil }
        switch parts[2] {
        case "prompts": return g.prompts
        case "targets": return g.targets
        case "facts": return g.facts
        case "relations": return g.relations
        case "alternatives": return g.alternatives
        default: return nil
        }
    }

    public func int64Array(_ name: String) -> [Int64]? {
        if name == "offsets" { return offsets }
        let parts = name.split(separator: "/").map(String.init)
        guard parts.count == 3, parts[0] == "groups", parts[2] == "offsets", let g = group(parts[1]) else { return nil }
        return g.offsets
    }

    /// Arrays by name, with dtype and shape.
    public func arrayList() -> [(name: String, dtype: String, shape: [Int])] {
        var arrays: [(String, String, [Int])] = [
            ("tokens", "int32", [tokens.count]), ("offsets", "int64", [offsets.count]), ("edits", "int32", [edits.count, 4]),
        ]
        if !answerPositions.isEmpty { arrays.append(("answer_positions", "int32", [answerPositions.count])) }
        for g in groups {
            for (k, n) in [("prompts", g.prompts.count), ("targets", g.count), ("facts", g.count), ("relations", g.count)] {
                arrays.append(("groups/\(g.name)/\(k)", "int32", [n]))
            }
            if g.alternatives != nil { arrays.append(("groups/\(g.name)/alternatives", "int32", [g.count])) }
            arrays.append(("groups/\(g.name)/offsets", "int64", [g.count + 1]))
        }
        return arrays.map { (name: $0.0, dtype: $0.1, shape: $0.2) }
    }

    /// The content digest of the edit set: its spec and every array (ContentDigest).
    public var contentDigest: String {
        var d = ContentDigest(format: "behemoth.editset", spec: spec.toJSON().serialized())
        for a in arrayList().sorted(by: { $0.name < $1.name }) {
            if a.dtype == "int64" { d.addArray(a.name, dtype: a.dtype, shape: a.shape, int64Array(a.name)!) }
            else { d.addArray(a.name, dtype: a.dtype, shape: a.shape, int32Array(a.name)!) }
        }
        return d.finish()
    }
}
