#if canImport(Glibc)
import Glibc
#endif

/// An edit experiment: any editor on a model and an edit set, in one of the modes, measured before
/// and after on every test group of the edit set (EditMetrics), with the deltas of the changed
/// tensors, the report and the file (EditReport.swift). A state machine: `step()` until nil, then
/// `finish()`.
///
/// Modes: batch (one run on the whole set), sequential (one run per edit, each on the model the
/// previous left), one_at_a_time (each edit alone on the original model; the metrics average them
/// and the model is restored). "Before" results are computed once per (model digest, edit set
/// digest) and reused across editors and grid cells (BeforeResults).
public final class EditExperiment {
    public let model: LanguageModel
    public let editSet: EditSet
    public let method: EditMethodSpec
    public let dataset: Dataset?
    /// What the runs share (sequential mode: each run builds on the last; one at a time: each run alone).
    let shared = ExperimentState()
    let original: [Float]
    let changed: [String]
    var runs: [EditSet]
    var runIndex = 0
    var editor: Editor?
    public private(set) var result = EditResult()
    /// One at a time: the edited groups with row i as measured right after edit i's own run.
    var ownRuns: [String: GroupResult] = [:]
    /// Sequential: edit i's prompt correct right after run i.
    var rightAfter: [UInt8] = []
    public private(set) var stepsTaken = 0
    public let totalSteps: Int
    /// The model's content digest before the edit.
    public let modelDigestBefore: String
    /// Whether the before results came from BeforeResults (an earlier experiment on the same model and set).
    public private(set) var beforeWasCached = false
    let started = monotonicSeconds()
    var done = false
    /// Unlearn sets: the oracle's results on the forget group (`setOracle`) and the relearning attack's.
    var unlearning = UnlearningMetrics.Extras()
    /// The content digest of the oracle's training dataset, once one is set.
    public private(set) var oracleDataset: String?

    /// An edit dropped before `finish()` (freed, or failed mid-way) leaves the model as trained so far
    /// and never with a LoRA side path still attached: the adapter network and the model reference
    /// each other, so it is detached here.
    deinit {
        if let own = sidePath, model.net.adapter === own {
            model.net.adapter = nil
            model.setTrainable(nil)
        }
    }
    /// The LoRA side path this experiment's current run attached to the model, if any.
    weak var sidePath: LoRANetwork?

    /// `facts` (the dataset's) splits the edit set into one set per edit for the sequential modes.
    /// `dataset`, when given, is the one the edit set was made from (editors that read training data need it).
    public convenience init(model: LanguageModel, editSet: EditSet, facts: FactView, method: EditMethodSpec, dataset: Dataset? = nil) throws(EngineError) {
        let perEdit = method.mode == .batch ? [] : try EditExperiment.perEditSets(editSet, facts: facts)
        try self.init(model: model, editSet: editSet, method: method, perEditSets: perEdit, dataset: dataset)
    }

