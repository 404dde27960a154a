/// Which parts of the model an editor may change: blocks × {attention, MLP}, or named matrices,
/// optionally the embeddings and the unembedding.
public struct LayerSelection {
    public static let attentionMatrices = ["attention.query_key_value", "attention.dense"]
    public static let mlpMatrices = ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
    public static let allMatrices = attentionMatrices + mlpMatrices

    public var blocks: [Int] = []          // empty = every block
    public var sublayers = "both"          // "attention", "mlp", "both", or "none"
    public var matrices: [String] = []     // overrides sublayers: e.g. ["dense_4h_to_h"]
    public var embeddings = false
    public var unembedding = false
    public var biases = true               // full fine-tuning also trains the selected matrices' biases

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

    public init(_ r: inout JSONReader, layers: Int) throws(EngineError) {
        try SpecFields.decode(LayerSelection.fields, into: &self, from: &r)
        for (i, b) in blocks.enumerated() where b < 0 || b >= layers {
            throw .invalid("\(r.path): blocks[\(i)] = \(b) but the model has \(layers) blocks (0...\(layers - 1))")
        }
        let short = LayerSelection.allMatrices.map { String($0.split(separator: ".").last!) }
        for (i, m) in matrices.enumerated() where !short.contains(m) && !LayerSelection.allMatrices.contains(m) {
            throw .invalid("\(r.path): matrices[\(i)] = \"\(m)\" is not one of \(short.joined(separator: ", "))")
        }
        if blocks.isEmpty { blocks = Array(0..<layers) }
    }

    public func toJSON() -> JSON { .object(SpecFields.echo(LayerSelection.fields, self)) }

    /// The selected weight matrices' names (Hugging Face), in table order.
    public func matrixNames(layers: Int) -> [String] {
        var kinds: [String]
        if !matrices.isEmpty {
            kinds = LayerSelection.allMatrices.filter { full in matrices.contains { full == $0 || full.hasSuffix("." + $0) } }
        } else {
            switch sublayers {
            case "attention": kinds = LayerSelection.attentionMatrices
            case "mlp": kinds = LayerSelection.mlpMatrices
            case "both": kinds = LayerSelection.allMatrices
            default: kinds = []
            }
        }
        var names: [String] = []
        for b in blocks.sorted() { for k in kinds { names.append("gpt_neox.layers.\(b).\(k).weight") } }
        return names
    }

    /// Every tensor full fine-tuning trains: matrices (and their biases), embeddings, unembedding.
    public func tensorNames(layers: Int) -> [String] {
        var names: [String] = []
        if embeddings { names.append("gpt_neox.embed_in.weight") }
        for m in matrixNames(layers: layers) {
            names.append(m)
            if biases { names.append(String(m.dropLast("weight".count)) + "bias") }
        }
        if unembedding { names.append("embed_out.weight") }
        return names
    }
}
