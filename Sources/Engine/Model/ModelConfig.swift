/// The transformer family a config builds: Pythia's GPT-NeoX or a Llama-style model.
///   gpt_neox  LayerNorm (with biases), GELU MLP, fused per-head q|k|v, biases, parallel or sequential
///             residual, untied unembedding (Hugging Face `GPTNeoXForCausalLM`)
///   llama     RMSNorm, SwiGLU MLP (gate, up, down), grouped-query attention, no biases, sequential
///             residual, tied or untied embeddings (Hugging Face `LlamaForCausalLM`)
public enum Architecture: String, Sendable, CaseIterable {
    case gptNeoX = "gpt_neox", llama
}

/// The shape and initialisation of a model, read from JSON.
///
/// Keys (defaults are those of the chosen `preset`, which defaults to "pythia-31m-shape"):
///   preset             "tiny" | "pythia-14m-shape" | "pythia-31m-shape" | "llama-tiny" | "llama-31m-shape"
///   architecture       "gpt_neox" | "llama" (the preset's); choosing llama also sets its defaults:
///                      sequential residual, rotary_pct 1, rms eps 1e-6, kv_heads = heads
///   kv_heads           llama: key/value heads of grouped-query attention (divides heads; default heads)
///   tie_embeddings     llama: the unembedding is the embedding matrix (default false)
///   layers             blocks (≥ 1)
///   hidden             model width D (divisible by heads)
///   heads              attention heads H; head size = hidden / heads
///   intermediate       MLP width I (Pythia: 4·hidden)
///   rotary_pct         fraction of each head rotated (0...1); Int(head_size·rotary_pct) must be even
///   rotary_base        rotary base θ, default 10000
///   parallel_residual  x + attn(ln1(x)) + mlp(ln2(x)) (true, Pythia) or sequential (false)
///   layer_norm_eps     default 1e-5
///   vocab_size         from the dataset; 0 means "not set yet" (a model cannot be built with it)
///   max_positions      longest sequence, default 2048
///   init_range         std of the normal init of weight matrices and embeddings, default 0.02
///   seed               initialisation seed, default 1234
public struct ModelConfig: Equatable, Sendable {
    public var preset: String
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var intermediate: Int
    public var rotaryPct: Double
    public var rotaryBase: Double
    public var parallelResidual: Bool
    public var layerNormEps: Double
    public var vocabSize: Int
    public var maxPositions: Int
    public var initRange: Double
    public var seed: UInt64
    public var architecture: Architecture = .gptNeoX
    /// Key/value heads (grouped-query attention, llama only); 0 means one per query head.
    public var kvHeads: Int = 0
    /// The unembedding shares the embedding matrix (llama only).
    public var tieEmbeddings = false

    public static let presets = ["tiny", "pythia-14m-shape", "pythia-31m-shape", "llama-tiny", "llama-31m-shape"]

    /// The values of a preset (vocab_size 0: set it from the dataset).
    public static func preset(_ name: String) -> ModelConfig? {
        func make(_ l: Int, _ d: Int, _ h: Int, _ i: Int) -> ModelConfig {
            ModelConfig(preset: name, layers: l, hidden: d, heads: h, intermediate: i, rotaryPct: 0.25, rotaryBase: 10000,
                        parallelResidual: true, layerNormEps: 1e-5, vocabSize: 0, maxPositions: 2048, initRange: 0.02, seed: 1234)
        }
        switch name {
        case "tiny": return make(2, 64, 4, 256)
        case "pythia-14m-shape": return make(6, 128, 4, 512)
        case "pythia-31m-shape": return make(6, 256, 8, 1024)
        // Llama-style shapes: SwiGLU's three matrices at intermediate ≈ 8/3·hidden hold as many
        // parameters as GPT-NeoX's two at 4·hidden; half as many key/value heads as query heads.
        case "llama-tiny": return make(2, 64, 4, 176).asLlama(kvHeads: 2)
        case "llama-31m-shape": return make(6, 256, 8, 688).asLlama(kvHeads: 4)
        default: return nil
        }
    }