    /// `perEditSets` gives each edit's own set, for the sequential and one-at-a-time modes.
    public init(model: LanguageModel, editSet: EditSet, method: EditMethodSpec, perEditSets: [EditSet] = [], dataset: Dataset? = nil) throws(EngineError) {
        if editSet.isForgetSet && !(method.editor is any UnlearnMethodSpec) {
            throw .invalid("edit method: \(method.method) is not an unlearning method; a forget set (kind \"unlearn\") is unlearned with one of \(UnlearnObjective.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        self.dataset = dataset
        // A side path is not in the weights or the digest: the before results would be ambiguous.
        guard model.net.adapter == nil else {
            throw .misuse("edit: the model runs a side-path adapter; remove it (or apply it merged) before editing")
        }
        self.model = model
        self.editSet = editSet
        self.method = method
        original = Array(model.parameterBlock)
        changed = method.changedTensors
        for n in changed where !model.tensorTable.contains(name: n) {
            throw .invalid("edit method: the model has no tensor \(n)")
        }
        try method.editor.check(model, selection: method.selection)
        switch method.mode {
        case .batch: runs = [editSet]
        case .sequential, .oneAtATime:
            guard perEditSets.count == editSet.edits.count, !perEditSets.isEmpty else {
                throw .invalid("edit method: mode \"\(method.mode.rawValue)\" needs one edit set per edit")
            }
            runs = perEditSets
        }
        totalSteps = runs.reduce(0) { $0 + method.editor.steps(for: $1) }
        modelDigestBefore = model.contentDigest
        let key = BeforeResults.Key(model: modelDigestBefore, editSet: editSet.contentDigest)
        if let cached = BeforeResults.shared.get(key) {
            result.before = cached
            beforeWasCached = true
        } else {
            let t0 = monotonicSeconds()
            result.before = try evaluateAll()
            result.beforeSeconds = monotonicSeconds() - t0
            BeforeResults.shared.put(key, result.before)
        }
        result.beforeCached = beforeWasCached
        try startRun()
    }

    /// One edit set per edit (kind single, that edit's subject, relation and new object), built with
    /// the same spec from the dataset's facts: the runs of the sequential modes.
    public static func perEditSets(_ set: EditSet, facts: FactView) throws(EngineError) -> [EditSet] {
        var out: [EditSet] = []
        for e in set.edits {
            var spec = set.spec
            spec.kind = .single
            spec.count = 1
            spec.subjects = [e.subject]
            spec.newObject = e.newObject
            spec.relation = e.relation
            spec.datasetFingerprint = ""
            out.append(try EditSetBuilder.build(spec, facts: facts))
        }
        return out
    }

    /// Refuses an edit set made from another dataset than the model's.
    public static func checkCompatible(model: LanguageModel, datasetVocab: Int, datasetTokenizer: String) throws(EngineError) {
        guard datasetVocab <= model.vocabSize else {
            throw .invalid("edit: the edit set's dataset has \(datasetVocab) tokens but the model's vocabulary has \(model.vocabSize): the edit set belongs to a different dataset")
        }
        if !model.tokenizerJSON.isEmpty, model.tokenizerJSON != datasetTokenizer {
            throw .invalid("edit: the edit set's dataset has a different vocabulary layout from the one the model was made for: the edit set belongs to a different dataset")
        }
    }

    func evaluateAll() throws(EngineError) -> [GroupResult] {
        var out: [GroupResult] = []
        for g in editSet.groups {
            out.append(try evaluatePrompts(g, vocab: model.vocabSize, batchSize: 256) { (tk, rows, width, lengths, o) throws(EngineError) in
                try model.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
            })
        }
        return out
    }

    func startRun() throws(EngineError) {
        if method.mode == .oneAtATime { restoreOriginal() }
        editor = try method.editor.makeEditor(EditContext(model: model, editSet: runs[runIndex], selection: method.selection, run: runIndex,
                                                          dataset: dataset, shared: method.mode == .oneAtATime ? ExperimentState() : shared,
                                                          experimentEdits: method.mode == .oneAtATime ? nil : editSet.edits))
        sidePath = model.net.adapter as? LoRANetwork
    }

    func restoreOriginal() {
        original.withUnsafeBufferPointer { model.parameterBlock.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// Writes the run's edit into the model and keeps its artifacts.
    func commitRun() throws(EngineError) {
        guard let e = editor else { return }
        editor = nil  // releases a fine-tuning wrapper: the model's trainable set is reset
        let artifacts = try e.commit()
        if !artifacts.adapters.isEmpty { result.adapters = artifacts.adapters }
        if let r = artifacts.report { result.editorRuns.append(r) }
        result.vectors += artifacts.vectors.map { (runs.count > 1 ? "run\(runIndex)/\($0.name)" : $0.name, $0.values, $0.shape) }
    }

    public func step() throws(EngineError) -> StepReport? {
        if done { return nil }
        guard let e = editor else { return nil }
        if let r = try e.step() {
            stepsTaken += 1
            result.finalLoss = r.loss
            var rep = r
            rep.step = stepsTaken
            rep.totalSteps = totalSteps
            return rep
        }
        try commitRun()
        if method.mode == .oneAtATime { try recordOwnRun() }
        if method.mode == .sequential { try recordRightAfter() }
        runIndex += 1
        if runIndex < runs.count {
            try startRun()
            return try step()
        }
        done = true
        return nil
    }

    /// Sequential: whether edit i's prompt gives its new object right after its own run (before the
    /// later runs), for the retention of earlier edits after later ones.
    func recordRightAfter() throws(EngineError) {
        guard let g = editSet.group("edited"), runIndex < g.count else { return }
        let own = PromptSet(name: "edited", prompts: Array(g.prompt(runIndex)), offsets: [0, Int64(g.length(runIndex))],
                            targets: [g.targets[runIndex]])
        let r = try evaluatePrompts(own, vocab: model.vocabSize, batchSize: 1) { (tk, rows, width, lengths, o) throws(EngineError) in
            try model.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }
        rightAfter.append(r.correct[0])
    }

    /// Sequential: the retention metrics from `rightAfter` and the final edited results.
    func sequentialMetrics() -> [(name: String, value: Double, definition: String)] {
        guard method.mode == .sequential, let end = result.group("edited"), rightAfter.count == end.count, end.count > 0 else { return [] }
        let n = Double(end.count)
        let took = rightAfter.indices.filter { rightAfter[$0] != 0 }
        var out: [(String, Double, String)] = [
            ("edit_success_right_after", Double(took.count) / n, "sequential: fraction of edits whose prompt gives the new object right after the edit's own run, before the later runs"),
        ]
        if !took.isEmpty {
            let kept = took.filter { end.correct[$0] != 0 }.count
            out.append(("sequential_retention", Double(kept) / Double(took.count),
                        "sequential: of the edits that held right after their own run, the fraction still holding after every later run (1 − this: overwritten by later edits)"))
        }
        let late = rightAfter.indices.filter { rightAfter[$0] == 0 && end.correct[$0] != 0 }.count
        out.append(("sequential_late_success", Double(late) / n, "sequential: fraction of edits that failed right after their own run but hold at the end (written by later runs)"))
        return out.map { (name: $0.0, value: $0.1, definition: $0.2) }
    }

    /// One at a time: edit i's own prompts (row i of the edited groups) as they are right after its run.
    func recordOwnRun() throws(EngineError) {
        let after = try evaluateAll()
        let e = editSet.edits[runIndex]
        let i = runIndex
        // Each edited group holds the same number of rows per edit, edit by edit (one, or one per
        // held-out template for edited_paraphrase).
        for g in after where ["edited", "edited_original", "edited_paraphrase"].contains(g.name) && !editSet.edits.isEmpty && g.count % editSet.edits.count == 0 {
            var own = ownRuns[g.name] ?? g
            let per = g.count / editSet.edits.count
            for j in (i * per)..<((i + 1) * per) {
                own.predicted[j] = g.predicted[j]
                own.correct[j] = g.correct[j]
                own.targetProbability[j] = g.targetProbability[j]
                own.targetRank[j] = g.targetRank[j]
                if !g.alternativeProbability.isEmpty { own.alternativeProbability[j] = g.alternativeProbability[j] }
            }
            ownRuns[g.name] = own
        }
        let edited = after.first { $0.name == "edited" }
        let remaining = after.first { $0.name == "remaining" }
        result.perEdit.append(.object([
            ("subject", .int(e.subject)), ("relation", .int(e.relation)), ("new_object", .int(e.newObject)),
            ("edit_success", .number(Double(edited?.correct[i] ?? 0))),
            ("remaining_accuracy", .number(remaining?.accuracy ?? 0)),
        ]))
    }

    /// Measures an oracle (a model trained without the forget set; UnlearningMetrics.checkOracle
    /// refuses any other) on the forget group now, for forget_quality and oracle_agreement at the end.
    public func setOracle(_ oracle: LanguageModel) throws(EngineError) {
        guard let dataset else { throw .misuse("oracle: the edit has no dataset to check the oracle against") }
        guard oracle !== model else { throw .invalid("oracle: the oracle is the model being edited") }
        try EditExperiment.checkCompatible(model: oracle, datasetVocab: dataset.vocabSize, datasetTokenizer: dataset.tokenizerJSON().serialized())
        oracleDataset = try UnlearningMetrics.checkOracle(oracle, dataset: dataset, editSet: editSet)
        guard let g = editSet.group("forget") else { throw .internalError("unlearn set without a forget group") }
        unlearning.oracle = try evaluatePrompts(g, vocab: oracle.vocabSize, batchSize: 256) { (tk, rows, width, lengths, o) throws(EngineError) in
            try oracle.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }
    }

    /// The relearning attack (RelearnSpec) on the unlearned model; the weights are put back after.
    func relearn(_ spec: RelearnSpec) throws(EngineError) -> UnlearningMetrics.RelearnOutcome {
        guard let g = editSet.group("forget") else { throw .internalError("unlearn set without a forget group") }
        let saved = Array(model.parameterBlock)
        defer { saved.withUnsafeBufferPointer { model.parameterBlock.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
        var rng = RNG(seed: spec.seed, stream: "relearn")
        let n = g.count
        let k = max(1, Int((spec.fraction * Double(n)).rounded()))
        var measured = Array(0..<n)
        let examples: AnswerExamples
        if spec.data == .forget {
            guard n >= 2 else { throw .invalid("relearn: data \"forget\" needs a forget set of at least 2 facts (one to train on, one to measure)") }
            var order = Array(0..<n)
            rng.shuffle(&order)
            let trained = Array(order.prefix(min(k, n - 1)))
            examples = AnswerExamples(g, rows: trained)
            let t = Set(trained)
            measured = measured.filter { !t.contains($0) }
        } else {
            // unrelated facts: retained facts of subjects and relations with nothing forgotten (else any retained)
            let pool = editSet.group("retain_other") ?? editSet.retainGroupNames.compactMap { editSet.group($0) }.first
            guard let pool, pool.count > 0 else { throw .invalid("relearn: data \"retain\" needs retained facts, and this set has none") }
            var order = Array(0..<pool.count)
            rng.shuffle(&order)
            examples = AnswerExamples(pool, rows: Array(order.prefix(min(k, pool.count))))
        }
        var s = UnlearnSettings(.relabel)
        s.gamma = 1
        s.retainWeight = 0
        s.optimizer.training.learningRate = spec.learningRate
        s.optimizer.training.minLearningRate = spec.learningRate
        s.optimizer.training.warmupSteps = 0
        s.optimizer.training.batchSize = min(spec.batchSize, examples.count)
        s.optimizer.training.seed = spec.seed
        // every tensor of the selection, fully (an attacker holding the weights; LoRA edits too)
        let editor = try UnlearnEditor(s, model: model, selection: method.selection, run: 0, forget: examples, retain: AnswerExamples(),
                                       relabel: examples.answers, stepLimit: spec.steps)
        while try editor.step() != nil {}
        _ = try editor.commit()
        let after = try evaluatePrompts(g, vocab: model.vocabSize, batchSize: 256) { (tk, rows, width, lengths, o) throws(EngineError) in
            try model.logitsAtLast(tokens: tk, rows: rows, width: width, lengths: lengths, out: o)
        }
        return .init(forget: after, measured: measured, trained: examples.count, spec: spec)
    }

    /// Evaluates after the edit and assembles metrics and deltas. In one-at-a-time mode (and for an
    /// editor that keeps the model unchanged, unmerged LoRA) the model is restored afterwards.
    public func finish() throws(EngineError) -> EditResult {
        if !done {
            // Stopped early (a callback, a budget): keep what was done so far and measure it.
            try commitRun()
            done = true
            result.stoppedEarly = true
        }
        result.steps = stepsTaken
        let block = model.parameterBlock
        for n in changed {
            let e = model.tensorTable[n]!
            var d = [Float](repeating: 0, count: e.count)
            for i in 0..<e.count { d[i] = block[e.offset + i] - original[e.offset + i] }
            result.deltas.append((e, d))
        }
        for e in model.tensorTable {
            var s = 0.0
            for i in e.offset..<(e.offset + e.count) { let d = Double(block[i] - original[i]); s += d * d }
            result.deltaNorms.append((e.name, s.squareRoot()))
        }
        result.after = try evaluateAll()
        if editSet.isForgetSet, let u = method.editor as? any UnlearnMethodSpec, u.settings.relearn.steps > 0 {
            unlearning.relearn = try relearn(u.settings.relearn)
        }
        if method.mode == .oneAtATime || method.editor.keepsModelUnchanged { restoreOriginal() }
        result.metrics = EditMetrics.all(editSet: editSet, before: result.before, after: result.after, ownRuns: ownRuns) + sequentialMetrics()
        if editSet.isForgetSet {
            result.metrics += UnlearningMetrics.all(editSet: editSet, before: result.before, after: result.after, extras: unlearning)
        }
        result.seconds = monotonicSeconds() - started
        return result
    }
}

/// Before results by (model content digest, edit set content digest): an experiment on a model and
/// an edit set that were measured before takes their results instead of evaluating again. Holds
/// the last `capacity` entries.
public final class BeforeResults {
    public struct Key: Hashable { let model: String; let editSet: String }
    public static let shared = BeforeResults()
    let capacity = 16
    var entries: [(Key, [GroupResult])] = []
    let lock = Lock()

    func get(_ key: Key) -> [GroupResult]? { lock.locked { entries.first { $0.0 == key }?.1 } }

    func put(_ key: Key, _ value: [GroupResult]) {
        lock.locked {
            entries.removeAll { $0.0 == key }
            entries.append((key, value))
            if entries.count > capacity { entries.removeFirst() }
        }
    }

    public func removeAll() { lock.locked { entries.removeAll() } }
}
