#if canImport(Glibc)
import Glibc
#endif

/// Where an adapter sits: a block and one of its four matrices.
public struct AdapterKey: Hashable, Comparable, Sendable {
    public let block: Int
    public let slot: ParameterTable.Slot   // qkvW, denseW, fc1W or fc2W; llama: qW, kW, vW, oW, gateW, upW or downW

    static let matrices = ParameterTable.adaptable
    private var path: String { AdapterKey.matrices.first { $0.0 == slot }?.1 ?? "?" }
    /// The matrix's short name ("query_key_value", "q_proj", ...).
    public var matrix: String { String(path.split(separator: ".").last ?? "?") }
    /// The weight's Hugging Face name (each adaptable slot belongs to one architecture).
    public var tensorName: String {
        ParameterTable.blockPrefix(ParameterTable.isLlamaSlot(slot) ? .llama : .gptNeoX, block) + path + ".weight"
    }

    public init(block: Int, slot: ParameterTable.Slot) { self.block = block; self.slot = slot }

    /// The key of a block matrix's weight name; nil for any other tensor.
    public init?(tensorName name: String) {
        let parts = name.split(separator: ".")
        guard parts.count == 6, parts[0] == "gpt_neox" || parts[0] == "model", parts[1] == "layers", let b = Int(parts[2]), b >= 0,
              parts[5] == "weight", let s = AdapterKey.matrices.first(where: { $0.1 == "\(parts[3]).\(parts[4])" })?.0,
              ParameterTable.isLlamaSlot(s) == (parts[0] == "model") else { return nil }
        block = b; slot = s
    }

    public static func < (a: AdapterKey, b: AdapterKey) -> Bool { (a.block, a.slot.rawValue) < (b.block, b.slot.rawValue) }
}

/// A set of LoRA adapters as a value: rank, alpha and, for each target matrix (block, matrix), the
/// factors A [rank, in] and B [out, rank], ΔW = alpha/rank · B·A. An edit with LoRA returns one; it
/// is saved and loaded on its own (format behemoth.adapter), and applied to any model of the same
/// shapes, merged into the weights or as a side path (the model keeps its weights; every forward
/// pass adds the adapters), and removed again.
public struct AdapterSet {
    public var rank: Int
    public var alpha: Double
    public var adapters: [AdapterKey: LoRAAdapter]

    public static let format = "behemoth.adapter"
    public static let formatVersion: Int64 = 2

    public init(_ list: [LoRAAdapter]) throws(EngineError) {
        guard let first = list.first else { throw .invalid("adapter set: no adapters") }
        rank = first.rank
        alpha = first.alpha
        adapters = [:]
        for a in list {
            guard let key = AdapterKey(tensorName: a.target.name) else { throw .invalid("adapter set: \(a.target.name) is not a block's attention or MLP matrix") }
            adapters[key] = a
        }
    }

    public var keys: [AdapterKey] { adapters.keys.sorted() }
    public var scale: Float { Float(alpha / Double(rank)) }

    public func toJSON() -> JSON {
        .object([("rank", .int(rank)), ("alpha", .number(alpha)),
                  ("targets", .array(keys.map { k in
                      let a = adapters[k]!
                      return .object([("block", .int(k.block)), ("matrix", .string(k.matrix)), ("tensor", .string(k.tensorName)),
                                      ("shape", .ints(a.target.shape))])
                  }))])
    }

    /// What bh_adapter_info returns: the spec and the content digest.
    public func info() -> JSON {
        guard case let .object(fields) = toJSON() else { return toJSON() }
        return .object(fields + [("digest", .string(contentDigest))])
    }

    /// The content digest (rank, alpha, targets and every factor), equal to the `digest` of the file
    /// it saves to.
    public var contentDigest: String {
        var d = ContentDigest(format: AdapterSet.format, spec: toJSON().serialized())
        var arrays: [(String, [Int], [Float])] = []
        for k in keys {
            let a = adapters[k]!
            arrays.append(("lora/\(k.tensorName)/A", [a.rank, a.cols], a.a))
            arrays.append(("lora/\(k.tensorName)/B", [a.rows, a.rank], a.b))
        }
        for (path, shape, data) in arrays.sorted(by: { $0.0 < $1.0 }) { d.addArray(path, dtype: Float.h5Name, shape: shape, data) }
        return d.finish()
    }

