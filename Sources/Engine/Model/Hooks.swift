/// Where in the forward pass a hook reads or overwrites an activation. Each site is a [B, T, width]
/// activation; `layer` selects the block (ignored for `embeddings` and `finalNorm`).
///
///   embeddings    [B,T,D]  embed_in output (= block 0's input)
///   blockInput    [B,T,D]  the residual stream entering block `layer` (after the previous block's hooks)
///   attnInput     [B,T,D]  input_layernorm output (what query_key_value reads)
///   attnOutput    [B,T,D]  attention output after `dense` (with its bias), before the residual add
///   mlpInput      [B,T,D]  post_attention_layernorm output (what dense_h_to_4h reads)
///   mlpHidden     [B,T,I]  GELU output, the input of dense_4h_to_h (ROME's key)
///   mlpOutput     [B,T,D]  dense_4h_to_h output (with its bias), before the residual add
///   blockOutput   [B,T,D]  the residual stream after block `layer`
///   finalNorm     [B,T,D]  final_layer_norm output (what the unembedding reads)
///
/// In a llama model the same sites sit at the same places: attnInput and mlpInput are the RMSNorm
/// outputs q|k|v and gate|up read, attnOutput is o_proj's output, mlpHidden is silu(gate)·up (the
/// input of down_proj, ROME's key there) and mlpOutput down_proj's output.
public enum HookSite: String, CaseIterable, Sendable {
    case embeddings, blockInput = "block_input", attnInput = "attn_input", attnOutput = "attn_output"
    case mlpInput = "mlp_input", mlpHidden = "mlp_hidden", mlpOutput = "mlp_output", blockOutput = "block_output"
    case finalNorm = "final_norm"

    /// Sites with one activation for the whole model (no block).
    public var isGlobal: Bool { self == .embeddings || self == .finalNorm }
}

public struct HookPoint: Hashable, Sendable {
    public let site: HookSite
    public let layer: Int
    public init(_ site: HookSite, layer: Int = 0) { self.site = site; self.layer = site.isGlobal ? 0 : layer }
    public var name: String { site.isGlobal ? site.rawValue : "\(site.rawValue).\(layer)" }
}

/// A mutable [batch, seq, width] activation (or its gradient), valid only during the hook call
/// (or, for captured gradients, until the next backward pass). A forward pass over many rows runs
/// in chunks; `firstRow` is the global index of this view's row 0, so hooks address rows globally.
public struct ActivationView {
    public let base: UnsafeMutablePointer<Float>
    public let batch: Int, seq: Int, width: Int
    public let firstRow: Int

    public init(base: UnsafeMutablePointer<Float>, batch: Int, seq: Int, width: Int, firstRow: Int = 0) {
        self.base = base; self.batch = batch; self.seq = seq; self.width = width; self.firstRow = firstRow
    }

    /// Whether global row `r` is in this view.
    public func holds(row r: Int) -> Bool { r >= firstRow && r < firstRow + batch }

    /// The width-long vector at global row `r`, position `t` (an error outside this view).
    public func row(_ r: Int, _ t: Int) throws(EngineError) -> UnsafeMutableBufferPointer<Float> {
        guard holds(row: r), t >= 0, t < seq else {
            throw .invalid("hook: position (row \(r), token \(t)) is outside this activation (rows \(firstRow)..<\(firstRow + batch), tokens 0..<\(seq))")
        }
        return UnsafeMutableBufferPointer(start: base + ((r - firstRow) * seq + t) * width, count: width)
    }

    public var all: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: batch * seq * width) }
    public func toArray() -> [Float] { Array(all) }
    public func rowArray(_ r: Int, _ t: Int) throws(EngineError) -> [Float] { Array(try row(r, t)) }
}

/// Receives activations site by site and chunk by chunk during forward passes (ForwardHooks.record):
/// in memory (ActivationStore), as second moments (SecondMomentRecorder), or streamed to a file.
public protocol Recorder: AnyObject {
    func receive(_ point: HookPoint, _ view: ActivationView) throws(EngineError)
}

/// Closures run on activations during a forward pass, keyed by (site, layer), in the order added.
/// A hook sees the activation right after it is computed and before anything downstream reads it,
/// so writing to the view patches the run. In the backward pass a hook's change counts as an
/// additive perturbation: gradients flow through the site as if the hook were the identity, and
/// `GPTNeoX.captureGradients(at:)` makes the gradient w.r.t. a site retrievable (for a delta added there).
/// Positions are global (row, token) of the whole run; every problem is a thrown error: a layer the
/// model does not have or a position outside the run before it starts (`validate`), a wrong width
/// when the hook runs.
public final class ForwardHooks {
    public typealias Hook = (ActivationView) throws(EngineError) -> Void
    private(set) var table: [HookPoint: [Hook]] = [:]
    /// Global positions each hook point addresses and the run size a patch expects (for `validate`).
    private var positions: [HookPoint: [(row: Int, t: Int)]] = [:]
    private var patchSizes: [HookPoint: Int] = [:]

