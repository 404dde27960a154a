#!/usr/bin/env python3
"""Speed of the locate-then-edit editors on the demo model, beside a PyTorch reference timed in the
same run (issue 10):

- key statistics C = E[k kᵀ] of the last block's MLP key over every position of the training
  sentences: the library (computed in a fresh process cache) against a PyTorch forward pass with a hook
  on dense_4h_to_h and float64 accumulation, as rome's layer_stats does it; and the cached reuse;
- one ROME edit with cached statistics and no context templates (k̄ and u, v* by Adam, the rank-one
  update; evaluation excluded: the editor report's own seconds) against the same three steps in PyTorch
  (compute_u, compute_v with the reference's hyperparameters, the update);
- MEMIT and AlphaEdit of N diverse edits over 3 blocks (z per edit, then the per-block solves).

    python3 bench/locate_edit_bench.py --run out [--batch-run /tmp/o200 --batch-edits 100]

`--run` is a folder `make run` wrote (dataset.h5, model.h5). `--batch-run` is a model whose relations have
enough objects for N diverse edits (2N objects; the demo has 50, so at most 25 there): the study's
`batch100` part trains one (bench/locate_edit_study.py). Run it under both OpenBLAS cores:
OPENBLAS_CORETYPE=Haswell (this machine's pin) and the CPU's own best (tools/blas-core).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402
from behemoth.dataset import Dataset  # noqa: E402
from behemoth.edit import EditSet  # noqa: E402
from behemoth.model import Model  # noqa: E402


def library(args):
    ds = Dataset.load(os.path.join(args.run, "dataset.h5"))
    model = Model.load(os.path.join(args.run, "model.h5"))
    last = model.config["layers"] - 1
    out = {}
    for i, seed in enumerate([args.seed, args.seed + 1, args.seed + 2]):
        es = EditSet(ds, kind="single", seed=seed)
        with model.clone() as m:
            r = m.edit(es, method="rome", fact_token="last", layers={"blocks": [last]}, progress=False)
            run = r.report["editor"][0]
            stats = run["key_statistics"][str(last)]
            upd = run["updates"][0]
            if i == 0:
                out["stats_seconds"] = stats["compute_seconds"]
                out["stats_positions"] = stats["positions"]
                out["stats_source_first"] = stats["source"]
            else:
                out.setdefault("stats_cached_seconds", []).append(stats["obtained_in_seconds"])
                out["stats_source_again"] = stats["source"]
            out.setdefault("rome_seconds", []).append(upd["seconds"])
            out.setdefault("rome_success", []).append(r.metrics["edit_success"])
            r.close()
        es.close()
    # blocks 1..L-2 in one pass (MEMIT's statistics; block 0 is singular, the last is cached already)
    blocks = list(range(1, last))
    with model.clone() as m:
        es = EditSet(ds, kind="single", seed=args.seed)
        r = m.edit(es, method="memit", fact_token="last", layers={"blocks": blocks}, progress=False)
        st = r.report["editor"][0]["key_statistics"]
        out["blocks_obtained_seconds"] = st[str(blocks[0])]["obtained_in_seconds"]
        out["blocks"] = blocks
        r.close()
        es.close()
    return ds, model, out


def batch_editors(args):
    folder = args.batch_run or args.run
    ds = Dataset.load(os.path.join(folder, "dataset.h5"))
    model = Model.load(os.path.join(folder, "model.h5"))
    L = model.config["layers"]
    blocks = list(range(L - 3, L))
    es = EditSet(ds, kind="diverse", count=args.batch_edits, seed=args.seed)
    rows = []
    for method in ["memit", "alphaedit"]:
        with model.clone() as m:
            t = time.time()
            r = m.edit(es, method=method, fact_token="last", layers={"blocks": blocks}, progress=False)
            wall = time.time() - t
            run = r.report["editor"][0]
            z = sum(x["seconds"] for x in run["z"])
            solve = sum(x["seconds"] for x in run["updates"])
            rows.append(dict(method=method, edits=args.batch_edits, blocks=blocks, z_seconds=z, update_seconds=solve,
                             wall_seconds=wall, edit_success=r.metrics["edit_success"], remaining=r.metrics["remaining_accuracy"]))
            r.close()
    return rows


def torch_reference(ds, model_path, last, seed, blocks, repeats=3):
    """The same work in PyTorch (float32 forward passes, float64 statistics), timed."""
    import numpy as np
    import torch
    from behemoth.hf import to_transformers

    import importlib.util
    spec = importlib.util.spec_from_file_location("make_rome_fixture", os.path.join(HERE, "..", "tools", "make_rome_fixture.py"))
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)

    torch.manual_seed(seed)
    hf = to_transformers(model_path)
    hf.eval()
    pad = 1
    tokens, offsets = ds.tokens, ds.offsets
    sentences = [tokens[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]

    def padded(rows):
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)

    mod = hf.gpt_neox.layers[last].mlp.dense_4h_to_h

    # key statistics: batches of 256 sentences, keys at the valid positions, float64 sums
    best_stats = float("inf")
    for _ in range(repeats):
        t = time.time()
        I = mod.in_features
        C = torch.zeros(I, I, dtype=torch.float64)
        n = 0
        with torch.no_grad():
            for b in range(0, len(sentences), 256):
                rows = sentences[b:b + 256]
                keys = []
                h = mod.register_forward_hook(lambda m, i, o: keys.append(i[0]))
                hf(input_ids=padded(rows))
                h.remove()
                K = torch.cat([keys[0][r, :len(s)] for r, s in enumerate(rows)])
                C += (K.T @ K).double()
                n += K.shape[0]
        C /= n
        best_stats = min(best_stats, time.time() - t)

    # the same statistics for several blocks: one pass per block (rome's layer_stats) and one pass for all
    def stats_pass(bs):
        mods = [hf.gpt_neox.layers[b].mlp.dense_4h_to_h for b in bs]
        Cs = [torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for m in mods]
        with torch.no_grad():
            for b0 in range(0, len(sentences), 256):
                rows = sentences[b0:b0 + 256]
                keys = [[] for _ in mods]
                hs = [m.register_forward_hook(lambda m_, i, o, k=k: k.append(i[0])) for m, k in zip(mods, keys)]
                hf(input_ids=padded(rows))
                for h in hs:
                    h.remove()
                for C, k in zip(Cs, keys):
                    K = torch.cat([k[0][r, :len(s)] for r, s in enumerate(rows)])
                    C += (K.T @ K).double()
        return Cs

    t = time.time()
    for b in blocks:
        stats_pass([b])
    per_block = time.time() - t
    t = time.time()
    stats_pass(blocks)
    one_pass = time.time() - t

    # one ROME edit at the prompt's last token, the reference's v* hyperparameters
    es = EditSet(ds, kind="single", seed=seed)
    prompt = [int(x) for x in es.group("edited")["prompts"][0]]
    target = int(es.group("edited")["targets"][0])
    lookup = len(prompt) - 1
    essence = prompt[:len(prompt) - 3]
    times = []
    for _ in range(repeats):
        t = time.time()
        keys = {}
        h = mod.register_forward_hook(lambda m, i, o: keys.update(k=i[0].detach(), v=o.detach()))
        with torch.no_grad():
            hf(input_ids=padded([prompt]))
        h.remove()
        kbar = keys["k"][0, lookup]
        u = torch.linalg.lstsq(C, kbar.double()[:, None], driver="gelsd").solution[:, 0]
        u = (u / u.norm()).float()
        # compute_v: the reference's loop (tools/make_rome_fixture.py), 20 steps, clamp 4, from δ = 0
        init, delta, _ = reference.optimise_delta(hf, hf.gpt_neox.layers[last].mlp, [prompt, essence], [lookup, len(essence) - 1],
                                                  target, np.zeros(hf.config.hidden_size, dtype=np.float32), 20, 4.0)
        vstar = init + delta
        keys.clear()
        h = mod.register_forward_hook(lambda m, i, o: keys.update(k=i[0].detach(), v=o.detach()))
        with torch.no_grad():
            hf(input_ids=padded([prompt]))
        h.remove()
        kstar, cur = keys["k"][0, lookup], keys["v"][0, lookup]
        with torch.no_grad():
            mod.weight += torch.outer((vstar - cur) / torch.dot(kstar, u), u)
        times.append(time.time() - t)
        with torch.no_grad():
            mod.weight -= torch.outer((vstar - cur) / torch.dot(kstar, u), u)
    es.close()
    return dict(stats_seconds=best_stats, rome_seconds=times, blocks_per_block_seconds=per_block, blocks_one_pass_seconds=one_pass, torch=torch.__version__, threads=torch.get_num_threads(),
                stats_positions=int(sum(len(s) for s in sentences)), np=np.__version__)


def main(argv=None):
    p = argparse.ArgumentParser(description="locate-then-edit speed against PyTorch")
    p.add_argument("--run", default="out")
    p.add_argument("--batch-run", default=None)
    p.add_argument("--batch-edits", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    info = behemoth.runtime_info()
    print(f"behemoth {behemoth.version()}: OpenBLAS core {info['blas_core']}, {info['threads']} threads")
    ds, model, ours = library(args)
    last = model.config["layers"] - 1
    ref = None
    if not args.no_torch:
        try:
            ref = torch_reference(ds, os.path.join(args.run, "model.h5"), last, args.seed, ours["blocks"])
        except ImportError as e:
            print(f"(no PyTorch reference: {e})")
    print(f"key statistics, block {last}, {ours['stats_positions']} positions: {ours['stats_seconds'] * 1e3:.0f} ms "
          f"({ours['stats_source_first']})" + (f"; PyTorch {ref['stats_seconds'] * 1e3:.0f} ms over {ref['stats_positions']} "
                                                f"positions: {ref['stats_seconds'] / ours['stats_seconds']:.1f}x faster" if ref else ""))
    print(f"  cached reuse ({ours['stats_source_again']}): " + ", ".join(f"{x * 1e3:.2f} ms" for x in ours["stats_cached_seconds"]))
    print(f"key statistics, blocks {ours['blocks']} in one pass (with their eigendecompositions): {ours['blocks_obtained_seconds']:.2f} s"
          + (f"; PyTorch one pass per block as rome's layer_stats {ref['blocks_per_block_seconds']:.2f} s "
             f"({ref['blocks_per_block_seconds'] / ours['blocks_obtained_seconds']:.1f}x), PyTorch one pass for all "
             f"{ref['blocks_one_pass_seconds']:.2f} s ({ref['blocks_one_pass_seconds'] / ours['blocks_obtained_seconds']:.1f}x)" if ref else ""))
    rs = ours["rome_seconds"][1:]
    print(f"ROME edit, block {last}, fact token last, cached statistics, no templates (evaluation excluded): "
          + ", ".join(f"{x * 1e3:.0f} ms" for x in rs) + f" (success {ours['rome_success']})"
          + (f"; PyTorch " + ", ".join(f"{x * 1e3:.0f} ms" for x in ref["rome_seconds"])
             + f": {min(ref['rome_seconds']) / min(rs):.1f}x faster" if ref else ""))
    for row in batch_editors(args):
        print(f"{row['method']} {row['edits']} diverse edits over blocks {row['blocks']}: z {row['z_seconds']:.2f} s, "
              f"updates {row['update_seconds']:.2f} s, with evaluation {row['wall_seconds']:.1f} s; "
              f"edit success {row['edit_success']:.0%}, remaining {row['remaining']:.1%}")


if __name__ == "__main__":
    main()