    /// Each adapter's target in `model`, checked to exist with the adapter's shape.
    func targets(in model: LanguageModel) throws(EngineError) -> [(AdapterKey, LoRAAdapter, TensorEntry)] {
        var out: [(AdapterKey, LoRAAdapter, TensorEntry)] = []
        for k in keys {
            let a = adapters[k]!
            guard let e = model.tensorTable[k.tensorName] else {
                throw .invalid("adapter: the model has no \(k.tensorName) (it has \(model.config.layers) blocks): the adapter was made for another model")
            }
            guard e.shape == a.target.shape else {
                throw .invalid("adapter: \(k.tensorName) is \(e.shape[0])x\(e.shape[1]) in the model but \(a.target.shape[0])x\(a.target.shape[1]) in the adapter: the adapter was made for a model of another shape")
            }
            out.append((k, a, e))
        }
        return out
    }

    /// W += s·B·A for every target (merge) or W -= s·B·A (unmerge; equal to the weights before the
    /// merge up to float rounding).
    public func merge(into model: LanguageModel, sign: Float = 1) throws(EngineError) {
        let w = model.parameterBlock.baseAddress!
        for (_, a, e) in try targets(in: model) {
            var d = a.delta()
            if sign != 1 { for i in 0..<d.count { d[i] *= sign } }
            for i in 0..<e.count { w[e.offset + i] += d[i] }
        }
    }

    /// Runs the adapters as a side path of the model's forward passes (the weights are untouched).
    public func attach(to model: LanguageModel) throws(EngineError) {
        guard model.net.adapter == nil else {
            throw .misuse("adapter: the model already runs a side-path adapter (or a LoRA edit is in progress); remove it first")
        }
        model.net.adapter = AdapterSidePath(try targets(in: model).map { ($0.0, $0.1) }, scale: scale, digest: contentDigest)
    }

    /// The content digest of the adapter set running as `model`'s side path, nil if none (a LoRA
    /// edit in progress runs its own adapters: "lora-edit-in-progress").
    public static func sidePathDigest(of model: LanguageModel) -> String? {
        guard let a = model.net.adapter else { return nil }
        return (a as? AdapterSidePath)?.digest ?? "lora-edit-in-progress"
    }

    /// True if this set runs as the model's side path.
    public func isAttached(to model: LanguageModel) -> Bool {
        (model.net.adapter as? AdapterSidePath)?.matches(self) ?? false
    }

    /// Stops the side path attached by `attach` (a misuse if this set is not the one attached).
    public func detach(from model: LanguageModel) throws(EngineError) {
        guard let side = model.net.adapter as? AdapterSidePath, side.matches(self) else {
            throw .misuse("adapter: this adapter is not attached to the model as a side path")
        }
        model.net.adapter = nil
    }

