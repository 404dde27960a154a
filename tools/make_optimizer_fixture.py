#!/usr/bin/env python3
"""Writes Tests/Fixtures/parity/adamw_production.h5 with PyTorch: the optimizer path the Trainer runs
(global-norm clipping as clip_grad_norm_, linear warm-up then cosine decay, AdamW with decay on 2-D
tensors only), fed given gradients, so the Swift test checks the optimizer alone.

The parameters are parity_parallel.h5's weights; each step's gradients are seeded random tensors whose
global norm swings above and below the clip threshold (so clipping is active in some steps only).
The file holds: attribute `config` (JSON: lr, min_lr, warmup_steps, total_steps, beta1, beta2, eps,
weight_decay, max_grad_norm, steps), /params0/<name>, /step<k>/grad/<name>, /step<k>/params/<name>
(after step k), /norms [steps] (float64, before clipping), /lrs [steps] (float64).

    python3 tools/make_optimizer_fixture.py        (needs torch and h5py; run once, commit the file)
"""
import json, math, os
import numpy as np, torch, h5py

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = os.path.join(HERE, "..", "Tests", "Fixtures", "parity")
CFG = dict(lr=1e-2, min_lr=1e-3, warmup_steps=2, total_steps=6, beta1=0.9, beta2=0.95, eps=1e-8,
           weight_decay=0.1, max_grad_norm=1.0, steps=6)
SCALES = [0.3, 3.0, 0.5, 5.0, 0.8, 2.0]   # target global gradient norms, around max_grad_norm = 1


def rate(step):
    """LRSchedule.rate: warm-up (step+1)/warmup, then cosine from lr to min_lr over the rest."""
    lr, mn, w, t = CFG["lr"], CFG["min_lr"], CFG["warmup_steps"], CFG["total_steps"]
    if step < w:
        return lr * (step + 1) / w
    if step >= t:
        return mn
    return mn + 0.5 * (lr - mn) * (1 + math.cos(math.pi * (step - w) / (t - w)))


def main():
    with h5py.File(os.path.join(PARITY, "parity_parallel.h5"), "r") as f:
        names = sorted(f["weights"].keys())
        weights = {n: torch.tensor(f[f"weights/{n}"][()]) for n in names}
    params = {n: torch.nn.Parameter(w.clone()) for n, w in weights.items()}
    decay = [p for p in params.values() if p.dim() == 2]
    no_decay = [p for p in params.values() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": CFG["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=CFG["lr"], betas=(CFG["beta1"], CFG["beta2"]), eps=CFG["eps"], foreach=False)
    gen = torch.Generator().manual_seed(5)
    out = os.path.join(PARITY, "adamw_production.h5")
    fixed = lambda t: np.array(t.encode(), dtype=h5py.string_dtype("utf-8", len(t.encode())))
    with h5py.File(out, "w", libver=("v110", "latest")) as f:
        f.attrs["config"] = fixed(json.dumps(CFG))
        f.attrs["made_by"] = fixed(f"torch {torch.__version__}: clip_grad_norm_, AdamW(foreach=False), the schedule above")
        for n, w in weights.items():
            f[f"params0/{n}"] = w.numpy().astype(np.float32)
        norms, lrs = [], []
        for k in range(CFG["steps"]):
            grads = {n: torch.randn(p.shape, generator=gen) for n, p in params.items()}
            total = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
            for n, p in params.items():
                p.grad = (grads[n] * (SCALES[k] / total)).float()
                f[f"step{k + 1}/grad/{n}"] = p.grad.numpy().astype(np.float32)
            for group in opt.param_groups:
                group["lr"] = rate(k)
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), CFG["max_grad_norm"], foreach=False)))
            lrs.append(rate(k))
            opt.step()
            for n, p in params.items():
                f[f"step{k + 1}/params/{n}"] = p.detach().numpy().astype(np.float32)
        f["norms"] = np.array(norms, dtype=np.float64)
        f["lrs"] = np.array(lrs, dtype=np.float64)
    print(out, "norms", [round(x, 4) for x in norms], "lrs", [round(x, 5) for x in lrs])


if __name__ == "__main__":
    main()
