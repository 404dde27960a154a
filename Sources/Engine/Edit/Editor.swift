/// Editors: one per method (full fine-tuning, LoRA, ...). An editor is made from its own spec, sees
/// the model, the run's edit set and the layer selection, advances by `step()` and ends with
/// `commit()`, which writes its change into the model. EditExperiment runs any editor: the before
/// and after evaluation, the modes, deltas, metrics, the report and the file.
///
/// Adding a method is one file (its spec and its editor) plus one line in EditorRegistry.methods.

/// What an editor works on in one run (the sequential modes make one run per edit).
public struct EditContext {
    public let model: LanguageModel
    /// This run's edit set: the whole set in batch mode, one edit's own set in the sequential modes.
    public let editSet: EditSet
    public let selection: LayerSelection
    /// 0-based index of the run (seeds differ per run).
    public let run: Int
    /// The dataset the edit set was made from, when the caller has it: what editors that read the
    /// model's training data need (ROME's key statistics and context templates).
    public let dataset: Dataset?
    /// Kept across the runs of one experiment (statistics of the unedited model, keys of earlier edits).
    public let shared: ExperimentState
    /// Every edit of the experiment (this run's and the other runs'): what an editor that preserves
    /// "everything else" must leave out of it.
    public let experimentEdits: [Edit]

    public init(model: LanguageModel, editSet: EditSet, selection: LayerSelection, run: Int, dataset: Dataset? = nil,
                shared: ExperimentState = ExperimentState(), experimentEdits: [Edit]? = nil) {
        self.model = model; self.editSet = editSet; self.selection = selection; self.run = run
        self.dataset = dataset; self.shared = shared; self.experimentEdits = experimentEdits ?? editSet.edits
    }
}

/// What an experiment's runs share: values an editor keeps for the next run (in sequential mode each
/// run sees the model the previous one left), keyed by the editor's own names.
public final class ExperimentState {
    public var values: [String: Any] = [:]
    public init() {}
}

/// What an editor leaves besides the weights it changed.
public struct EditArtifacts {
    /// LoRA adapters (A, B) of the run, as trained.
    public var adapters: [LoRAAdapter] = []
    /// What the run computed, for the report's `editor` list (one entry per run).
    public var report: JSON? = nil
    /// Vectors for the edit file, under /editor/<name> (e.g. ROME's u, v*, k* per edit and block).
    public var vectors: [(name: String, values: [Float], shape: [Int])] = []
    public init(adapters: [LoRAAdapter] = [], report: JSON? = nil, vectors: [(name: String, values: [Float], shape: [Int])] = []) {
        self.adapters = adapters; self.report = report; self.vectors = vectors
    }
}

public protocol Editor: AnyObject {
    /// One unit of work (an optimizer step, a closed-form solve); nil when there is nothing left.
    func step() throws(EngineError) -> StepReport?
    /// Writes the edit into the model (LoRA: the merged weights) and returns the artifacts. Called
    /// once, also after fewer steps than planned (the edit was stopped early).
    func commit() throws(EngineError) -> EditArtifacts
}

/// A method's own spec: the keys of the edit method JSON beyond method, mode and layers, declared
/// once in `fields` (SpecFields) with the defaults in `init()`.
public protocol EditorSpec {
    /// The value of "method" that selects it.
    static var method: String { get }
    /// The defaults.
    init()
    static var fields: [SpecField<Self>] { get }
    /// The fields' keys (for docs and messages).
    static var keys: [String] { get }
    /// Checks that span fields or need the layer selection, after decoding.
    func validate(_ selection: LayerSelection, layers: Int) throws(EngineError)
    /// The tensors the edit may change (the report gives their deltas).
    func changedTensors(_ selection: LayerSelection, layers: Int) -> [String]
    /// Steps one run on `set` takes (for progress).
    func steps(for set: EditSet) -> Int
    /// Checks the spec against the model before anything runs (e.g. a LoRA rank the matrices allow).
    func check(_ model: LanguageModel, selection: LayerSelection) throws(EngineError)
    /// True when the model must be restored after the after-evaluation (unmerged LoRA: the change
    /// is kept as adapters beside the model).
    var keepsModelUnchanged: Bool { get }
    func makeEditor(_ context: EditContext) throws(EngineError) -> Editor
    /// The blocks edited when the spec's layers name none (nil: every block).
    static func defaultBlocks(layers: Int) -> [Int]?
}

