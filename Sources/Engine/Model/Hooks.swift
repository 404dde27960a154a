/// Where in the forward pass a hook reads or overwrites an activation. Each site is a [B, T, width]
/// activation; `layer` selects the block (ignored for `embeddings`).
///
///   embeddings    [B,T,D]  embed_in output (= block 0's input)
///   blockInput    [B,T,D]  the residual stream entering block `layer` (after the previous block's hooks)
///   attnInput     [B,T,D]  input_layernorm output (what query_key_value reads)
///   attnOutput    [B,T,D]  attention output after `dense` (with its bias), before the residual add
///   mlpInput      [B,T,D]  post_attention_layernorm output (what dense_h_to_4h reads)
///   mlpHidden     [B,T,I]  GELU output, the input of dense_4h_to_h (ROME's key)
///   mlpOutput     [B,T,D]  dense_4h_to_h output (with its bias), before the residual add
///   blockOutput   [B,T,D]  the residual stream after block `layer`
public enum HookSite: String, CaseIterable, Sendable {
    case embeddings, blockInput = "block_input", attnInput = "attn_input", attnOutput = "attn_output"
    case mlpInput = "mlp_input", mlpHidden = "mlp_hidden", mlpOutput = "mlp_output", blockOutput = "block_output"
}

public struct HookPoint: Hashable, Sendable {
    public let site: HookSite
    public let layer: Int
    public init(_ site: HookSite, layer: Int = 0) { self.site = site; self.layer = site == .embeddings ? 0 : layer }
}

/// A mutable [batch, seq, width] activation (or its gradient), valid only during the hook call
/// (or, for captured gradients, until the next backward pass).
public struct ActivationView {
    public let base: UnsafeMutablePointer<Float>
    public let batch: Int, seq: Int, width: Int

    public init(base: UnsafeMutablePointer<Float>, batch: Int, seq: Int, width: Int) {
        self.base = base; self.batch = batch; self.seq = seq; self.width = width
    }

    /// The width-long vector at (b, t).
    @inline(__always)
    public func row(_ b: Int, _ t: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(b >= 0 && b < batch && t >= 0 && t < seq, "activation index (\(b), \(t)) outside [\(batch), \(seq)]")
        return UnsafeMutableBufferPointer(start: base + (b * seq + t) * width, count: width)
    }

    public var all: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: batch * seq * width) }
    public func toArray() -> [Float] { Array(all) }
    public func rowArray(_ b: Int, _ t: Int) -> [Float] { Array(row(b, t)) }
}

/// Closures run on activations during a forward pass, keyed by (site, layer), in the order added.
/// A hook sees the activation right after it is computed and before anything downstream reads it,
/// so writing to the view patches the run. In the backward pass a hook's change counts as an
/// additive perturbation: gradients flow through the site as if the hook were the identity, and
/// `GPTNeoX.captureGradients(at:)` makes the gradient w.r.t. a site retrievable (for a delta added there).
public final class ForwardHooks {
    public typealias Hook = (ActivationView) -> Void
    private(set) var table: [HookPoint: [Hook]] = [:]

    public init() {}

    public var isEmpty: Bool { table.isEmpty }

    public func add(_ site: HookSite, layer: Int = 0, _ hook: @escaping Hook) {
        table[HookPoint(site, layer: layer), default: []].append(hook)
    }

    public func removeAll() { table.removeAll() }

    @inline(__always)
    func run(_ site: HookSite, _ layer: Int, _ view: @autoclosure () -> ActivationView) {
        guard let hs = table[HookPoint(site, layer: layer)] else { return }
        let v = view()
        for h in hs { h(v) }
    }

    // Conveniences built on `add`.

    /// Copies the whole activation at a site into `store` on every forward pass (store[point] = values).
    public func record(_ site: HookSite, layer: Int = 0, into store: ActivationStore) {
        let p = HookPoint(site, layer: layer)
        add(site, layer: layer) { v in store.values[p] = v.toArray(); store.shapes[p] = [v.batch, v.seq, v.width] }
    }

    /// Overwrites the vectors at (b, t) positions with `values[k]` (each of the site's width).
    public func overwrite(_ site: HookSite, layer: Int = 0, at positions: [(b: Int, t: Int)], with values: [[Float]]) {
        precondition(positions.count == values.count)
        add(site, layer: layer) { v in
            for (k, p) in positions.enumerated() {
                let r = v.row(p.b, p.t)
                precondition(values[k].count == r.count, "hook value width \(values[k].count) != site width \(r.count)")
                _ = r.update(from: values[k])
            }
        }
    }

    /// Adds `delta` (the site's width) to the vectors at the given positions.
    public func addDelta(_ site: HookSite, layer: Int = 0, at positions: [(b: Int, t: Int)], delta: [Float]) {
        add(site, layer: layer) { v in
            for p in positions {
                let r = v.row(p.b, p.t)
                precondition(delta.count == r.count)
                for j in 0..<r.count { r[j] += delta[j] }
            }
        }
    }

    /// Copies a whole recorded activation of the same shape back in (activation patching).
    public func patch(_ site: HookSite, layer: Int = 0, from values: [Float], positions: [(b: Int, t: Int)]? = nil) {
        add(site, layer: layer) { v in
            precondition(values.count == v.batch * v.seq * v.width, "patch size does not match the activation")
            if let positions {
                for p in positions {
                    let off = (p.b * v.seq + p.t) * v.width
                    let r = v.row(p.b, p.t)
                    for j in 0..<v.width { r[j] = values[off + j] }
                }
            } else {
                _ = v.all.update(from: values)
            }
        }
    }
}

/// Recorded activations, keyed by hook point, as flat [B·T·width] arrays.
public final class ActivationStore {
    public var values: [HookPoint: [Float]] = [:]
    public var shapes: [HookPoint: [Int]] = [:]
    public init() {}
    public subscript(_ site: HookSite, layer layer: Int) -> [Float]? { values[HookPoint(site, layer: layer)] }
}
