#!/usr/bin/env python3
"""Writes Tests/Fixtures/parity/trace.h5: causal tracing as ROME's experiments/causal_trace.py does it
(../shared/reference/rome-tracing-metrics.md §3), implemented independently with forward hooks on
Hugging Face's GPTNeoXForCausalLM in float64, on two small random models (parallel and sequential
residual) with the noise draws stored, so the Swift tests (TraceTests) compare scores exactly.

Per model group /parallel, /sequential:
  attrs: config (JSON, as parity_parallel.h5)        /weights/<HF name> float32 (embed_out.weight for the head)
  /case<k>/prompt int32 [T], subject int32 [2] ([b, e)), noise float64 [S, e−b, D] (z ~ N(0, 1)),
           sigma float64 [1], replace int32 [1]
           answer int32 [1], high float64 [1], low float64 [1]
           scores/<kind>_w<w> float64 [T, L]  kind ∈ block, mlp, attn; w ∈ 1, 3
           severed/<mlp|attn> float64 [T, L]   block output restored at (t, l), that sublayer's output at
                                               token t kept at its corrupted value in every block

Semantics: answer = argmax of the clean logits at the last position, high = its probability;
corruption at the embedding output x[s, t] += σ·z[s, t−b] (replace: x[s, t] = σ·z[s, t−b]) for t in [b, e);
low / scores = p(answer) at the last position averaged over the S copies; restoring (t, l) with window w
overwrites the site's output at token t with the clean value in every block of
range(max(0, l − w//2), min(L, l − (−w//2))). Sites: block → layers[l] output, mlp → layers[l].mlp,
attn → layers[l].attention output[0] (after dense, with biases).

    python3 tools/make_trace_fixture.py
"""
import json
import os

import h5py
import numpy as np
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "parity", "trace.h5")
CASES = [  # (length, subject [b, e), samples, sigma, replace)
    (7, (1, 2), 10, 0.5, 0),
    (8, (1, 3), 10, 1.0, 0),
    (9, (2, 5), 4, 3.0, 1),
]


