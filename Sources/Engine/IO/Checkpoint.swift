/// Model checkpoints as HDF5 (format = "behemoth.model"):
///   attrs  format, format_version, spec (model config JSON), library_version, layout,
///          tokenizer (vocabulary roles JSON of the dataset it was trained on, if any)
///   /weights/<Hugging Face name>        float32, PyTorch shapes
///   /optimizer/m/<name>, /optimizer/v/<name>, attr step   (optional: resuming)
///   /trainer  attr state (JSON: position, spec, RNG seeds)  (optional: resuming)
///   /history/step, /history/loss, /history/learning_rate, /history/grad_norm
///   /history/eval_step, /history/eval_epoch, /history/eval_accuracy   (one column per eval group,
///          attr groups = JSON list of names; attr datasets = JSON list of the content digests of
///          the datasets it was trained on, absent in files written before it existed)

public struct TrainingHistory {
    public var step: [Int64] = []
    public var loss: [Float] = []
    public var learningRate: [Float] = []
    public var gradNorm: [Float] = []
    public var evalGroups: [String] = []
    public var evalStep: [Int64] = []
    public var evalEpoch: [Int64] = []
    /// Row-major [evaluations, groups].
    public var evalAccuracy: [Float] = []
    /// Content digests of the datasets trained on, in order (so a model file says what it learned from).
    public var datasets: [String] = []

    public init() {}

    public mutating func recordDataset(_ digest: String) {
        if !datasets.contains(digest) { datasets.append(digest) }
    }

    public mutating func recordEvaluation(step: Int, epoch: Int, accuracies: [(String, Double)]) {
        if evalGroups.isEmpty { evalGroups = accuracies.map(\.0) }
        evalStep.append(Int64(step))
        evalEpoch.append(Int64(epoch))
        for g in evalGroups { evalAccuracy.append(Float(accuracies.first { $0.0 == g }?.1 ?? .nan)) }
    }

    func write(_ f: H5File) throws(EngineError) {
        try f.write("/history/step", step)
        try f.write("/history/loss", loss)
        try f.write("/history/learning_rate", learningRate)
        try f.write("/history/grad_norm", gradNorm)
        try f.write("/history/eval_step", evalStep)
        try f.write("/history/eval_epoch", evalEpoch)
        try f.write("/history/eval_accuracy", evalAccuracy, shape: [evalStep.count, evalGroups.count])
        try f.setAttribute("groups", string: JSON.strings(evalGroups).serialized(), at: "/history")
        if !datasets.isEmpty { try f.setAttribute("datasets", string: JSON.strings(datasets).serialized(), at: "/history") }
    }

    static func read(_ f: H5File) throws(EngineError) -> TrainingHistory {
        var h = TrainingHistory()
        // Every model file has a history (empty before training); a missing one is damage.
        for name in ["step", "loss", "learning_rate", "grad_norm", "eval_step", "eval_epoch", "eval_accuracy"] {
            guard try f.existsChecked("/history/\(name)") else { throw .format("\(f.path): missing /history/\(name)") }
        }
        h.step = try f.read("/history/step", as: Int64.self).data
        h.loss = try f.read("/history/loss", as: Float.self).data
        h.learningRate = try f.read("/history/learning_rate", as: Float.self).data
        h.gradNorm = try f.read("/history/grad_norm", as: Float.self).data
        h.evalStep = try f.read("/history/eval_step", as: Int64.self).data
        h.evalEpoch = try f.read("/history/eval_epoch", as: Int64.self).data
        h.evalAccuracy = try f.read("/history/eval_accuracy", as: Float.self).data
        let groups: JSON
        do { groups = try JSON.parse(try f.stringAttribute("groups", at: "/history"), what: "\(f.path): /history groups") } catch {
            throw .format(error.message)
        }
        guard case let .array(items) = groups else { throw .format("\(f.path): /history groups is not a JSON list") }
        for item in items {
            guard case let .string(s) = item else { throw .format("\(f.path): /history groups holds a non-string") }
            h.evalGroups.append(s)
        }
        if f.hasAttribute("datasets", at: "/history") {
            let text = try f.stringAttribute("datasets", at: "/history")
            guard case let .array(items)? = try? JSON.parse(text, what: "\(f.path): /history datasets"), items.count <= 4096 else {
                throw .format("\(f.path): /history datasets is not a JSON list of at most 4096 digests")
            }
            for item in items {
                guard case let .string(s) = item, s.utf8.count <= 64 else { throw .format("\(f.path): /history datasets holds something that is not a digest") }
                h.datasets.append(s)
            }
        }
        guard h.loss.count == h.step.count, h.learningRate.count == h.step.count, h.gradNorm.count == h.step.count,
              h.evalEpoch.count == h.evalStep.count, h.evalAccuracy.count == h.evalStep.count * h.evalGroups.count else {
            throw .format("\(f.path): /history arrays have inconsistent lengths")
        }
        return h
    }
}

public struct Checkpoint {
    public static let format = "behemoth.model"
    public static let formatVersion: Int64 = 2  // 2: checksummed layout (v110, Fletcher-32, fixed-length strings)

    public var configJSON: String
    public var tokenizerJSON: String = ""
    public var table: TensorTable
    public var weights: [Float]
    public var optimizerM: [Float]? = nil
    public var optimizerV: [Float]? = nil
    public var optimizerStep: Int = 0
    public var trainerState: String = ""
    public var history = TrainingHistory()

