/// One tensor of the flat parameter block.
public struct ParameterInfo: Sendable, Equatable {
    public enum Kind: Sendable { case embedding, weight, bias, norm }
    public let name: String        // Hugging Face name, e.g. "gpt_neox.layers.3.mlp.dense_4h_to_h.weight"
    public let offset: Int         // in floats, 16-float aligned
    public let shape: [Int]        // as PyTorch stores it
    public let kind: Kind
    public let layer: Int?         // block index, nil for embeddings / final LayerNorm / unembedding
    public var count: Int { shape.reduce(1, *) }
    /// Decoupled weight decay applies to 2-D tensors only (weight matrices and both embeddings),
    /// never to biases or LayerNorm parameters.
    public var decays: Bool { shape.count == 2 }
}

/// Name → (offset, shape) for the parameters, their gradients and the AdamW moments, which share it.
/// Order is Hugging Face's `named_parameters()` order.
public struct ParameterTable: Sendable {
    public let tensors: [ParameterInfo]
    public let totalCount: Int
    private let index: [String: Int]

    /// Per block, indices into `tensors` of its 12 tensors, in this order.
    public enum Slot: Int, CaseIterable, Sendable {
        case ln1W, ln1B, ln2W, ln2B, qkvW, qkvB, denseW, denseB, fc1W, fc1B, fc2W, fc2B
    }
    public let embedIn: Int, finalLnW: Int, finalLnB: Int, embedOut: Int
    private let layerBase: [Int]

    public init(config c: ModelConfig) {
        var list: [ParameterInfo] = []
        var off = 0
        func add(_ name: String, _ shape: [Int], _ kind: ParameterInfo.Kind, _ layer: Int?) -> Int {
            list.append(ParameterInfo(name: name, offset: off, shape: shape, kind: kind, layer: layer))
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
        tensors = list
        totalCount = off
        var idx: [String: Int] = [:]
        for (k, t) in list.enumerated() { idx[t.name] = k }
        index = idx
    }

    public func find(_ name: String) -> Int? { index[name] }
    public subscript(_ name: String) -> ParameterInfo? { index[name].map { tensors[$0] } }
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