extension EditorSpec {
    /// Reads the method's own keys; `r` is finished (unknown keys refused) by the caller.
    public init(_ r: inout JSONReader, selection: LayerSelection, layers: Int) throws(EngineError) {
        self.init()
        try SpecFields.decode(Self.fields, into: &self, from: &r)
        try validate(selection, layers: layers)
    }

    /// Every one of the method's fields with defaults filled in, in the declared (documented) order.
    public func echo() -> [(String, JSON)] { SpecFields.echo(Self.fields, self) }

    public static var keys: [String] { fields.map(\.key) }
    public func validate(_ selection: LayerSelection, layers: Int) throws(EngineError) {}
    public func check(_ model: LanguageModel, selection: LayerSelection) throws(EngineError) {}
    public var keepsModelUnchanged: Bool { false }
    public static func defaultBlocks(layers: Int) -> [Int]? { nil }
}

/// The methods "method" may name.
public enum EditorRegistry {
    public static let methods: [any EditorSpec.Type] = [
        FullFineTuneSpec.self,
        LoRASpec.self,
        FixedRankOneSpec.self,
        ROMESpec.self,
        MEMITSpec.self,
        AlphaEditSpec.self,
        UnlearnSpec<GradAscent>.self,
        UnlearnSpec<GradDiff>.self,
        UnlearnSpec<KLRetain>.self,
        UnlearnSpec<NPO>.self,
        UnlearnSpec<SimNPO>.self,
        UnlearnSpec<RMU>.self,
        UnlearnSpec<Relabel>.self,
    ]

    public static var names: [String] { methods.map { $0.method } }

    static func spec(for method: String) throws(EngineError) -> any EditorSpec.Type {
        guard let t = methods.first(where: { $0.method == method }) else {
            throw .invalid("edit method: method = \"\(method)\" is not a registered editor (registered: \(names.map { "\"\($0)\"" }.joined(separator: ", ")))")
        }
        return t
    }
}

/// How to edit (docs/training-and-editing.md, "Edit method"): the method and its own spec, the
/// mode and the layer selection.
public struct EditMethodSpec {
    public enum Mode: String { case batch, sequential, oneAtATime = "one_at_a_time" }
    public let method: String
    public let mode: Mode
    public let selection: LayerSelection
    public let editor: any EditorSpec
    public let layers: Int

    /// `architecture` and `tiedEmbeddings`: the model's (they name the tensors the selection gives).
    public init(json text: String, layers: Int, architecture: Architecture = .gptNeoX, tiedEmbeddings: Bool = false) throws(EngineError) {
        var r = try JSONReader(text: text, path: "edit method")
        method = try r.string("method", default: "lora")
        let type = try EditorRegistry.spec(for: method)
        mode = Mode(rawValue: try r.string("mode", default: "batch", oneOf: ["batch", "sequential", "one_at_a_time"]))!
        var sel = try r.object("layers")
        let blocksGiven = sel.has("blocks")
        var selection = try LayerSelection(&sel, layers: layers, architecture: architecture, tiedEmbeddings: tiedEmbeddings)
        try sel.finish()
        if !blocksGiven, let blocks = type.defaultBlocks(layers: layers) { selection.blocks = blocks }
        self.selection = selection
        editor = try type.init(&r, selection: selection, layers: layers)
        if editor is any UnlearnMethodSpec, mode != .batch {
            throw .invalid("edit method: \(method) unlearns a whole forget set in one run; mode \"\(mode.rawValue)\" is for edit sets of separate edits (use mode \"batch\")")
        }
        self.layers = layers
        // A report's method echo can be run again: its trained_tensors must be what the selection gives.
        if let listed = r.value("trained_tensors"), listed != .strings(changedTensors) {
            throw .invalid("edit method: trained_tensors is \(listed.serialized()) but the method and layers select \(JSON.strings(changedTensors).serialized()) (it is output only; leave it out)")
        }
        try r.finish()
        if changedTensors.isEmpty {
            throw .invalid("edit method: the layer selection selects nothing for method \"\(method)\" (sublayers = \"\(selection.sublayers)\", no embeddings or unembedding)")
        }
    }

    public var changedTensors: [String] { editor.changedTensors(selection, layers: layers) }

    public func toJSON() -> JSON {
        .object([("method", .string(method)), ("mode", .string(mode.rawValue)), ("layers", selection.toJSON())]
                + editor.echo() + [("trained_tensors", .strings(changedTensors))])
    }
}
