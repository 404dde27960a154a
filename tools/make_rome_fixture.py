#!/usr/bin/env python3
"""Writes Tests/Fixtures/parity/rome.h5: an independent PyTorch implementation of ROME's formulas
(kmeng01/rome compute_u / compute_v / the rank-one update, as ../shared/reference/rome-tracing-metrics.md
§2 describes them) run on the model of parity_parallel.h5 (GPTNeoXForCausalLM, float32; made by
make_parity_fixture.py, read here, not stored again). Run once with torch and transformers; the Swift
tests (ROMETests) read the output.

Inputs (stored):
  /sentences/tokens, /sentences/offsets   "training sentences" for the key statistics
  /request/prompt, lookup, target, essence, essence_lookup
  /request/prefixes/tokens, offsets        context-template prefixes (the first is empty: the bare prompt)
  /vstar/delta0                            δ₀, the starting offset
  attrs: block, steps, v_lr, v_weight_decay, kl_factor, clamp_norm_factor
Outputs:
  /stats/moment [I, I] float64             C = E[k kᵀ] over every sentence position (uncentered)
  /u/kbar [I], /u/u [I]                     mean key over the templates; C⁻¹k̄ / ‖C⁻¹k̄‖ (C⁻¹ in float64)
  /vstar/target_init [D], delta [D], vstar [D], losses [n, 4] (total, nll, kl, decay per iteration)
  /update/kstar [I], current [D], delta_w [D, I]
  /batch/request<r>/{prompt, lookup, essence, delta0}, /batch/settings [λ, threshold, L2, clamp, z steps]
  /memit/z [n, D], /memit/block1/delta_w [D, I]                 MEMIT at block 1 (λ·C + KKᵀ)
  /alphaedit/z, /alphaedit/block<b>/{keys [n, I], residuals [n, D], projector [I, I], delta_w,
                                     delta_with_preserved}     AlphaEdit over blocks 0, 1

    python3 tools/make_rome_fixture.py
"""
import json, os
import numpy as np, torch, h5py
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

DIR = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "parity")
BLOCK, STEPS = 1, 8
V_LR, V_WD, KL_FACTOR, CLAMP = 0.5, 0.5, 0.0625, 4.0
PAD = 1
MEMIT_LAMBDA, ALPHA_L2, MEMIT_CLAMP, Z_STEPS = 2.0, 10.0, 0.75, 6


def load_model(f):
    c = json.loads(f.attrs["config"])
    hc = GPTNeoXConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
                       num_attention_heads=c["heads"], intermediate_size=c["intermediate"],
                       rotary_pct=c["rotary_pct"], rotary_emb_base=c["rotary_base"],
                       max_position_embeddings=c["max_positions"], initializer_range=c["init_range"],
                       layer_norm_eps=c["layer_norm_eps"], use_parallel_residual=c["parallel_residual"],
                       tie_word_embeddings=False, hidden_act="gelu", attention_dropout=0.0, hidden_dropout=0.0)
    hc._attn_implementation = "eager"
    model = GPTNeoXForCausalLM(hc).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.from_numpy(f[f"weights/{'embed_out.weight' if n == 'lm_head.weight' else n}"][()]))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def padded(rows):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def module_io(model, block, rows, lookups):
    """The input (key) and output of dense_4h_to_h at each row's lookup index."""
    mod = model.gpt_neox.layers[block].mlp.dense_4h_to_h
    seen = {}
    h = mod.register_forward_hook(lambda m, i, o: seen.update(k=i[0].detach(), v=o.detach()))
    model(input_ids=padded(rows))
    h.remove()
    idx = torch.arange(len(rows))
    return seen["k"][idx, lookups], seen["v"][idx, lookups]


