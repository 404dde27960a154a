#!/usr/bin/env python3
"""Speed, in one run, for each OpenBLAS core type this CPU runs (SkylakeX with AVX-512, Haswell with
AVX2): training tokens/s against PyTorch, forward-only tokens/s against PyTorch under
torch.inference_mode, LoRA and full-fine-tuning edit steps/s (bench/edit_bench.py, through the binding), the non-GEMM share of the training
step, the step's GEMMs against the same products alone, and the fraction of the core's sgemm peak.
Ours and the references alternate round by round so they see the same machine load; with
--baseline, another build of the library (e.g. the commit before a change) is timed in the same
rounds for a before/after.

    make build
    python3 bench/speed_bench.py [--rounds 3] [--steps 20] [--baseline DIR] [--cores SkylakeX,Haswell]

DIR holds a previous build's bh-bench and libbehemoth.so (copy them from .build-dist/release).
Results also go to bench/results/speed-<date>.json unless --no-save. Needs torch and transformers
(requirements-reference.txt) for the PyTorch columns; without them those columns are skipped.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, ".build-dist", "release")


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def grab(text, key, group=1):
    m = re.search(rf"^{key} ([0-9.]+)", text, re.M)
    return float(m.group(group)) if m else None


def profile_products(text):
    """(products, total) ms per step from bh-bench's per-phase profile (phases named *Gemm are products)."""
    block = text.split("profile (per step", 1)[1] if "profile (per step" in text else ""
    products = total = None
    for m in re.finditer(r"^  (\w+) +([0-9.]+) ms/step", block, re.M):
        if m.group(1) == "total":
            total = float(m.group(2))
            break
        if m.group(1).endswith("Gemm"):
            products = (products or 0) + float(m.group(2))
    return products, total


def cpu_cores():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    cores = []
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        cores.append("SkylakeX")
    if {"avx2", "fma"} <= flags:
        cores.append("Haswell")
    return cores


