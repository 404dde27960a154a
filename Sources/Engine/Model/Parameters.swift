/// One tensor of a flat block: the model's parameters (their gradients and AdamW moments share the
/// layout), or an editing wrapper's own block (a subset of tensors, LoRA factors).
public struct TensorEntry: Sendable, Equatable {
    public enum Kind: Sendable { case embedding, weight, bias, norm }
    public let name: String        // Hugging Face name, e.g. "gpt_neox.layers.3.mlp.dense_4h_to_h.weight"
    public let offset: Int         // in floats (the model's block aligns each tensor to 16 floats)
    public let shape: [Int]        // as PyTorch stores it
    public let kind: Kind
    public let layer: Int?         // block index, nil for embeddings / final LayerNorm / unembedding
    public var count: Int { shape.reduce(1, *) }
    /// Decoupled weight decay applies to 2-D tensors only (weight matrices and both embeddings),
    /// never to biases or LayerNorm parameters.
    public var decays: Bool { shape.count == 2 }

    /// `kind` and `layer` default to what the Hugging Face name says.
    public init(name: String, offset: Int, shape: [Int], kind: Kind? = nil, layer: Int?? = nil) {
        self.name = name; self.offset = offset; self.shape = shape
        self.kind = kind ?? (name.contains("embed") ? .embedding : name.contains("layernorm") || name.contains("layer_norm") ? .norm
                             : name.hasSuffix(".bias") ? .bias : .weight)
        if let layer { self.layer = layer } else {
            let parts = name.split(separator: ".")
            self.layer = parts.count > 2 && parts[0] == "gpt_neox" && parts[1] == "layers" ? Int(parts[2]) : nil
        }
    }
}

/// A tensor table: entries in block order, looked up by name in O(1). The one table type: the
/// model's (ParameterTable.tensors, LanguageModel.tensorTable), an editing wrapper's, a checkpoint's.
public struct TensorTable: RandomAccessCollection, Sendable, Equatable {
    public let entries: [TensorEntry]
    private let index: [String: Int]

    public init(_ entries: [TensorEntry]) {
        self.entries = entries
        var idx: [String: Int] = [:]
        for (k, e) in entries.enumerated() where idx[e.name] == nil { idx[e.name] = k }
        index = idx
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }
    public subscript(position: Int) -> TensorEntry { entries[position] }
    /// The entry called `name`, or nil.
    public subscript(_ name: String) -> TensorEntry? { index[name].map { entries[$0] } }
    public func position(of name: String) -> Int? { index[name] }
    public func contains(name: String) -> Bool { index[name] != nil }
    /// Floats the block needs (the end of the last tensor).
    public var blockSize: Int { entries.map { $0.offset + $0.count }.max() ?? 0 }
    public static func == (a: TensorTable, b: TensorTable) -> Bool { a.entries == b.entries }
}

/// Name → (offset, shape) for the parameters, their gradients and the AdamW moments, which share it.
/// Order is Hugging Face's `named_parameters()` order.
public struct ParameterTable: Sendable {
    public let tensors: TensorTable
    public let totalCount: Int

    /// Per block, indices into `tensors` of its 12 tensors, in this order.
    public enum Slot: Int, CaseIterable, Sendable {
        case ln1W, ln1B, ln2W, ln2B, qkvW, qkvB, denseW, denseB, fc1W, fc1B, fc2W, fc2B
    }
    public let embedIn: Int, finalLnW: Int, finalLnB: Int, embedOut: Int
    private let layerBase: [Int]

    public init(config c: ModelConfig) {
        var list: [TensorEntry] = []
        var off = 0
        func add(_ name: String, _ shape: [Int], _ kind: TensorEntry.Kind, _ layer: Int?) -> Int {
            list.append(TensorEntry(name: name, offset: off, shape: shape, kind: kind, layer: .some(layer)))
            off += (shape.reduce(1, *) + 15) / 16 * 16
            return list.count - 1
        }
        let d = c.hidden, i = c.intermediate, v = c.vocabSize
        embedIn = add("gpt_neox.embed_in.weight", [v, d], .embedding, nil)
        var bases: [Int] = []
        for l in 0..<c.layers {
            let p = "gpt_neox.layers.\(l)."
            bases.append(add(p + "input_layernorm.weight", [d], .norm, l))
            _ = add(p + "input_layernorm.bias", [d], .norm, l)
            _ = add(p + "post_attention_layernorm.weight", [d], .norm, l)
            _ = add(p + "post_attention_layernorm.bias", [d], .norm, l)
            _ = add(p + "attention.query_key_value.weight", [3 * d, d], .weight, l)
            _ = add(p + "attention.query_key_value.bias", [3 * d], .bias, l)
            _ = add(p + "attention.dense.weight", [d, d], .weight, l)
            _ = add(p + "attention.dense.bias", [d], .bias, l)
            _ = add(p + "mlp.dense_h_to_4h.weight", [i, d], .weight, l)
            _ = add(p + "mlp.dense_h_to_4h.bias", [i], .bias, l)
            _ = add(p + "mlp.dense_4h_to_h.weight", [d, i], .weight, l)
            _ = add(p + "mlp.dense_4h_to_h.bias", [d], .bias, l)
        }
        layerBase = bases
        finalLnW = add("gpt_neox.final_layer_norm.weight", [d], .norm, nil)
        finalLnB = add("gpt_neox.final_layer_norm.bias", [d], .norm, nil)
        embedOut = add("embed_out.weight", [v, d], .embedding, nil)
        tensors = TensorTable(list)
        totalCount = off
    }

    public func find(_ name: String) -> Int? { tensors.position(of: name) }
    public subscript(_ name: String) -> TensorEntry? { tensors[name] }
    /// Index of a block's tensor.
    public func index(layer: Int, _ slot: Slot) -> Int { layerBase[layer] + slot.rawValue }
    /// Number of parameters (without alignment padding).
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }
}

/// A flat float block laid out by a `ParameterTable` (parameters, gradients, or optimizer moments).
public final class ParameterBlock {
    public let table: ParameterTable
    public let storage: FloatBuffer

    public init(table: ParameterTable) {
        self.table = table
        storage = FloatBuffer(count: table.totalCount)
    }

    public var base: UnsafeMutablePointer<Float> { storage.ptr }
    @inline(__always) public func ptr(_ tensor: Int) -> UnsafeMutablePointer<Float> { storage.ptr + table.tensors[tensor].offset }
    public func view(_ tensor: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: ptr(tensor), count: table.tensors[tensor].count)
    }
    /// The tensor called `name` (Hugging Face name), or nil.
    public func view(_ name: String) -> UnsafeMutableBufferPointer<Float>? { table.find(name).map { view($0) } }
    public func zero() { storage.zero() }

    /// Copies `values` into a named tensor; the count must match.
    public func set(_ name: String, _ values: [Float]) throws(EngineError) {
        guard let k = table.find(name) else { throw .invalid("no parameter named \(name)") }
        let v = view(k)
        guard values.count == v.count else {
            throw .invalid("parameter \(name): expected \(v.count) values (\(table.tensors[k].shape)), got \(values.count)")
        }
        _ = v.update(from: values)
    }
}