    public func save(_ path: String) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(AdapterSet.format, version: AdapterSet.formatVersion, spec: toJSON().serialized())
            for k in keys {
                let a = adapters[k]!
                try f.write("/lora/\(k.tensorName)/A", a.a, shape: [a.rank, a.cols])
                try f.write("/lora/\(k.tensorName)/B", a.b, shape: [a.rows, a.rank])
            }
        }
    }

    public static func load(_ path: String) throws(EngineError) -> AdapterSet {
        let f = try H5File.open(path)
        defer { f.close() }
        // What the file says is checked like any spec, but a bad value in a file is a damaged file
        // (BH_ERR_FORMAT), not a caller's invalid argument.
        do throws(EngineError) { return try read(f, path) } catch {
            throw error.status == .invalid ? EngineError(.format, error.message) : error
        }
    }

    private static func read(_ f: H5File, _ path: String) throws(EngineError) -> AdapterSet {
        _ = try f.checkFormat(format, maxVersion: formatVersion)
        try BehemothFile.checkRootAttributes(f, format: format)
        let spec = try parseSpec(try f.stringAttribute("spec"), path: "\(path): spec")
        var list: [LoRAAdapter] = []
        for (name, shape) in spec.targets {
            let (a, aShape) = try f.read("/lora/\(name)/A", as: Float.self)
            let (b, bShape) = try f.read("/lora/\(name)/B", as: Float.self)
            guard aShape == [spec.rank, shape[1]], bShape == [shape[0], spec.rank] else {
                throw .format("\(path): /lora/\(name) has A \(aShape) and B \(bShape), expected [\(spec.rank), \(shape[1])] and [\(shape[0]), \(spec.rank)]")
            }
            guard a.allSatisfy({ $0.isFinite }), b.allSatisfy({ $0.isFinite }) else { throw .format("\(path): /lora/\(name) holds NaN or Inf") }
            list.append(LoRAAdapter(target: TensorEntry(name: name, offset: 0, shape: shape), rank: spec.rank, alpha: spec.alpha, a: a, b: b))
        }
        try f.checkDigest(try f.computeDigest())
        try f.checkFileDigest()
        return try AdapterSet(list)
    }

    /// Decodes an adapter spec, the JSON `toJSON` writes: {"rank", "alpha", "targets": [{"tensor",
    /// "shape": [out, in]}]}, each target's "block" and "matrix" optional and checked against its
    /// tensor name. rank and alpha are required; every target is a distinct block matrix.
    static func parseSpec(_ text: String, path: String) throws(EngineError) -> (rank: Int, alpha: Double, targets: [(String, [Int])]) {
        var r = try JSONReader(text: text, path: path)
        guard r.has("rank"), r.has("alpha") else { throw .invalid("\(path): rank and alpha are required") }
        let rank = try r.int("rank", default: 0, min: 1, max: 1 << 20)
        let alpha = try r.double("alpha", default: 0, min: 0, max: 1e6, exclusiveMin: true)
        guard case let .array(items)? = r.value("targets"), !items.isEmpty, items.count <= 4096 else {
            throw .invalid("\(path): targets must be a non-empty list of at most 4096 targets")
        }
        try r.finish()
        var targets: [(String, [Int])] = []
        var seen = Set<AdapterKey>()
        for (i, t) in items.enumerated() {
            let where_ = "\(path).targets[\(i)]"
            var tr = try JSONReader(t, path: where_)
            let name = try tr.string("tensor", default: "")
            let block = try tr.optionalInt("block", min: 0)
            let matrix = try tr.string("matrix", default: "")
            let shape = try tr.intArray("shape", default: [], min: 1, max: 1 << 20)
            try tr.finish()
            guard let key = AdapterKey(tensorName: name) else {
                throw .invalid("\(where_): tensor \"\(name)\" is not a block's attention or MLP matrix (e.g. gpt_neox.layers.0.mlp.dense_4h_to_h.weight)")
            }
            guard shape.count == 2 else { throw .invalid("\(where_): shape must be [out, in], got \(shape)") }
            guard block == nil || block == key.block, matrix.isEmpty || matrix == key.matrix else {
                throw .invalid("\(where_): block \(block.map { String($0) } ?? "-") / matrix \"\(matrix)\" disagree with tensor \(name)")
            }
            guard seen.insert(key).inserted else { throw .invalid("\(where_): \(name) is listed twice") }
            targets.append((name, shape))
        }
        return (rank, alpha, targets)
    }
}

extension AdapterSet {
    /// A set from a spec (`parseSpec`: rank, alpha, targets with shapes) with every factor zero, so
    /// ΔW = 0 until the factors are set (`setFactor`): how adapters trained elsewhere come in.
    public init(spec text: String, what: String = "adapter spec") throws(EngineError) {
        let spec = try AdapterSet.parseSpec(text, path: what)
        try MemoryBudget.check(MemoryBudget.total(spec.targets.map { [MemoryLayout<Float>.size, spec.rank, $0.1[0] + $0.1[1]] }), what)
        try self.init(spec.targets.map { name, shape in
            LoRAAdapter(target: TensorEntry(name: name, offset: 0, shape: shape), rank: spec.rank, alpha: spec.alpha,
                        a: [Float](repeating: 0, count: spec.rank * shape[1]), b: [Float](repeating: 0, count: shape[0] * spec.rank))
        })
    }

    /// The key of a target and the factor's shape: "A" is [rank, in], "B" is [out, rank].
    public func factorShape(_ tensor: String, _ which: String, _ fn: String) throws(EngineError) -> (AdapterKey, [Int]) {
        guard let key = AdapterKey(tensorName: tensor), let a = adapters[key] else {
            throw .invalid("\(fn): the adapter has no target \"\(tensor)\" (targets: \(keys.map(\.tensorName).joined(separator: ", ")))")
        }
        switch which {
        case "A": return (key, [rank, a.cols])
        case "B": return (key, [a.rows, rank])
        default: throw .invalid("\(fn): factor = \"\(which)\" must be \"A\" ([rank, in]) or \"B\" ([out, rank])")
        }
    }