    public init() {}

    public var isEmpty: Bool { table.isEmpty }
    public var points: [HookPoint] { Array(table.keys) }

    public func add(_ site: HookSite, layer: Int = 0, _ hook: @escaping Hook) {
        table[HookPoint(site, layer: layer), default: []].append(hook)
    }

    public func removeAll() { table.removeAll(); positions.removeAll(); patchSizes.removeAll() }

    /// Checks the hooks against a run of `rows` × `seq` tokens on a model with `layers` blocks whose
    /// sites have `width(site)` floats per token.
    public func validate(rows: Int, seq: Int, layers: Int, width: (HookSite) -> Int) throws(EngineError) {
        for p in table.keys where !p.site.isGlobal && (p.layer < 0 || p.layer >= layers) {
            throw .invalid("hook: \(p.site.rawValue) of block \(p.layer), but the model has \(layers) blocks (0...\(layers - 1))")
        }
        for (p, list) in positions {
            for q in list where q.row < 0 || q.row >= rows || q.t < 0 || q.t >= seq {
                throw .invalid("hook at \(p.name): position (row \(q.row), token \(q.t)) is outside the run of \(rows) rows × \(seq) tokens")
            }
        }
        for (p, n) in patchSizes where n != rows * seq * width(p.site) {
            throw .invalid("hook at \(p.name): the patch holds \(n) values but the run has \(rows) × \(seq) × \(width(p.site)) = \(rows * seq * width(p.site))")
        }
    }

    @inline(__always)
    func run(_ site: HookSite, _ layer: Int, _ view: @autoclosure () -> ActivationView) throws(EngineError) {
        guard let hs = table[HookPoint(site, layer: layer)] else { return }
        let v = view()
        for h in hs { try h(v) }
    }

    // Conveniences built on `add`.

    /// Hands the activation at a site to `recorder` on every forward pass, chunk by chunk.
    public func record(_ site: HookSite, layer: Int = 0, into recorder: Recorder) {
        let p = HookPoint(site, layer: layer)
        add(site, layer: layer) { (v: ActivationView) throws(EngineError) in try recorder.receive(p, v) }
    }

    /// Overwrites the vectors at global positions with `values[k]` (each of the site's width).
    public func overwrite(_ site: HookSite, layer: Int = 0, at targets: [(row: Int, t: Int)], with values: [[Float]]) throws(EngineError) {
        guard targets.count == values.count else { throw .invalid("hook overwrite: \(targets.count) positions but \(values.count) vectors") }
        let p = HookPoint(site, layer: layer)
        positions[p, default: []] += targets
        add(site, layer: layer) { (v: ActivationView) throws(EngineError) in
            for (k, q) in targets.enumerated() where v.holds(row: q.row) {
                let r = try v.row(q.row, q.t)
                guard values[k].count == r.count else { throw .invalid("hook overwrite at \(p.name): a vector of \(values[k].count) values for a site of width \(r.count)") }
                _ = r.update(from: values[k])
            }
        }
    }

    /// Adds `delta` (the site's width) to the vectors at global positions.
    public func addDelta(_ site: HookSite, layer: Int = 0, at targets: [(row: Int, t: Int)], delta: [Float]) {
        let p = HookPoint(site, layer: layer)
        positions[p, default: []] += targets
        add(site, layer: layer) { (v: ActivationView) throws(EngineError) in
            for q in targets where v.holds(row: q.row) {
                let r = try v.row(q.row, q.t)
                guard delta.count == r.count else { throw .invalid("hook addDelta at \(p.name): a delta of \(delta.count) values for a site of width \(r.count)") }
                for j in 0..<r.count { r[j] += delta[j] }
            }
        }
    }

