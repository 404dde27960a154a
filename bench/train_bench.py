#!/usr/bin/env python3
"""Training throughput, ours (bh-bench) against PyTorch/transformers (torch_train_bench.py), in the
same run, alternating rounds so both see the same machine load. Prints tokens/s for both, the
ratio, and our achieved GFLOP/s against the sgemm peak bh-bench measures.

    make build            # the library and bh-bench
    OPENBLAS_CORETYPE=$(tools/blas-core) python3 bench/train_bench.py [--rounds 3] [--steps 20] [-- extra bh-bench/torch args]
"""
import argparse, os, re, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def grab(text, key):
    m = re.search(rf"^{key} ([0-9.]+)", text, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--preset", default="pythia-31m-shape")
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-trainer", action="store_true", help="skip the measurement through the Python Trainer")
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_CORETYPE", subprocess.run([os.path.join(ROOT, "tools", "blas-core")],
                                                              capture_output=True, text=True).stdout.strip())
    common = ["--preset", a.preset, "--vocab", str(a.vocab), "--batch", str(a.batch), "--seq", str(a.seq),
              "--threads", str(a.threads), "--steps", str(a.steps)]
    bench = os.path.join(ROOT, ".build-dist", "release", "bh-bench")
    ours, theirs, last = [], [], ""
    ours_best, theirs_best = [], []
    for r in range(a.rounds):
        last = run([bench] + common)
        ours.append(grab(last, "ours_tokens_per_s"))
        ours_best.append(grab(last, "ours_best_step_tokens_per_s"))
        t = run([sys.executable, os.path.join(HERE, "torch_train_bench.py")] + common)
        theirs.append(grab(t, "torch_tokens_per_s"))
        theirs_best.append(grab(t, "torch_best_step_tokens_per_s"))
        print(f"round {r + 1}: ours {ours[-1]:.0f} tokens/s, torch {theirs[-1]:.0f} tokens/s, ratio {ours[-1] / theirs[-1]:.2f}")
    print(last.rstrip())
    flop = grab(last, r"  FLOP per token \(6 × matrix params \+ attention\):")
    peak = grab(last, "sgemm_peak_gflops")
    bo, bt = max(ours), max(theirs)
    mo, mt = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    print(f"summary ({a.preset}, vocab {a.vocab}, batch {a.batch} × {a.seq}, {a.threads} threads, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}):")
    print(f"  ours  best {bo:.0f} tokens/s, median {mo:.0f}")
    print(f"  torch best {bt:.0f} tokens/s, median {mt:.0f}")
    print(f"  ratio best/best {bo / bt:.2f}, median/median {mo / mt:.2f}")
    # The fastest single step of each is the least disturbed by other load on a shared machine.
    so, st = max(ours_best), max(theirs_best)
    print(f"  fastest step: ours {so:.0f} tokens/s, torch {st:.0f} tokens/s, ratio {so / st:.2f}")
    print(f"ratio_fastest_step {so / st:.2f}")
    if flop and peak:
        print(f"  ours fastest step {flop * so / 1e3:.1f} GFLOP/s = {100 * flop * so / 1e3 / peak:.0f}% of the measured sgemm peak {peak:.1f} GFLOP/s")
        print(f"  ours achieved {flop * bo / 1e3:.1f} GFLOP/s at {flop:.2f} MFLOP/token = {100 * flop * bo / 1e3 / peak:.0f}% of the measured sgemm peak {peak:.1f} GFLOP/s")
        print(f"  torch achieved {flop * bt / 1e3:.1f} GFLOP/s = {100 * flop * bt / 1e3 / peak:.0f}% of that peak")


    if not a.no_trainer:
        trainer_line(a)


def trainer_line(a):
    """The same model through the library's Trainer (Python binding, bh_trainer_step) on a real
    dataset: the paper preset's vocabulary (5,200 tokens) and 12-token sentences, batch as above.
    Shows what the trainer adds around the model's step (batching, clipping, reports)."""
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    from behemoth import Dataset, Model, Trainer
    ds = Dataset.generate(preset="paper", seed=0)
    m = Model.create(dataset=ds, preset=a.preset)
    rates = []
    with Trainer(m, ds, epochs=1, batch_size=a.batch, eval_every_epochs=0, eval_groups=[]) as t:
        for i, r in enumerate(t):
            if i >= 2:
                rates.append(r["tokens_per_second"])
            if i >= a.steps + 1:
                break
    rates.sort()
    print(f"  trainer (bh_trainer_step, paper-preset data, vocab {ds.info['counts']['vocab_size']}, batch {a.batch}, "
          f"12-token sentences): median {rates[len(rates) // 2]:.0f} tokens/s, best {rates[-1]:.0f}")


if __name__ == "__main__":
    main()