    /// A copy of factor "A" or "B" of one target.
    public func factor(_ tensor: String, _ which: String, _ fn: String = "adapter") throws(EngineError) -> [Float] {
        let (key, _) = try factorShape(tensor, which, fn)
        return which == "A" ? adapters[key]!.a : adapters[key]!.b
    }

    /// Overwrites factor "A" or "B" of one target with exactly its size of finite values.
    public mutating func setFactor(_ tensor: String, _ which: String, _ values: UnsafeBufferPointer<Float>, _ fn: String = "adapter") throws(EngineError) {
        let (key, shape) = try factorShape(tensor, which, fn)
        guard values.count == shape[0] * shape[1] else {
            throw .invalid("\(fn): \(which) of \(tensor) is \(shape[0])x\(shape[1]) = \(shape[0] * shape[1]) values; \(values.count) given")
        }
        try checkFinite(values, fn)
        if which == "A" { adapters[key]!.a = Array(values) } else { adapters[key]!.b = Array(values) }
    }
}

/// Adapters as a side path at inference: y += s·(x·Aᵀ)·Bᵀ on each target; in a backward pass (a
/// fine-tuning run over an adapted model) dx gets the side path's share, and A, B get no gradient.
final class AdapterSidePath: LinearAdapter {
    let adapters: [AdapterKey: LoRAAdapter]
    let scale: Float
    /// The attached set's content digest (reports name what ran beside the weights).
    let digest: String
    var u: [Float] = []

    init(_ list: [(AdapterKey, LoRAAdapter)], scale: Float, digest: String) {
        adapters = Dictionary(uniqueKeysWithValues: list)
        self.scale = scale
        self.digest = digest
    }

    func matches(_ set: AdapterSet) -> Bool {
        Set(adapters.keys) == Set(set.adapters.keys) && adapters.allSatisfy { set.adapters[$0.key]?.a == $0.value.a && set.adapters[$0.key]?.b == $0.value.b }
    }

    func adapts(layer: Int, slot: ParameterTable.Slot) -> Bool { adapters[AdapterKey(block: layer, slot: slot)] != nil }

    func forward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, rows n: Int) {
        guard let a = adapters[AdapterKey(block: layer, slot: slot)] else { return }
        if u.count < n * a.rank { u = [Float](repeating: 0, count: n * a.rank) }
        a.a.withUnsafeBufferPointer { A in a.b.withUnsafeBufferPointer { B in u.withUnsafeMutableBufferPointer { U in
            // u[n, r] = x[n, in] · Aᵀ ;  y[n, out] += s · u · Bᵀ
            BLAS.gemm(transA: false, transB: true, m: n, n: a.rank, k: a.cols, a: x, lda: a.cols, b: A.baseAddress!, ldb: a.cols,
                      beta: 0, c: U.baseAddress!, ldc: a.rank)
            BLAS.gemm(transA: false, transB: true, m: n, n: a.rows, k: a.rank, alpha: scale, a: U.baseAddress!, lda: a.rank,
                      b: B.baseAddress!, ldb: a.rank, beta: 1, c: y, ldc: ldy)
        } } }
    }

    func backward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, lddy: Int,
                  dx: UnsafeMutablePointer<Float>?, rows n: Int) {
        guard let dx, let a = adapters[AdapterKey(block: layer, slot: slot)] else { return }
        var du = [Float](repeating: 0, count: n * a.rank)
        a.a.withUnsafeBufferPointer { A in a.b.withUnsafeBufferPointer { B in du.withUnsafeMutableBufferPointer { D in
            // du[n, r] = s · dy[n, out] · B ;  dx[n, in] += du · A
            BLAS.gemm(transA: false, transB: false, m: n, n: a.rank, k: a.rows, alpha: scale, a: dy, lda: lddy, b: B.baseAddress!, ldb: a.rank,
                      beta: 0, c: D.baseAddress!, ldc: a.rank)
            BLAS.gemm(transA: false, transB: false, m: n, n: a.cols, k: a.rank, a: D.baseAddress!, lda: a.rank, b: A.baseAddress!, ldb: a.cols,
                      beta: 1, c: dx, ldc: a.cols)
        } } }
    }
}