    /// This config with the llama defaults: sequential residual, rotary on the whole head, RMSNorm ε 1e-6.
    func asLlama(kvHeads: Int) -> ModelConfig {
        var c = self
        c.architecture = .llama
        c.parallelResidual = false
        c.rotaryPct = 1
        c.layerNormEps = 1e-6
        c.kvHeads = kvHeads
        return c
    }

    public init(preset: String, layers: Int, hidden: Int, heads: Int, intermediate: Int, rotaryPct: Double, rotaryBase: Double,
                parallelResidual: Bool, layerNormEps: Double, vocabSize: Int, maxPositions: Int, initRange: Double, seed: UInt64) {
        self.preset = preset; self.layers = layers; self.hidden = hidden; self.heads = heads; self.intermediate = intermediate
        self.rotaryPct = rotaryPct; self.rotaryBase = rotaryBase; self.parallelResidual = parallelResidual
        self.layerNormEps = layerNormEps; self.vocabSize = vocabSize; self.maxPositions = maxPositions
        self.initRange = initRange; self.seed = seed
    }

    /// A preset with a vocabulary size (the usual way to build one in code).
    public static func named(_ preset: String, vocabSize: Int) throws(EngineError) -> ModelConfig {
        guard var c = ModelConfig.preset(preset) else {
            throw .invalid("model config: preset = \"\(preset)\" is not one of \(presets.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        c.vocabSize = vocabSize
        try c.validate()
        return c
    }

    /// The fields after `preset`, declared once (SpecFields): their defaults are the preset's.
    public static let fields: [SpecField<ModelConfig>] = [
        // Read first: choosing llama sets its defaults, which the keys after it may override. The
        // llama keys are echoed only for llama, so every GPT-NeoX config keeps its JSON and digests.
        SpecField("architecture", read: { (r: inout JSONReader, c: inout ModelConfig) throws(EngineError) in
            let name = try r.string("architecture", default: c.architecture.rawValue, oneOf: Architecture.allCases.map(\.rawValue))
            if name == Architecture.llama.rawValue && c.architecture != .llama { c = c.asLlama(kvHeads: 0) }
            if name == Architecture.gptNeoX.rawValue && c.architecture != .gptNeoX {
                throw .invalid("model config: architecture = \"gpt_neox\" with the llama preset \"\(c.preset)\"; pick a GPT-NeoX preset")
            }
        }, write: { $0.architecture == .llama ? .string($0.architecture.rawValue) : nil }),
        SpecField("kv_heads", read: { (r: inout JSONReader, c: inout ModelConfig) throws(EngineError) in
            c.kvHeads = try r.int("kv_heads", default: c.kvHeads, min: 0, max: 1 << 12)
        }, write: { $0.architecture == .llama ? .int($0.kvHeadCount) : nil }),
        SpecField("tie_embeddings", read: { (r: inout JSONReader, c: inout ModelConfig) throws(EngineError) in
            c.tieEmbeddings = try r.bool("tie_embeddings", default: c.tieEmbeddings)
        }, write: { $0.architecture == .llama ? .bool($0.tieEmbeddings) : nil }),
        .int("layers", \.layers, min: 1, max: 1024),
        .int("hidden", \.hidden, min: 1, max: 1 << 16),
        .int("heads", \.heads, min: 1, max: 1 << 12),
        .int("intermediate", \.intermediate, min: 1, max: 1 << 18),
        .double("rotary_pct", \.rotaryPct, min: 0, max: 1),
        .double("rotary_base", \.rotaryBase, min: 1),
        .bool("parallel_residual", \.parallelResidual),
        .double("layer_norm_eps", \.layerNormEps, min: 0, max: 1, exclusiveMin: true),
        .int("vocab_size", \.vocabSize, min: 0, max: 1 << 24),
        .int("max_positions", \.maxPositions, min: 1, max: 1 << 20),
        .double("init_range", \.initRange, min: 0, max: 10),
        .seed("seed", \.seed),
    ]
    public static var keys: [String] { ["preset"] + fields.map(\.key) }

    public init(json: JSON, path: String = "model config") throws(EngineError) {
        var r = try JSONReader(json, path: path)
        let name = try r.string("preset", default: "pythia-31m-shape", oneOf: ModelConfig.presets)
        var c = ModelConfig.preset(name)!
        c.vocabSize = 0
        try SpecFields.decode(ModelConfig.fields, into: &c, from: &r)
        try r.finish()
        self = c
        try validate(path: path)
    }

    public init(text: String, path: String = "model config") throws(EngineError) {
        let t = text.trimmingSpaces
        try self.init(json: t.isEmpty ? .object([]) : JSON.parse(t, what: path), path: path)
    }

    public var headSize: Int { hidden / heads }
    /// Key/value heads: kv_heads, or one per query head.
    public var kvHeadCount: Int { kvHeads == 0 ? heads : kvHeads }
    public var isLlama: Bool { architecture == .llama }
    /// Rotated dims per head, as Hugging Face computes it: int(head_size · rotary_pct).
    public var rotaryDims: Int { Int(Double(headSize) * rotaryPct) }

    /// Checks the relations between fields (ranges of single fields are checked when reading).
    public func validate(path: String = "model config") throws(EngineError) {
        if layers < 1 { throw .invalid("\(path): layers = \(layers) must be at least 1") }
        if hidden < 1 || heads < 1 || intermediate < 1 {
            throw .invalid("\(path): hidden, heads and intermediate must be at least 1 (got \(hidden), \(heads), \(intermediate))")
        }
        if hidden % heads != 0 {
            throw .invalid("\(path): hidden = \(hidden) is not divisible by heads = \(heads)")
        }
        if rotaryDims % 2 != 0 {
            throw .invalid("\(path): rotary dims = int(head_size \(headSize) × rotary_pct \(JSON.format(rotaryPct))) = \(rotaryDims) must be even")
        }
        if !(layerNormEps > 0) { throw .invalid("\(path): layer_norm_eps must be greater than 0") }
        if isLlama {
            if parallelResidual {
                throw .invalid("\(path): parallel_residual = true is GPT-NeoX's; the llama architecture adds attention and MLP in sequence (set it to false)")
            }
            if kvHeadCount > heads || heads % kvHeadCount != 0 {
                throw .invalid("\(path): kv_heads = \(kvHeadCount) must divide heads = \(heads) (each key/value head serves heads / kv_heads query heads)")
            }
        } else {
            if kvHeads != 0 && kvHeads != heads {
                throw .invalid("\(path): kv_heads = \(kvHeads) needs architecture = \"llama\" (GPT-NeoX has one key/value head per query head)")
            }
            if tieEmbeddings { throw .invalid("\(path): tie_embeddings = true needs architecture = \"llama\" (GPT-NeoX's unembedding is its own matrix)") }
        }
        if vocabSize < 0 { throw .invalid("\(path): vocab_size = \(vocabSize) must not be negative") }
    }

    /// Every field, defaults filled in.
    public func toJSON() -> JSON { .object([("preset", .string(preset))] + SpecFields.echo(ModelConfig.fields, self)) }
}

extension ModelConfig {
    /// A config from JSON, with the vocabulary taken from the dataset when there is one (which must
    /// then fit in it). `what` names the spec in messages.
    public static func forDataset(json: String, dataset: Dataset?, what: String = "model config") throws(EngineError) -> ModelConfig {
        var cfg = try ModelConfig(text: json.isEmpty ? "{}" : json)
        if let ds = dataset {
            if cfg.vocabSize == 0 { cfg.vocabSize = ds.vocabSize }
            try ds.checkFits(vocabSize: cfg.vocabSize, what: what)
        }
        guard cfg.vocabSize >= 2 else { throw .invalid("\(what) has no vocab_size; pass a dataset or set vocab_size") }
        try cfg.validate()
        return cfg
    }
}

