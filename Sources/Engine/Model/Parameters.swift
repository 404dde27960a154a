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
            self.layer = parts.count > 2 && (parts[0] == "gpt_neox" || parts[0] == "model") && parts[1] == "layers" ? Int(parts[2]) : nil
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
///
/// The model's code addresses a block's tensors by role (`Slot`, named after GPT-NeoX's): in a
/// llama block qkvW is the run q_proj, k_proj, v_proj and fc1W the run gate_proj, up_proj, each laid
/// out back to back so one GEMM computes the fused product; denseW is o_proj and fc2W down_proj;
/// the biases and the norms' biases do not exist. LoRA adapts the matrices one by one (`Slot`s qW…downW).
public struct ParameterTable: Sendable {
    public let tensors: TensorTable
    public let totalCount: Int
    public let architecture: Architecture

    /// A block's tensors by role (the first 12) and, for llama, its single matrices (the rest).
    public enum Slot: Int, CaseIterable, Sendable {
        case ln1W, ln1B, ln2W, ln2B, qkvW, qkvB, denseW, denseB, fc1W, fc1B, fc2W, fc2B
        case qW, kW, vW, oW, gateW, upW, downW
    }
    public let embedIn: Int, finalLnW: Int, finalLnB: Int, embedOut: Int
    /// [layer][slot]: tensor index, or −1 where the architecture has no such tensor.
    private let slotIndex: [[Int]]
    /// [layer]: the range of tensor indices of the block.
    public let layerTensors: [Range<Int>]

    /// Matrices a side path (LoRA) may adapt, per architecture, with their names inside a block.
    public static let adaptable: [(Slot, String)] = [
        (.qkvW, "attention.query_key_value"), (.denseW, "attention.dense"), (.fc1W, "mlp.dense_h_to_4h"), (.fc2W, "mlp.dense_4h_to_h"),
        (.qW, "self_attn.q_proj"), (.kW, "self_attn.k_proj"), (.vW, "self_attn.v_proj"), (.oW, "self_attn.o_proj"),
        (.gateW, "mlp.gate_proj"), (.upW, "mlp.up_proj"), (.downW, "mlp.down_proj"),
    ]
    static func isLlamaSlot(_ s: Slot) -> Bool { s.rawValue >= Slot.qW.rawValue }
    /// A block's tensor-name prefix.
    public static func blockPrefix(_ arch: Architecture, _ layer: Int) -> String {
        arch == .llama ? "model.layers.\(layer)." : "gpt_neox.layers.\(layer)."
    }