    /// Copies a recorded activation of the whole run ([rows, seq, width], row-major) back in
    /// (activation patching), at every position or at the given global ones.
    public func patch(_ site: HookSite, layer: Int = 0, from values: [Float], positions at: [(row: Int, t: Int)]? = nil) {
        let p = HookPoint(site, layer: layer)
        patchSizes[p] = values.count
        if let at { positions[p, default: []] += at }
        add(site, layer: layer) { (v: ActivationView) throws(EngineError) in
            let start = v.firstRow * v.seq * v.width
            guard start + v.batch * v.seq * v.width <= values.count else {
                throw .invalid("hook patch at \(p.name): the patch holds \(values.count) values, too few for rows up to \(v.firstRow + v.batch)")
            }
            if let at {
                for q in at where v.holds(row: q.row) {
                    let r = try v.row(q.row, q.t)
                    let off = (q.row * v.seq + q.t) * v.width
                    for j in 0..<v.width { r[j] = values[off + j] }
                }
            } else {
                values.withUnsafeBufferPointer { src in v.all.baseAddress!.update(from: src.baseAddress! + start, count: v.batch * v.seq * v.width) }
            }
        }
    }
}

/// Recorded activations in memory, keyed by hook point: [rows, seq, width] row-major over a whole
/// run (chunks appended in row order; a run that starts again at row 0 replaces the last one).
public final class ActivationStore: Recorder {
    public var values: [HookPoint: [Float]] = [:]
    public var shapes: [HookPoint: [Int]] = [:]
    public init() {}
    public subscript(_ site: HookSite, layer layer: Int) -> [Float]? { values[HookPoint(site, layer: layer)] }

    public func receive(_ point: HookPoint, _ view: ActivationView) throws(EngineError) {
        if view.firstRow == 0 { values[point] = []; shapes[point] = [0, view.seq, view.width] }
        guard let shape = shapes[point], shape[0] == view.firstRow, shape[1] == view.seq, shape[2] == view.width else {
            throw .invalid("activation store: rows of \(point.name) arrived out of order (expected row \(shapes[point]?[0] ?? 0), got \(view.firstRow))")
        }
        values[point]! += view.toArray()
        shapes[point]![0] += view.batch
    }
}

/// Second moments of a site's activations: E[k kᵀ] over every (row, token) vector seen, [width, width].
/// Each chunk's Kᵀ·K is a float32 product (BLAS); chunks are summed in float64.
public final class SecondMomentRecorder: Recorder {
    public private(set) var sums: [HookPoint: [Double]] = [:]
    public private(set) var counts: [HookPoint: Int] = [:]
    private var scratch: [Float] = [], gathered: [Float] = []
    /// Tokens that count in each global row (right-padded prompts: the padding is left out); nil: all.
    public let lengths: [Int]?

    public init(lengths: [Int]? = nil) { self.lengths = lengths }

    public func receive(_ point: HookPoint, _ view: ActivationView) throws(EngineError) {
        let w = view.width
        if scratch.count < w * w { scratch = [Float](repeating: 0, count: w * w) }
        var n = view.batch * view.seq
        if let lengths {
            // the vectors that count, gathered into one [n, w] block for a single product
            n = 0
            for b in 0..<view.batch {
                let g = view.firstRow + b
                guard g < lengths.count else { throw .invalid("second moments: row \(g) has no length (\(lengths.count) lengths given)") }
                guard lengths[g] >= 0, lengths[g] <= view.seq else {
                    throw .invalid("second moments: row \(g) has length \(lengths[g]), outside 0...\(view.seq)")
                }
                n += lengths[g]
            }
            if n == 0 { return }
            if gathered.count < n * w { gathered = [Float](repeating: 0, count: n * w) }
            gathered.withUnsafeMutableBufferPointer { dst in
                var at = 0
                for b in 0..<view.batch {
                    let len = lengths[view.firstRow + b]
                    (dst.baseAddress! + at * w).update(from: view.base + b * view.seq * w, count: len * w)
                    at += len
                }
                // c[w, w] = Kᵀ[w, n] · K[n, w] (float32, this chunk)
                scratch.withUnsafeMutableBufferPointer { c in BLAS.gram(a: dst.baseAddress!, rows: n, cols: w, c: c.baseAddress!) }
            }
        } else {
            scratch.withUnsafeMutableBufferPointer { c in BLAS.gram(a: view.base, rows: n, cols: w, c: c.baseAddress!) }
        }
        if let s = sums[point], s.count != w * w {
            throw .invalid("second moments: \(point.name) changed width from \(Int(Double(s.count).squareRoot())) to \(w)")
        }
        scratch.withUnsafeBufferPointer { c in
            sums[point, default: [Double](repeating: 0, count: w * w)].withUnsafeMutableBufferPointer { s in
                for i in 0..<(w * w) { s[i] += Double(c[i]) }
            }
        }
        counts[point, default: 0] += n
    }

    /// E[k kᵀ] at a point ([width, width] row-major), nil if nothing was recorded there.
    public func moment(_ point: HookPoint) -> [Double]? {
        guard let s = sums[point], let n = counts[point], n > 0 else { return nil }
        return s.map { $0 / Double(n) }
    }
}
