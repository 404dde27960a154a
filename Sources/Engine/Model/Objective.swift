#if canImport(Glibc)
import Glibc
#endif

/// A loss over the logits [B, T, V] of a forward pass: what `GPTNeoX.backward()` starts from.
/// The loss is a sum of terms. Rows r = b·T + t; p_r = softmax(logits_r); the target rows are those
/// whose forward-pass target is ≥ 0, C of them; NLL_r = −log p_r[target_r] on a target row.
///
///     crossEntropy                      Σ_r NLL_r / C                   the default, today's training loss
///     tokenNLL(weights: w, normalizer: Z)
///                                       Σ_r w_r·NLL_r / Z, Z = C if nil  w [B, T] per row, sign included
///                                                                        (w < 0: gradient ascent); rows
///                                                                        without a target contribute nothing
///     kl(positions: P, reference: q, weight: λ, direction:)
///                                       λ/|P| · Σ_{(b,t) ∈ P} KL_{b,t}  over the full vocabulary, q given per
///                                                                        position as [|P|, V] log-probs or logits
///       .modelToReference   KL(p ‖ q) = Σ_j p_j (log p_j − log q_j)     ROME's compute_v: F.kl_div(log q, log p,
///                                                                        log_target=True), batchmean over prompts
///       .referenceToModel   KL(q ‖ p) = Σ_j q_j (log q_j − log p_j)     TOFU / open-unlearning's retain KL:
///                                                                        F.kl_div(log p, log q, log_target=True)
///
/// d loss / d logits_r: the NLL terms give c_r·(p_r − onehot(target_r)) with c_r the row's summed
/// coefficient (1/C, w_r/Z); KL(p ‖ q) gives λ/|P|·p ⊙ (log p − log q − KL); KL(q ‖ p) gives λ/|P|·(p − q).
///
/// ROME's v* is `[.tokenNLL(weights: 1/(|target_i|·prompts) on prompt i's target rows, normalizer: 1),
/// .kl(positions: subject's last token of each KL prompt, reference: their logits at step 0, weight: 0.0625,
/// direction: .modelToReference)]`. NPO weighs sequences by their log-likelihood: read `positionLoss`
/// after a forward pass (−NLL_r per row), then apply a `tokenNLL` with the resulting per-row weights.
public struct Objective {
    public enum Term {
        case crossEntropy
        case tokenNLL(weights: [Float], normalizer: Float? = nil)
        case kl(positions: [(b: Int, t: Int)], reference: Reference, weight: Float = 1, direction: KLDirection)
    }

    /// Reference distributions, one V-long row per KL position: log-probabilities (each row's
    /// logsumexp must be 0 within 1e-3) or logits (normalised here).
    public enum Reference {
        case logProbs([Float])
        case logits([Float])
    }

    public var terms: [Term]

    public init(_ terms: [Term]) { self.terms = terms }

    /// Mean cross-entropy over the target rows, computed exactly as `forward` + `backward()` always did.
    public static var crossEntropy: Objective { Objective([.crossEntropy]) }

    var isCrossEntropy: Bool {
        if terms.count == 1, case .crossEntropy = terms[0] { return true }
        return false
    }
}

/// Which way round a KL term compares the model's distribution p with the reference q.
public enum KLDirection: String, Sendable {
    /// KL(p_model ‖ p_ref), as ROME's v* optimisation.
    case modelToReference = "model_to_reference"
    /// KL(p_ref ‖ p_model), as TOFU's and open-unlearning's KL retain loss.
    case referenceToModel = "reference_to_model"
}

/// The value of an objective: the total and one value per term, in the order of `Objective.terms`.
public struct ObjectiveValue: Sendable {
    public let total: Float
    public let terms: [Float]
}

extension GPTNeoX {
    /// `forward` then `applyObjective`: runs the model, returns the objective's value and leaves
    /// d objective / d logits for `backward()`. Plain cross-entropy takes the fused training path.
    @discardableResult
    public func forward(tokens: [Int32], targets: [Int32]?, batch: Int, seq: Int, hooks: ForwardHooks? = nil,
                        objective: Objective) throws(EngineError) -> ObjectiveValue {
        let plain = objective.isCrossEntropy
        if plain && targets == nil { throw .misuse("objective: cross-entropy needs targets") }
        let loss = try forward(tokens: tokens, targets: targets, batch: batch, seq: seq, hooks: hooks, fuseLossGradient: plain)
        return plain ? ObjectiveValue(total: loss, terms: [loss]) : try applyObjective(objective)
    }