def optimise_delta(model, module, rows, lookups, target, delta0, steps, clamp, lr=V_LR, wd=V_WD, kl_factor=KL_FACTOR, stop=5e-2):
    """ROME's compute_v loop: δ added to `module`'s output at each row's lookup; rows[:-1] are the
    rewriting prompts (NLL of `target` at each one's last token), rows[-1] the essence prompt (KL to
    its step-0 distribution at its lookup). Returns (v₀, δ, losses [total, nll, kl, decay] per step)."""
    ids = padded(rows)
    n = len(rows) - 1
    delta = torch.tensor(delta0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    state = {"init": None}

    def hook(m, i, o):
        h = o[0] if isinstance(o, tuple) else o
        if state["init"] is None:
            state["init"] = h[0, lookups[0]].detach().clone()
        h = h.clone()
        for r, i_ in enumerate(lookups):
            h[r, i_] = h[r, i_] + delta
        return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h

    handle = module.register_forward_hook(hook)
    kl_init, losses = None, []
    for it in range(steps):
        opt.zero_grad()
        logits = model(input_ids=ids).logits
        kl_logp = F.log_softmax(logits[n, lookups[n]][None], dim=-1)
        if kl_init is None:
            kl_init = kl_logp.detach().clone()
        logp = F.log_softmax(logits[:n], dim=-1)
        nll = -torch.stack([logp[r, len(rows[r]) - 1, target] for r in range(n)]).mean()
        kl = kl_factor * F.kl_div(kl_init, kl_logp, log_target=True, reduction="batchmean")
        decay = wd * (torch.norm(delta) / torch.norm(state["init"]) ** 2)
        loss = nll + kl + decay
        losses.append([loss.item(), nll.item(), kl.item(), decay.item()])
        if loss < stop or it == steps - 1:
            break
        loss.backward()
        opt.step()
        max_norm = clamp * state["init"].norm()
        if delta.norm() > max_norm:
            with torch.no_grad():
                delta[...] = delta * max_norm / delta.norm()
    handle.remove()
    return state["init"], delta.detach(), losses


def compute_z(model, block, request, prefixes, delta0, steps):
    """MEMIT's compute_z: ROME's v* loop with δ on the output of layer `block` (the residual stream)."""
    prompt, lookup, target, essence, essence_lookup = request
    rows = [p + prompt for p in prefixes] + [essence]
    lookups = [len(p) + lookup for p in prefixes] + [essence_lookup]
    init, delta, _ = optimise_delta(model, model.gpt_neox.layers[block], rows, lookups, target, delta0, steps, MEMIT_CLAMP)
    return init + delta


def block_output(model, block, rows, lookups):
    seen = {}
    h = model.gpt_neox.layers[block].register_forward_hook(lambda m, i, o: seen.update(h=(o[0] if isinstance(o, tuple) else o).detach()))
    model(input_ids=padded(rows))
    h.remove()
    return seen["h"][torch.arange(len(rows)), lookups]


def second_moment(model, block, sentences):
    keys = []
    h = model.gpt_neox.layers[block].mlp.dense_4h_to_h.register_forward_hook(lambda m, i, o: keys.append(i[0].detach()))
    model(input_ids=padded(sentences))
    h.remove()
    K = torch.cat([keys[0][r, :len(s)] for r, s in enumerate(sentences)]).double()
    return K.T @ K / K.shape[0]


def memit_and_alphaedit(model, rng, sentences, prefixes):
    """Two requests edited at once: MEMIT at block 1 (block 0's C is singular under the parallel
    residual, so λC + KKᵀ is too), AlphaEdit over blocks 0 and 1 (z at block 1's output, the
    residual spread over the blocks left), then AlphaEdit's solve again with the first batch's
    keys as the preserved K_p."""
    V = model.config.vocab_size
    requests = []
    for _ in range(2):
        prompt = [int(x) for x in rng.integers(2, V, size=8)]
        requests.append((prompt, 2, int(rng.integers(2, V)), prompt[:5], 2))
    D = model.config.hidden_size
    out = {}
    delta0s = [(rng.standard_normal(D) * 0.05).astype(np.float32) for _ in requests]
    C = {b: second_moment(model, b, sentences) for b in (0, 1)}
    ev1 = torch.linalg.eigvalsh(C[1])
    threshold = float((ev1[19] + ev1[20]) / 2)
    P = {}
    for b in (0, 1):
        U, S, _ = torch.linalg.svd(C[b])
        U0 = U[:, S < threshold]
        P[b] = U0 @ U0.T
    for r, (prompt, lookup, target, essence, el) in enumerate(requests):
        out[f"batch/request{r}/prompt"] = np.array(prompt, dtype=np.int32)
        out[f"batch/request{r}/lookup"] = np.array([lookup, target, el], dtype=np.int32)
        out[f"batch/request{r}/essence"] = np.array(essence, dtype=np.int32)
        out[f"batch/request{r}/delta0"] = delta0s[r]
    out["batch/settings"] = np.array([MEMIT_LAMBDA, threshold, ALPHA_L2, MEMIT_CLAMP, Z_STEPS], dtype=np.float64)
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    for name, blocks in (("memit", [1]), ("alphaedit", [0, 1])):
        zs = torch.stack([compute_z(model, blocks[-1], req, prefixes, d0, Z_STEPS) for req, d0 in zip(requests, delta0s)])
        out[f"{name}/z"] = zs.numpy().astype(np.float32)
        for k, b in enumerate(blocks):
            K = torch.stack([module_io(model, b, [p + req[0] for p in prefixes], [len(p) + req[1] for p in prefixes])[0].mean(0)
                             for req in requests]).double().T                                  # [I, n]
            cur = block_output(model, blocks[-1], [req[0] for req in requests], [req[1] for req in requests])
            R = ((zs - cur) / (len(blocks) - k)).double().T                                        # [D, n]
            if name == "memit":
                adj = torch.linalg.solve(MEMIT_LAMBDA * C[b] + K @ K.T, K)
                upd = R @ adj.T
            else:
                upd = torch.linalg.solve(P[b] @ (K @ K.T) + ALPHA_L2 * torch.eye(K.shape[0], dtype=torch.float64), P[b] @ K @ R.T).T
                out[f"{name}/block{b}/keys"] = K.T.numpy()
                out[f"{name}/block{b}/residuals"] = R.T.numpy()
                out[f"{name}/block{b}/projector"] = P[b].numpy()
                # the same solve with this batch's keys kept as K_p (a later sequential run)
                again = torch.linalg.solve(P[b] @ (K @ K.T + K @ K.T) + ALPHA_L2 * torch.eye(K.shape[0], dtype=torch.float64),
                                           P[b] @ K @ R.T).T
                out[f"{name}/block{b}/delta_with_preserved"] = again.numpy()
            out[f"{name}/block{b}/delta_w"] = upd.numpy()
            with torch.no_grad():
                model.gpt_neox.layers[b].mlp.dense_4h_to_h.weight += upd.float()
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(saved[n])
    return out


def main():
    rng = np.random.default_rng(11)
    with h5py.File(os.path.join(DIR, "parity_parallel.h5"), "r") as src:
        model = load_model(src)
    V, D = model.config.vocab_size, model.config.hidden_size

    # key statistics over "training sentences": every position, uncentered, float64 sums
    sentences = [list(rng.integers(2, V, size=int(rng.integers(6, 11)))) for _ in range(40)]
    mod = model.gpt_neox.layers[BLOCK].mlp.dense_4h_to_h
    keys = []
    h = mod.register_forward_hook(lambda m, i, o: keys.append(i[0].detach()))
    model(input_ids=padded(sentences))
    h.remove()
    K = torch.cat([keys[0][r, :len(s)] for r, s in enumerate(sentences)]).double()
    C = K.T @ K / K.shape[0]

    # the request: [SS-like, subject (2 tokens), filler, filler, RR-like, relation, filler, OO-like]
    prompt = [int(x) for x in rng.integers(2, V, size=8)]
    lookup, target = 2, 17
    essence, essence_lookup = prompt[:5], 2
    prefixes = [[], [int(x) for x in rng.integers(2, V, size=5)], [int(x) for x in rng.integers(2, V, size=7)]]

    # compute_u: k̄ over the templates, u = C⁻¹k̄ / ‖C⁻¹k̄‖
    kt, _ = module_io(model, BLOCK, [p + prompt for p in prefixes], [len(p) + lookup for p in prefixes])
    kbar = kt.mean(0)
    u = torch.linalg.solve(C, kbar.double())
    u = (u / u.norm()).float()

    # compute_v from δ₀
    delta0 = (rng.standard_normal(D) * 0.05).astype(np.float32)
    rows = [p + prompt for p in prefixes] + [essence]
    lookups = [len(p) + lookup for p in prefixes] + [essence_lookup]
    target_init, delta, losses = optimise_delta(model, model.gpt_neox.layers[BLOCK].mlp, rows, lookups, target, delta0, STEPS, CLAMP)
    vstar = target_init + delta

    # the rank-one update at the bare prompt
    kstar, current = module_io(model, BLOCK, [prompt], [lookup])
    kstar, current = kstar[0], current[0]
    right = (vstar - current) / torch.dot(kstar, u)
    delta_w = torch.outer(right, u)   # [D, I], as nn.Linear stores dense_4h_to_h

    batch = memit_and_alphaedit(model, rng, sentences, prefixes)

    with h5py.File(os.path.join(DIR, "rome.h5"), "w", libver=("v110", "latest")) as f:  # checksummed layout, as the library reads
        f.attrs.update(block=BLOCK, steps=STEPS, v_lr=V_LR, v_weight_decay=V_WD, kl_factor=KL_FACTOR,
                       clamp_norm_factor=CLAMP, source="tools/make_rome_fixture.py (torch %s)" % torch.__version__)
        lens = [len(s) for s in sentences]
        f["sentences/tokens"] = np.array([t for s in sentences for t in s], dtype=np.int32)
        f["sentences/offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        f["request/prompt"] = np.array(prompt, dtype=np.int32)
        f["request/essence"] = np.array(essence, dtype=np.int32)
        f["request/lookup"] = np.array([lookup, target, essence_lookup], dtype=np.int32)   # lookup, target, essence lookup
        f["request/prefixes/tokens"] = np.array([t for p in prefixes for t in p], dtype=np.int32)
        f["request/prefixes/offsets"] = np.concatenate([[0], np.cumsum([len(p) for p in prefixes])]).astype(np.int64)
        f["stats/moment"] = C.numpy()
        f["u/kbar"] = kbar.numpy().astype(np.float32)
        f["u/u"] = u.numpy().astype(np.float32)
        f["vstar/delta0"] = delta0
        f["vstar/target_init"] = target_init.numpy().astype(np.float32)
        f["vstar/delta"] = delta.detach().numpy().astype(np.float32)
        f["vstar/vstar"] = vstar.numpy().astype(np.float32)
        f["vstar/losses"] = np.array(losses, dtype=np.float32)
        f["update/kstar"] = kstar.numpy().astype(np.float32)
        f["update/current"] = current.numpy().astype(np.float32)
        f["update/delta_w"] = delta_w.numpy().astype(np.float32)
        for k, v in batch.items():
            f[k] = v
    print("wrote rome.h5: %d v* iterations, final loss %.4f, rank of C %d of %d"
          % (len(losses), losses[-1][0], torch.linalg.matrix_rank(C).item(), C.shape[0]))


if __name__ == "__main__":
    main()
