/// Which parts of the model an editor may change: blocks × {attention, MLP}, or named matrices,
/// optionally the embeddings and the unembedding.
public struct LayerSelection {
    public static let attentionMatrices = ["attention.query_key_value", "attention.dense"]
    public static let mlpMatrices = ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
    public static let llamaAttentionMatrices = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
    public static let llamaMlpMatrices = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

    /// A block's (attention, MLP) weight matrices in table order.
    public static func matrices(_ arch: Architecture) -> (attention: [String], mlp: [String]) {
        arch == .llama ? (llamaAttentionMatrices, llamaMlpMatrices) : (attentionMatrices, mlpMatrices)
    }
    /// The MLP matrix whose input is the key of locate-then-edit methods (ROME, MEMIT, AlphaEdit).
    public static func keyMatrix(_ arch: Architecture) -> String { arch == .llama ? "mlp.down_proj" : "mlp.dense_4h_to_h" }
    /// The key matrix's weight name in a block.
    public static func keyMatrixName(_ arch: Architecture, block: Int) -> String {
        ParameterTable.blockPrefix(arch, block) + keyMatrix(arch) + ".weight"
    }

    public var blocks: [Int] = []          // empty = every block
    public var sublayers = "both"          // "attention", "mlp", "both", or "none"
    public var matrices: [String] = []     // overrides sublayers: e.g. ["dense_4h_to_h"]
    public var embeddings = false
    public var unembedding = false
    public var biases = true               // full fine-tuning also trains the selected matrices' biases (GPT-NeoX)
    /// Whose tensor names the selection gives, and whether the unembedding is the embedding (from the model).
    public var architecture = Architecture.gptNeoX
    public var tiedEmbeddings = false

    public init() {}

    /// The "layers" object's fields, declared once.
    public static let fields: [SpecField<LayerSelection>] = [
        .ints("blocks", \.blocks),
        .string("sublayers", \.sublayers, oneOf: ["attention", "mlp", "both", "none"]),
        .strings("matrices", \.matrices),
        .bool("embeddings", \.embeddings),
        .bool("unembedding", \.unembedding),
        .bool("biases", \.biases),
    ]

    public init(_ r: inout JSONReader, layers: Int, architecture: Architecture = .gptNeoX, tiedEmbeddings: Bool = false) throws(EngineError) {
        self.architecture = architecture
        self.tiedEmbeddings = tiedEmbeddings
        try SpecFields.decode(LayerSelection.fields, into: &self, from: &r)
        for (i, b) in blocks.enumerated() where b < 0 || b >= layers {
            throw .invalid("\(r.path): blocks[\(i)] = \(b) but the model has \(layers) blocks (0...\(layers - 1))")
        }
        let all = allMatrices
        let short = all.map { String($0.split(separator: ".").last ?? "") }
        for (i, m) in matrices.enumerated() where !short.contains(m) && !all.contains(m) {
            throw .invalid("\(r.path): matrices[\(i)] = \"\(m)\" is not one of \(short.joined(separator: ", "))")
        }
        if blocks.isEmpty { blocks = Array(0..<layers) }
    }

    public func toJSON() -> JSON { .object(SpecFields.echo(LayerSelection.fields, self)) }

    /// The architecture's block matrices, attention then MLP.
    var allMatrices: [String] { let m = LayerSelection.matrices(architecture); return m.attention + m.mlp }

    /// The selected weight matrices' names (Hugging Face), in table order.
    public func matrixNames(layers: Int) -> [String] {
        var kinds: [String]
        let m = LayerSelection.matrices(architecture)
        if !matrices.isEmpty {
            kinds = allMatrices.filter { full in matrices.contains { full == $0 || full.hasSuffix("." + $0) } }
        } else {
            switch sublayers {
            case "attention": kinds = m.attention
            case "mlp": kinds = m.mlp
            case "both": kinds = m.attention + m.mlp
            default: kinds = []
            }
        }
        var names: [String] = []
        for b in blocks.sorted() { for k in kinds { names.append(ParameterTable.blockPrefix(architecture, b) + k + ".weight") } }
        return names
    }

    /// Every tensor full fine-tuning trains: matrices (and their biases; llama has none), embeddings,
    /// unembedding (llama with tied embeddings: the embedding matrix, named once).
    public func tensorNames(layers: Int) -> [String] {
        let llama = architecture == .llama
        var names: [String] = []
        if embeddings || (unembedding && tiedEmbeddings) { names.append(llama ? "model.embed_tokens.weight" : "gpt_neox.embed_in.weight") }
        for m in matrixNames(layers: layers) {
            names.append(m)
            if biases && !llama { names.append(String(m.dropLast("weight".count)) + "bias") }
        }
        if unembedding && !tiedEmbeddings { names.append(llama ? "lm_head.weight" : "embed_out.weight") }
        return names
    }
}
