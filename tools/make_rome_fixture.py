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
    rewriting = [p + prompt for p in prefixes]
    rows = rewriting + [essence]
    lookups = [len(p) + lookup for p in prefixes] + [essence_lookup]
    ids = padded(rows)
    labels = torch.full(ids.shape, -100, dtype=torch.long)
    for r, p in enumerate(rewriting):
        labels[r, len(p) - 1] = target
    delta = torch.tensor(delta0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=V_LR)
    state = {"init": None}
    out_mod = model.gpt_neox.layers[BLOCK].mlp

    def hook(m, i, o):
        if state["init"] is None:
            state["init"] = o[0, lookups[0]].detach().clone()
        o = o.clone()
        for r, i_ in enumerate(lookups):
            o[r, i_] = o[r, i_] + delta
        return o

    handle = out_mod.register_forward_hook(hook)
    kl_init, losses = None, []
    for it in range(STEPS):
        opt.zero_grad()
        logits = model(input_ids=ids).logits
        kl_logp = F.log_softmax(logits[len(rewriting), essence_lookup][None], dim=-1)
        if kl_init is None:
            kl_init = kl_logp.detach().clone()
        logp = F.log_softmax(logits[:len(rewriting)], dim=-1)
        tl = labels[:len(rewriting)]
        gathered = torch.gather(logp, 2, torch.where(tl != -100, tl, 0).unsqueeze(2)).squeeze(2)
        nll = (-(gathered * (tl != -100).float()).sum(1) / 1).mean()
        kl = KL_FACTOR * F.kl_div(kl_init, kl_logp, log_target=True, reduction="batchmean")
        wd = V_WD * (torch.norm(delta) / torch.norm(state["init"]) ** 2)
        loss = nll + kl + wd
        losses.append([loss.item(), nll.item(), kl.item(), wd.item()])
        if loss < 5e-2 or it == STEPS - 1:
            break
        loss.backward()
        opt.step()
        max_norm = CLAMP * state["init"].norm()
        if delta.norm() > max_norm:
            with torch.no_grad():
                delta[...] = delta * max_norm / delta.norm()
    handle.remove()
    target_init = state["init"]
    vstar = (target_init + delta).detach()

    # the rank-one update at the bare prompt
    kstar, current = module_io(model, BLOCK, [prompt], [lookup])
    kstar, current = kstar[0], current[0]
    right = (vstar - current) / torch.dot(kstar, u)
    delta_w = torch.outer(right, u)   # [D, I], as nn.Linear stores dense_4h_to_h

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
    print("wrote rome.h5: %d v* iterations, final loss %.4f, rank of C %d of %d"
          % (len(losses), losses[-1][0], torch.linalg.matrix_rank(C).item(), C.shape[0]))


if __name__ == "__main__":
    main()