def make_model(parallel: bool, seed: int):
    cfg = dict(layers=4, hidden=32, heads=4, intermediate=64, rotary_pct=0.25, rotary_base=10000.0,
               parallel_residual=parallel, layer_norm_eps=1e-5, vocab_size=50, max_positions=64, init_range=0.3,
               seed=seed, preset="tiny")
    hc = GPTNeoXConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                       rotary_pct=0.25, rotary_emb_base=10000.0, max_position_embeddings=64, initializer_range=0.3,
                       layer_norm_eps=1e-5, use_parallel_residual=parallel, tie_word_embeddings=False, hidden_act="gelu",
                       attention_dropout=0.0, hidden_dropout=0.0)
    hc._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(hc)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layernorm" in n or "layer_norm" in n:
                p.copy_((1.0 if n.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model = model.double().eval()
    return cfg, model


def first(o):
    return o[0] if isinstance(o, tuple) else o


def run(model, tok, sigma, z, b, e, replace, patches=(), capture=None):
    """p(all) at the last position of S corrupted copies (z None: one clean row). patches:
    (module, token, values [S or 1, D]) overwritten after the module; capture: {key: module}."""
    S = 1 if z is None else z.shape[0]
    hooks, seen = [], {}
    if z is not None:
        def corrupt(_m, _i, o):
            o = o.clone()
            noise = sigma * torch.from_numpy(z)
            o[:, b:e] = noise if replace else o[:, b:e] + noise
            return o
        hooks.append(model.gpt_neox.embed_in.register_forward_hook(corrupt))
    for module, t, values in patches:
        def patch(_m, _i, o, t=t, values=values):
            h = first(o).clone()
            h[:, t] = values
            return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h
        hooks.append(module.register_forward_hook(patch))
    for key, module in (capture or {}).items():
        hooks.append(module.register_forward_hook(lambda _m, _i, o, key=key: seen.__setitem__(key, first(o).detach().clone())))
    with torch.no_grad():
        p = torch.softmax(model(input_ids=tok.repeat(S, 1)).logits[:, -1], -1)
    for h in hooks:
        h.remove()
    return p, seen


def sites(model, kind, l):
    layer = model.gpt_neox.layers[l]
    return {"block": layer, "mlp": layer.mlp, "attn": layer.attention}[kind]


def trace_case(model, g, prompt, b, e, S, sigma, replace, rng):
    L, D = len(model.gpt_neox.layers), model.config.hidden_size
    T = len(prompt)
    tok = torch.tensor(prompt, dtype=torch.long)[None]
    z = rng.standard_normal((S, e - b, D))
    keys = {f"{k}{l}": sites(model, k, l) for k in ("block", "mlp", "attn") for l in range(L)}
    p, clean = run(model, tok, sigma, None, b, e, replace, capture=keys)
    answer = int(p[0].argmax())
    high = float(p[0, answer])
    p, corrupted = run(model, tok, sigma, z, b, e, replace, capture=keys)
    low = float(p[:, answer].mean())
    # sanity: σ = 0 adds nothing
    if not replace:
        p0, _ = run(model, tok, 0.0, z, b, e, replace)
        assert abs(float(p0[:, answer].mean()) - high) < 1e-12
    g.create_dataset("prompt", data=np.array(prompt, np.int32))
    g.create_dataset("subject", data=np.array([b, e], np.int32))
    g.create_dataset("noise", data=z)
    g.create_dataset("sigma", data=np.array([sigma]))
    g.create_dataset("replace", data=np.array([replace], np.int32))
    g.create_dataset("answer", data=np.array([answer], np.int32))
    g.create_dataset("high", data=np.array([high]))
    g.create_dataset("low", data=np.array([low]))
    summary = {}
    for kind in ("block", "mlp", "attn"):
        for w in (1, 3):
            s = np.zeros((T, L))
            for t in range(T):
                for l in range(L):
                    win = range(max(0, l - w // 2), min(L, l - (-w // 2)))
                    pr, _ = run(model, tok, sigma, z, b, e, replace,
                                patches=[(sites(model, kind, j), t, clean[f"{kind}{j}"][0, t]) for j in win])
                    s[t, l] = float(pr[:, answer].mean())
            g.create_dataset(f"scores/{kind}_w{w}", data=s)
            summary[f"{kind}_w{w}"] = round(float(s.max()), 4)
    bw = g["scores/block_w1"][()]
    assert np.allclose(bw[T - 1, L - 1], high, atol=1e-12) and np.allclose(bw[:T - 1, L - 1], low, atol=1e-12)
    for sub in ("mlp", "attn"):
        s = np.zeros((T, L))
        for t in range(T):
            for l in range(L):
                frozen = [(sites(model, sub, j), t, corrupted[f"{sub}{j}"][:, t]) for j in range(L)]
                pr, _ = run(model, tok, sigma, z, b, e, replace,
                            patches=frozen + [(sites(model, "block", l), t, clean[f"block{l}"][0, t])])
                s[t, l] = float(pr[:, answer].mean())
        g.create_dataset(f"severed/{sub}", data=s)
        summary[f"severed_{sub}"] = round(float(s.max()), 4)
    return answer, low, high, summary


def main():
    torch.set_num_threads(1)
    with h5py.File(OUT, "w", libver=("v110", "latest")) as f:
        for name, parallel, seed in (("parallel", True, 11), ("sequential", False, 12)):
            cfg, model = make_model(parallel, seed)
            g = f.create_group(name)
            text = json.dumps(cfg).encode("utf-8")   # a fixed-length UTF-8 string, as every Behemoth file stores them
            g.attrs.create("config", np.array(text, dtype=h5py.string_dtype("utf-8", len(text))))
            for n, p in model.named_parameters():
                g.create_dataset(f"weights/{'embed_out.weight' if n in ('lm_head.weight', 'embed_out.weight') else n}",
                                 data=p.detach().float().numpy())
            rng = np.random.RandomState(5 if parallel else 6)
            for k, (T, (b, e), S, sigma, replace) in enumerate(CASES):
                prompt = [int(x) for x in rng.randint(2, 50, size=T)]
                answer, low, high, summary = trace_case(model, g.create_group(f"case{k}"), prompt, b, e, S, sigma, replace, rng)
                print(f"{name} case{k}: answer {answer}, low {low:.4f}, high {high:.4f}, max {summary}")
    print(f"wrote {OUT} ({os.path.getsize(OUT) // 1024} KB)")


if __name__ == "__main__":
    main()