    public init(configJSON: String, table: TensorTable, weights: [Float]) {
        self.configJSON = configJSON
        self.table = table
        self.weights = weights
    }

    public func save(_ path: String) throws(EngineError) {
        try H5File.writeAtomically(path) { (f: H5File) throws(EngineError) in
            try f.stampFormat(Checkpoint.format, version: Checkpoint.formatVersion, spec: configJSON)
            if !tokenizerJSON.isEmpty { try f.setAttribute("tokenizer", string: tokenizerJSON) }
            try writeBlock(f, "/weights", weights)
            if let m = optimizerM, let v = optimizerV {
                try writeBlock(f, "/optimizer/m", m)
                try writeBlock(f, "/optimizer/v", v)
                try f.setAttribute("step", int: Int64(optimizerStep), at: "/optimizer")
            }
            if !trainerState.isEmpty {
                try f.createGroup("/trainer")
                try f.setAttribute("state", string: trainerState, at: "/trainer")
            }
            try history.write(f)
        }
    }

    /// The content digest of a model: its config and every weight tensor (ContentDigest), as the
    /// file's `digest` holds it.
    public static func digest(configJSON: String, table: TensorTable, weights: UnsafeBufferPointer<Float>) -> String {
        var d = ContentDigest(format: format, spec: configJSON)
        for e in table.sorted(by: { $0.name < $1.name }) {
            d.addArray("weights/\(e.name)", dtype: Float.h5Name, shape: e.shape, UnsafeBufferPointer(rebasing: weights[e.offset..<(e.offset + e.count)]))
        }
        return d.finish()
    }

    private func writeBlock(_ f: H5File, _ group: String, _ block: [Float]) throws(EngineError) {
        try block.withUnsafeBufferPointer { (b: UnsafeBufferPointer<Float>) throws(EngineError) in
            for e in table {
                try f.write("\(group)/\(e.name)", UnsafeBufferPointer(rebasing: b[e.offset..<(e.offset + e.count)]), shape: e.shape)
            }
        }
    }

    /// Reads a checkpoint; `expectedTable(configJSON)` gives the tensor table the config implies, so
    /// a file whose shapes do not match its config is refused with the first mismatch named.
    public static func load(_ path: String, expectedTable: (String) throws(EngineError) -> TensorTable) throws(EngineError) -> Checkpoint {
        let f = try H5File.open(path)
        defer { f.close() }
        _ = try f.checkFormat(format, maxVersion: formatVersion)
        try BehemothFile.checkRootAttributes(f, format: format)
        let config = try f.stringAttribute("spec")
        let table = try expectedTable(config)
        let total = table.last.map { $0.offset + $0.count } ?? 0
        // The weights are in the file, so the config cannot ask for more than the file holds.
        let fileSize = try f.fileSize()
        guard total <= fileSize / 4 else {
            throw .format("\(f.path): the model config needs \(total) parameters (\(total * 4) bytes), more than the \(fileSize)-byte file can hold")
        }
        func readBlock(_ group: String) throws(EngineError) -> [Float] {
            var block = [Float](repeating: 0, count: total)
            for e in table {
                let path = "\(group)/\(e.name)"
                guard f.exists(path) else { throw .format("\(f.path): missing tensor \(path)") }
                let (data, shape) = try f.read(path, as: Float.self)
                guard shape == e.shape else {
                    throw .format("\(f.path): \(path) has shape \(shape) but the model config needs \(e.shape)")
                }
                block.replaceSubrange(e.offset..<(e.offset + e.count), with: data)
            }
            return block
        }
        var c = Checkpoint(configJSON: config, table: table, weights: try readBlock("/weights"))
        if f.hasAttribute("tokenizer") { c.tokenizerJSON = try f.stringAttribute("tokenizer") }
        if try f.existsChecked("/optimizer") {
            c.optimizerM = try readBlock("/optimizer/m")
            c.optimizerV = try readBlock("/optimizer/v")
            c.optimizerStep = Int(try f.intAttribute("step", at: "/optimizer"))
        }
        if try f.existsChecked("/trainer") { c.trainerState = try f.stringAttribute("state", at: "/trainer") }
        c.history = try TrainingHistory.read(f)
        try f.checkDigest(c.weights.withUnsafeBufferPointer { digest(configJSON: config, table: table, weights: $0) })
        try f.checkFileDigest()  // optimizer state, trainer position, history and attributes, too
        for x in c.weights where !x.isFinite { throw .format("\(f.path): /weights hold NaN or Inf values") }
        if let m = c.optimizerM, let v = c.optimizerV {
            if let i = m.firstIndex(where: { !$0.isFinite }) { throw .format("\(f.path): /optimizer/m holds \(m[i]) at parameter \(i): the first moments must be finite") }
            if let i = v.firstIndex(where: { !($0.isFinite && $0 >= 0) }) { throw .format("\(f.path): /optimizer/v holds \(v[i]) at parameter \(i): the second moments must be finite and at least 0") }
            guard c.optimizerStep >= 0 else { throw .format("\(f.path): /optimizer step = \(c.optimizerStep) is negative") }
        }
        return c
    }
}