    /// Pointer form of `forward(tokens:targets:batch:seq:hooks:objective:)`.
    @discardableResult
    public func forward(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch: Int, seq: Int,
                        hooks: ForwardHooks? = nil, objective: Objective) throws(EngineError) -> ObjectiveValue {
        let plain = objective.isCrossEntropy
        if plain && targets == nil { throw .misuse("objective: cross-entropy needs targets") }
        let loss = try forward(tokens: tokens, targets: targets, batch: batch, seq: seq, hooks: hooks, fuseLossGradient: plain)
        return plain ? ObjectiveValue(total: loss, terms: [loss]) : try applyObjective(objective)
    }

    /// Evaluates `objective` on the logits of the last forward pass and overwrites them with
    /// d objective / d logits, which `backward()` then starts from. Afterwards `positionLoss` holds
    /// NLL_r on every target row (the target's log-probability is −NLL_r) and 0 elsewhere.
    public func applyObjective(_ objective: Objective) throws(EngineError) -> ObjectiveValue {
        guard batch > 0 else { throw .misuse("objective: no forward pass to evaluate") }
        guard !logitsHoldGradient else {
            throw .misuse("objective: the logits already hold a gradient (fused forward or backward ran): run forward again")
        }
        let n = batch * seq
        if objective.isCrossEntropy {
            guard haveTargets else { throw .misuse("objective: cross-entropy needs a forward pass with targets") }
            // backward()'s own cross-entropy gradient, so this path is bit-identical to it
            Kernels.crossEntropyBackward(logits: logitsBuf.ptr, lse: lse.ptr, targets: targetsBuf, n: n, v: V, gradScale: lossGradScale)
            logitsHoldGradient = true
            var sum = 0.0
            for r in 0..<n { sum += Double(lossRow.ptr[r]) }
            let loss = validTargets > 0 ? Float(sum / Double(validTargets)) : 0
            return ObjectiveValue(total: loss, terms: [loss])
        }

        // Per row: the summed NLL coefficient c_r, and the KL entries (a position of a KL term) at it.
        var coef = [Float](repeating: 0, count: n)
        var entries: [(row: Int, term: Int, scale: Float, direction: KLDirection)] = []
        var reference: [Float] = []  // [entries, V] log-probabilities, in term order
        let count = validTargets
        for (k, term) in objective.terms.enumerated() {
            let name = "objective term \(k)"
            switch term {
            case .crossEntropy:
                guard haveTargets else { throw .misuse("\(name) (cross-entropy) needs a forward pass with targets") }
                let c: Float = count > 0 ? 1 / Float(count) : 0
                for r in 0..<n where targetsBuf[r] >= 0 { coef[r] += c }
            case .tokenNLL(let w, let normalizer):
                guard haveTargets else { throw .misuse("\(name) (token NLL) needs a forward pass with targets") }
                guard w.count == n else { throw .invalid("\(name) (token NLL): \(w.count) weights for batch \(batch) × seq \(seq)") }
                if let i = w.firstIndex(where: { !$0.isFinite }) { throw .invalid("\(name) (token NLL): weight[\(i)] = \(w[i])") }
                if let z = normalizer, !(z.isFinite && z > 0) { throw .invalid("\(name) (token NLL): normalizer \(z) must be positive") }
                let z = normalizer ?? Float(count)
                if z > 0 { for r in 0..<n where targetsBuf[r] >= 0 { coef[r] += w[r] / z } }
            case .kl(let positions, let ref, let weight, let direction):
                guard !positions.isEmpty else { throw .invalid("\(name) (KL): no positions") }
                guard weight.isFinite else { throw .invalid("\(name) (KL): weight \(weight)") }
                let (values, logits) = switch ref { case .logProbs(let v): (v, false); case .logits(let v): (v, true) }
                guard values.count == positions.count * V else {
                    throw .invalid("\(name) (KL): reference has \(values.count) values, expected [\(positions.count), \(V)]")
                }
                if let i = values.firstIndex(where: { !$0.isFinite }) { throw .invalid("\(name) (KL): reference[\(i)] = \(values[i])") }
                for (i, p) in positions.enumerated() {
                    guard p.b >= 0, p.b < batch, p.t >= 0, p.t < seq else {
                        throw .invalid("\(name) (KL): position \(i) = (\(p.b), \(p.t)) outside batch \(batch) × seq \(seq)")
                    }
                    let row = values[(i * V)..<((i + 1) * V)]
                    let lse = Self.logSumExp(row)
                    if !logits && abs(lse) > 1e-3 {
                        throw .invalid("\(name) (KL): reference row \(i) is not log-probabilities (logsumexp \(lse)); pass .logits")
                    }
                    // log-probabilities in float64, rounded once
                    reference.append(contentsOf: row.map { Float(Double($0) - (logits ? lse : 0)) })
                    entries.append((p.b * seq + p.t, k, weight / Float(positions.count), direction))
                }
            }
        }

        // CSR by row: the entries at row r are order[rowStart[r] ..< rowStart[r+1]]
        let order = entries.indices.sorted { (entries[$0].row, $0) < (entries[$1].row, $1) }
        var rowStart = [Int](repeating: 0, count: n + 1)
        for e in entries { rowStart[e.row + 1] += 1 }
        for r in 0..<n { rowStart[r + 1] += rowStart[r] }
        let klValue = UnsafeMutablePointer<Double>.allocate(capacity: max(1, entries.count))
        defer { klValue.deallocate() }

        let x0 = logitsBuf.ptr, lseP = lse.ptr, nll = lossRow.ptr, tg = targetsBuf, v = V
        coef.withUnsafeBufferPointer { c in
            reference.withUnsafeBufferPointer { q in
                Work.chunks(n, grain: 8) { _, rows in
                    for r in rows {
                        let x = x0 + r * v, tgt = Int(tg[r])
                        let mine = order[rowStart[r]..<rowStart[r + 1]]
                        if tgt < 0 && mine.isEmpty {
                            x.update(repeating: 0, count: v); nll[r] = 0; lseP[r] = 0
                            continue
                        }
                        // log-softmax of the row: log p_j = x_j − lse
                        var mx = x[0]
                        for j in 1..<v where x[j] > mx { mx = x[j] }
                        var s = 0.0
                        for j in 0..<v { s += Double(expf(x[j] - mx)) }
                        let l = mx + Float(log(s))
                        lseP[r] = l
                        nll[r] = tgt >= 0 ? l - x[tgt] : 0
                        for e in mine {
                            let lq = q.baseAddress! + e * v
                            var kl = 0.0
                            if entries[e].direction == .modelToReference {
                                for j in 0..<v { let lp = x[j] - l; kl += Double(expf(lp)) * Double(lp - lq[j]) }
                            } else {
                                for j in 0..<v { let lp = x[j] - l; kl += Double(expf(lq[j])) * Double(lq[j] - lp) }
                            }
                            klValue[e] = kl
                        }
                        // logits_r ← d loss / d logits_r
                        let cr: Float = tgt >= 0 ? c[r] : 0
                        for j in 0..<v {
                            let lp = x[j] - l, p = expf(lp)
                            var g = cr * p
                            for e in mine {
                                let lq = q[e * v + j], scale = entries[e].scale
                                if entries[e].direction == .modelToReference {
                                    g += scale * p * (lp - lq - Float(klValue[e]))
                                } else {
                                    g += scale * (p - expf(lq))
                                }
                            }
                            x[j] = g
                        }
                        if tgt >= 0 { x[tgt] -= cr }
                    }
                }
            }
        }
        logitsHoldGradient = true

        // term values, summed in a fixed order (the same for any thread count)
        var values = [Double](repeating: 0, count: objective.terms.count)
        for (k, term) in objective.terms.enumerated() {
            switch term {
            case .crossEntropy:
                for r in 0..<n where tg[r] >= 0 { values[k] += Double(nll[r]) }
                values[k] = count > 0 ? values[k] / Double(count) : 0
            case .tokenNLL(let w, let normalizer):
                for r in 0..<n where tg[r] >= 0 { values[k] += Double(w[r]) * Double(nll[r]) }
                let z = normalizer.map(Double.init) ?? Double(count)
                values[k] = z > 0 ? values[k] / z : 0
            case .kl:
                break
            }
        }
        for (e, entry) in entries.enumerated() { values[entry.term] += Double(entry.scale) * klValue[e] }
        return ObjectiveValue(total: Float(values.reduce(0, +)), terms: values.map { Float($0) })
    }

    /// log Σ exp(x) in float64.
    static func logSumExp(_ x: ArraySlice<Float>) -> Double {
        let mx = Double(x.max() ?? 0)
        var s = 0.0
        for e in x { s += exp(Double(e) - mx) }
        return mx + log(s)
    }
}