    public init(config c: ModelConfig) {
        var list: [TensorEntry] = []
        var off = 0
        // pad: false keeps the next tensor right behind this one (the members of a fused run)
        func add(_ name: String, _ shape: [Int], _ kind: TensorEntry.Kind, _ layer: Int?, pad: Bool = true) -> Int {
            list.append(TensorEntry(name: name, offset: off, shape: shape, kind: kind, layer: .some(layer)))
            let count = shape.reduce(1, *)
            off += pad ? (count + 15) / 16 * 16 : count
            return list.count - 1
        }
        let d = c.hidden, i = c.intermediate, v = c.vocabSize
        architecture = c.architecture
        var slots: [[Int]] = [], ranges: [Range<Int>] = []
        let none = [Int](repeating: -1, count: Slot.allCases.count)
        switch c.architecture {
        case .gptNeoX:
            embedIn = add("gpt_neox.embed_in.weight", [v, d], .embedding, nil)
            for l in 0..<c.layers {
                let p = "gpt_neox.layers.\(l)."
                let first = list.count
                var s = none
                s[Slot.ln1W.rawValue] = add(p + "input_layernorm.weight", [d], .norm, l)
                s[Slot.ln1B.rawValue] = add(p + "input_layernorm.bias", [d], .norm, l)
                s[Slot.ln2W.rawValue] = add(p + "post_attention_layernorm.weight", [d], .norm, l)
                s[Slot.ln2B.rawValue] = add(p + "post_attention_layernorm.bias", [d], .norm, l)
                s[Slot.qkvW.rawValue] = add(p + "attention.query_key_value.weight", [3 * d, d], .weight, l)
                s[Slot.qkvB.rawValue] = add(p + "attention.query_key_value.bias", [3 * d], .bias, l)
                s[Slot.denseW.rawValue] = add(p + "attention.dense.weight", [d, d], .weight, l)
                s[Slot.denseB.rawValue] = add(p + "attention.dense.bias", [d], .bias, l)
                s[Slot.fc1W.rawValue] = add(p + "mlp.dense_h_to_4h.weight", [i, d], .weight, l)
                s[Slot.fc1B.rawValue] = add(p + "mlp.dense_h_to_4h.bias", [i], .bias, l)
                s[Slot.fc2W.rawValue] = add(p + "mlp.dense_4h_to_h.weight", [d, i], .weight, l)
                s[Slot.fc2B.rawValue] = add(p + "mlp.dense_4h_to_h.bias", [d], .bias, l)
                slots.append(s); ranges.append(first..<list.count)
            }
            finalLnW = add("gpt_neox.final_layer_norm.weight", [d], .norm, nil)
            finalLnB = add("gpt_neox.final_layer_norm.bias", [d], .norm, nil)
            embedOut = add("embed_out.weight", [v, d], .embedding, nil)
        case .llama:
            let kv = c.kvHeadCount * c.headSize
            embedIn = add("model.embed_tokens.weight", [v, d], .embedding, nil)
            for l in 0..<c.layers {
                let p = "model.layers.\(l)."
                let first = list.count
                var s = none
                s[Slot.qW.rawValue] = add(p + "self_attn.q_proj.weight", [d, d], .weight, l, pad: false)
                s[Slot.kW.rawValue] = add(p + "self_attn.k_proj.weight", [kv, d], .weight, l, pad: false)
                s[Slot.vW.rawValue] = add(p + "self_attn.v_proj.weight", [kv, d], .weight, l)
                s[Slot.oW.rawValue] = add(p + "self_attn.o_proj.weight", [d, d], .weight, l)
                s[Slot.gateW.rawValue] = add(p + "mlp.gate_proj.weight", [i, d], .weight, l, pad: false)
                s[Slot.upW.rawValue] = add(p + "mlp.up_proj.weight", [i, d], .weight, l)
                s[Slot.downW.rawValue] = add(p + "mlp.down_proj.weight", [d, i], .weight, l)
                s[Slot.ln1W.rawValue] = add(p + "input_layernorm.weight", [d], .norm, l)
                s[Slot.ln2W.rawValue] = add(p + "post_attention_layernorm.weight", [d], .norm, l)
                s[Slot.qkvW.rawValue] = s[Slot.qW.rawValue]
                s[Slot.denseW.rawValue] = s[Slot.oW.rawValue]
                s[Slot.fc1W.rawValue] = s[Slot.gateW.rawValue]
                s[Slot.fc2W.rawValue] = s[Slot.downW.rawValue]
                slots.append(s); ranges.append(first..<list.count)
            }
            finalLnW = add("model.norm.weight", [d], .norm, nil)
            finalLnB = -1
            embedOut = c.tieEmbeddings ? embedIn : add("lm_head.weight", [v, d], .weight, nil)
        }
        slotIndex = slots
        layerTensors = ranges
        tensors = TensorTable(list)
        totalCount = off
    }

    public func find(_ name: String) -> Int? { tensors.position(of: name) }
    public subscript(_ name: String) -> TensorEntry? { tensors[name] }
    /// Index of a block's tensor (the first of the run for llama's qkvW and fc1W).
    public func index(layer: Int, _ slot: Slot) -> Int { slotIndex[layer][slot.rawValue] }
    /// Whether the block has this tensor (llama has no biases).
    public func has(layer: Int, _ slot: Slot) -> Bool { slotIndex[layer][slot.rawValue] >= 0 }
    /// The tensors a role covers: one, or llama's fused run (q, k, v or gate, up).
    public func run(layer: Int, _ slot: Slot) -> ClosedRange<Int> {
        let k = slotIndex[layer][slot.rawValue]
        switch (architecture, slot) {
        case (.llama, .qkvW): return k...(k + 2)
        case (.llama, .fc1W): return k...(k + 1)
        default: return k...k
        }
    }
    /// The adaptable matrices a role's product covers, with their first output column in the fused product.
    public func members(_ slot: Slot, config c: ModelConfig) -> [(slot: Slot, column: Int)] {
        guard architecture == .llama else { return [(slot, 0)] }
        let kv = c.kvHeadCount * c.headSize
        switch slot {
        case .qkvW: return [(.qW, 0), (.kW, c.hidden), (.vW, c.hidden + kv)]
        case .denseW: return [(.oW, 0)]
        case .fc1W: return [(.gateW, 0), (.upW, c.intermediate)]
        case .fc2W: return [(.downW, 0)]
        default: return [(slot, 0)]
        }
    }
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