def has_torch():
    return subprocess.run([sys.executable, "-c", "import torch, transformers"], capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cores", default=",".join(cpu_cores()))
    ap.add_argument("--baseline", help="a folder with an earlier build's bh-bench and libbehemoth.so")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    torch_ok = not a.no_torch and has_torch()
    shape = ["--preset", "pythia-31m-shape", "--vocab", "5000", "--batch", "128", "--seq", "16", "--threads", str(a.threads)]
    builds = {"ours": BUILD}
    if a.baseline:
        builds["baseline"] = os.path.abspath(a.baseline)
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "shape": shape, "rounds": a.rounds,
               "steps": a.steps, "cores": {}}
    for core in [c for c in a.cores.split(",") if c]:
        env = dict(os.environ, OPENBLAS_CORETYPE=core)
        env.pop("BEHEMOTH_KERNELS", None)
        keys = ("train", "forward", "lora", "full", "torch_train", "torch_forward")
        r = {k: [] for k in keys + tuple(k + "_best" for k in keys)}
        base = {k: [] for k in ("train", "lora", "full", "train_best", "lora_best", "full_best")}
        profile = base_profile = ""
        for i in range(a.rounds):
            for name, folder in builds.items():
                bench = os.path.join(folder, "bh-bench")
                dst = r if name == "ours" else base
                t = run([bench] + shape + ["--steps", str(a.steps)] + (["--profile"] if i == 0 else []), env)
                if i == 0:
                    if name == "ours":
                        profile = t
                    else:
                        base_profile = t
                dst["train"].append(grab(t, "ours_tokens_per_s"))
                dst["train_best"].append(grab(t, "ours_best_step_tokens_per_s"))
                if name == "ours":
                    f = run([bench] + shape + ["--steps", str(a.steps), "--forward"], env)
                    dst["forward"].append(grab(f, "ours_forward_tokens_per_s"))
                    dst["forward_best"].append(grab(f, "ours_forward_best_tokens_per_s"))
                # edit steps through the binding's real editors, the same harness for every build
                e = run([sys.executable, os.path.join(HERE, "edit_bench.py"), "--steps", str(a.steps)],
                        dict(env, BEHEMOTH_LIB=os.path.join(folder, "libbehemoth.so")))
                for m, key in (("lora", "lora_last_mlp"), ("full", "full_all_blocks")):
                    mm = re.search(rf"^edit_steps_per_s {key} ([0-9.]+)", e, re.M)
                    dst[m].append(float(mm.group(1)) if mm else None)
                    mb = re.search(rf"^edit_best_steps_per_s {key} ([0-9.]+)", e, re.M)
                    dst[m + "_best"].append(float(mb.group(1)) if mb else None)
            if torch_ok:
                tt = run([sys.executable, os.path.join(HERE, "torch_train_bench.py")] + shape + ["--steps", str(a.steps)], env)
                r["torch_train"].append(grab(tt, "torch_tokens_per_s"))
                r["torch_train_best"].append(grab(tt, "torch_best_step_tokens_per_s"))
                tf = run([sys.executable, os.path.join(HERE, "torch_train_bench.py")] + shape + ["--steps", str(a.steps), "--forward"], env)
                r["torch_forward"].append(grab(tf, "torch_forward_tokens_per_s"))
                r["torch_forward_best"].append(grab(tf, "torch_forward_best_step_tokens_per_s"))
            print(f"[{core}] round {i + 1}: train {r['train'][-1]:.0f} tok/s, forward {r['forward'][-1]:.0f} tok/s, "
                  f"LoRA {r['lora'][-1]:.1f} steps/s, full {r['full'][-1]:.1f} steps/s"
                  + (f"; torch train {r['torch_train'][-1]:.0f}, inference {r['torch_forward'][-1]:.0f}" if torch_ok else ""),
                  flush=True)
        med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None
        peak = grab(profile, "sgemm_peak_gflops")
        flop = grab(profile, r"  FLOP per token \(6 × matrix params \+ attention\):")
        # medians of the rounds' median steps; for *_best, the fastest step of any round (the least
        # disturbed by other load on a shared machine)
        pick = lambda k, v: (max([x for x in v if x is not None], default=None) if k.endswith("_best") else med(v))
        row = {k: pick(k, v) for k, v in r.items()}
        row.update({f"baseline_{k}": pick(k, v) for k, v in base.items()} if a.baseline else {})
        row["sgemm_peak_gflops"] = peak
        row["non_gemm_share"] = grab(profile, "non_gemm_share")
        row["gemm_in_step_fraction"] = grab(profile, "gemm_in_step_fraction")
        row["fraction_of_peak"] = flop * row["train"] / 1e3 / peak if flop and peak else None
        # The ceiling: tokens/s if a step (a forward pass) were only its products, each at OpenBLAS's
        # own standalone rate (round 1's profile); no element-wise work at all.
        tokens = int(shape[shape.index("--batch") + 1]) * int(shape[shape.index("--seq") + 1])
        row["train_ceiling"] = tokens / (grab(profile, "gemm_alone_ms_per_step") / 1e3)
        row["forward_ceiling"] = tokens / (grab(profile, "gemm_alone_ms_per_forward") / 1e3)
        # The baseline's own profile: how much of its step were products (the same OpenBLAS products;
        # what any change to the rest of the step can gain at most is its step over those)
        row["baseline_profile_products_ms"], row["baseline_profile_total_ms"] = profile_products(base_profile)
        results["cores"][core] = row
        print(f"\n== OPENBLAS_CORETYPE={core} (median of {a.rounds} rounds; {a.threads} threads; pythia-31m-shape, vocab 5000, batch 128 × 16)")
        def line(label, key, ref_key, unit, ref_name):
            for kind, suffix in (("median", ""), ("fastest", "_best")):
                ours, ref = row.get(key + suffix), row.get(ref_key + suffix) if ref_key else None
                if ours is None:
                    continue
                s = f"  {label:<22} {kind:<8} {ours:10.1f} {unit}"
                if ref:
                    s += f"   {ref_name} {ref:10.1f}   ratio {ours / ref:.2f}×"
                print(s)
        line("training", "train", "torch_train", "tok/s", "PyTorch")
        line("forward only", "forward", "torch_forward", "tok/s", "PyTorch inference_mode")
        if a.baseline:
            line("training", "train", "baseline_train", "tok/s", "baseline")
        line("LoRA edit (last MLP)", "lora", "baseline_lora" if a.baseline else None, "steps/s", "baseline")
        line("full FT edit (all)", "full", "baseline_full" if a.baseline else None, "steps/s", "baseline")
        for what, key in (("training", "train"), ("forward only", "forward")):
            ref, base_ref = row.get("torch_" + key), row.get("baseline_" + key)
            print(f"  ceiling, {what}: {row[key + '_ceiling']:.0f} tok/s with nothing but the products at OpenBLAS's standalone rate"
                  + (f" = {row[key + '_ceiling'] / ref:.2f}× PyTorch's median" if ref else "")
                  + (f", {row[key + '_ceiling'] / base_ref:.2f}× the baseline's" if base_ref else ""))
        bp, bt = row["baseline_profile_products_ms"], row["baseline_profile_total_ms"]
        if bp and bt:
            print(f"  baseline's profile (round 1): products {bp:.1f} of {bt:.1f} ms per step ({100 * bp / bt:.1f}%); "
                  f"with no other work and the same products it would be {bt / bp:.2f}× faster")
        if a.baseline and row.get("baseline_train"):
            need = tokens / (1.25 * row["baseline_train"]) * 1e3
            print(f"  1.25× the baseline's median is a step of {need:.1f} ms; our products alone take "
                  f"{grab(profile, 'gemm_alone_ms_per_step'):.1f} ms of it on OpenBLAS's pool")
        print(f"  sgemm peak {peak} GFLOP/s; training at {100 * row['fraction_of_peak']:.1f}% of it; "
              f"non-GEMM share {100 * row['non_gemm_share']:.1f}%; GEMMs in the step at {100 * row['gemm_in_step_fraction']:.1f}% "
              f"of the same products alone")
        print("  profile of round 1:")
        print("\n".join("    " + l for l in profile.split("\n") if l.startswith("  ") or l.startswith("by ") or l.startswith("non_gemm")))
    if not a.no_save:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"speed-{results['date'][:10]}.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
