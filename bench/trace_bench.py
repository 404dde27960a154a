#!/usr/bin/env python3
"""Causal tracing speed on the demo model (issue 11): N facts × every position × every block × the
three kinds (block output, MLP, attention; window 1) × S noise samples, by the library (reusing the
corrupted run, and with reuse=false: one forward pass per restoration) against a PyTorch
implementation of the reference (Hugging Face GPTNeoXForCausalLM with forward hooks, as
rome/experiments/causal_trace.py patches states), batched per fact: every restoration of one kind of
one fact in a single forward pass of T·L·S rows. Same prompts, same σ, timed in the same run.

    python3 bench/trace_bench.py --run out [--facts 100 --samples 10 --threads 2]

Run under both OpenBLAS cores (OPENBLAS_CORETYPE=Haswell, this machine's pin, and tools/blas-core).
The scores agree in distribution, not value by value: the noise draws differ (the committed fixture
Tests/Fixtures/parity/trace.h5 checks equality with shared noise).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402


def ours(args, prompts, reuse=True):
    ds = behemoth.Dataset.load(os.path.join(args.run, "dataset.h5"))
    m = behemoth.Model.load(os.path.join(args.run, "model.h5"))
    t = time.perf_counter()
    tr = m.trace(ds, prompts=prompts, samples=args.samples, window=1, reuse=reuse, progress=False)
    seconds = time.perf_counter() - t
    d = tempfile.mkdtemp()
    path = os.path.join(d, "trace.h5")
    tr.save(path)
    return seconds, tr.report, path


def reference(args, trace_path):
    import h5py
    import torch
    from behemoth.hf import to_transformers
    torch.set_num_threads(args.threads)
    hf = to_transformers(os.path.join(args.run, "model.h5"))
    hf.eval()
    layers = hf.gpt_neox.layers
    L = len(layers)
    with h5py.File(trace_path, "r") as f:
        prompts, offsets, subj = f["prompts"][()], f["offsets"][()], f["subject_range"][()]
        sigma = json.loads(f.attrs["spec"])["sigma"]
    S = args.samples
    gen = torch.Generator().manual_seed(1)
    modules = {"block": lambda l: layers[l], "mlp": lambda l: layers[l].mlp, "attn": lambda l: layers[l].attention}

    def first(o):
        return o[0] if isinstance(o, tuple) else o

    lows, highs, peaks = [], [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(len(offsets) - 1):
            tok = torch.tensor(prompts[offsets[i]:offsets[i + 1]], dtype=torch.long)[None]
            T = tok.shape[1]
            b, e = int(subj[i, 0]), int(subj[i, 1])
            clean = {k: [None] * L for k in modules}
            hooks = [modules[k](l).register_forward_hook(lambda _m, _i, o, k=k, l=l: clean[k].__setitem__(l, first(o)[0].clone()))
                     for k in modules for l in range(L)]
            logits = hf(tok).logits[0, -1]
            for h in hooks:
                h.remove()
            answer = int(logits.argmax())
            highs.append(float(torch.softmax(logits, -1)[answer]))
            noise = torch.randn(S, e - b, hf.config.hidden_size, generator=gen) * sigma

            def corrupt(rows):
                def hook(_m, _i, o):
                    o.view(rows // S, S, T, -1)[:, :, b:e] += noise
                    return o
                return hf.gpt_neox.embed_in.register_forward_hook(hook)

            h = corrupt(S)
            lows.append(float(torch.softmax(hf(tok.repeat(S, 1)).logits[:, -1], -1)[:, answer].mean()))
            h.remove()
            for kind in modules:
                R = T * L  # restoration r = t·L + l, rows r·S ..< (r+1)·S
                rows = R * S
                hs = [corrupt(rows)]
                for j in range(L):
                    def patch(_m, _i, o, j=j):
                        x = first(o).view(T, L, S, T, -1)
                        for t in range(T):
                            x[t, j, :, t] = clean[kind][j][t]
                        return o
                    hs.append(modules[kind](j).register_forward_hook(patch))
                p = torch.softmax(hf(tok.repeat(rows, 1)).logits[:, -1], -1)[:, answer].view(T, L, S).mean(-1)
                for h in hs:
                    h.remove()
                if kind == "mlp":
                    peaks.append(int(p.max(0).values.argmax()))
    return time.perf_counter() - t0, float(np.mean(lows)), float(np.mean(highs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="out")
    ap.add_argument("--facts", type=int, default=100)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reuse", action="store_true", help="also time the library with reuse=false")
    args = ap.parse_args()
    behemoth.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = len(behemoth.Dataset.load(os.path.join(args.run, "dataset.h5")).eval_group("sro").targets)
    prompts = sorted(int(x) for x in rng.choice(n, size=min(args.facts, n), replace=False))
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, {args.threads} threads, "
          f"{len(prompts)} facts × {args.samples} samples × 3 kinds, window 1")
    s_ours, rep, path = ours(args, prompts)
    print(f"behemoth (reuse):       {s_ours:7.2f} s   low {rep['mean_low']:.3f} high {rep['mean_high']:.3f}")
    if args.no_reuse:
        s_plain, rep2, _ = ours(args, prompts, reuse=False)
        print(f"behemoth (reuse=false): {s_plain:7.2f} s   ({s_plain / s_ours:.1f}× the reusing trace)")
    try:
        s_ref, low, high = reference(args, path)
    except ImportError as e:
        print(f"PyTorch reference skipped: {e}")
        return
    print(f"PyTorch reference:      {s_ref:7.2f} s   low {low:.3f} high {high:.3f}")
    print(f"ratio: behemoth is {s_ref / s_ours:.1f}× the PyTorch reference batched per fact")


if __name__ == "__main__":
    main()
