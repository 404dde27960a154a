#!/usr/bin/env python3
"""Writes Tests/Fixtures/parity/objectives.h5 with PyTorch and Hugging Face transformers
(GPTNeoXForCausalLM, float32): the loss, its terms and the gradient of every parameter for two
objectives (Sources/Engine/Model/Objective.swift) on the model, inputs and labels of
parity_parallel.h5 (made by make_parity_fixture.py, read here, not stored again). Run once; the
Swift tests only read the output.

Targets are the labels shifted by one (targets[b, t] = labels[b, t+1], the last position ignored),
C = the number of targets >= 0, NLL = -log_softmax(logits)[target].

/weighted_nll   sum over target positions of w * NLL / C, w [B, T] in [-1, 1] (both signs)
                datasets: weights [B, T], loss [1], terms [1], grads/<name>
/kl_sum         sum of w * NLL / 1 (w [B, T] >= 0: ROME's per-prompt mean NLL)
                + 0.0625 * F.kl_div(log q1, log p, log_target=True, reduction="batchmean")
                  = KL(p_model || q1) averaged over positions1, as ROME's compute_v (reference as logits)
                + 0.5 * F.kl_div(log p, log q2, log_target=True, reduction="batchmean")
                  = KL(q2 || p_model) averaged over positions2, as TOFU's retain KL (reference as log-probs)
                datasets: weights [B, T], positions1 [P1, 2] (b, t), reference1_logits [P1, V],
                positions2 [P2, 2], reference2_logprobs [P2, V], kl_weights [2], loss [1], terms [3],
                grads/<name>

    python3 tools/make_objective_fixture.py
"""
import json, os
import numpy as np, torch, h5py
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

DIR = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "parity")
KL1, KL2 = 0.0625, 0.5


def hf_name(n):
    return "embed_out.weight" if n == "lm_head.weight" else n


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
            p.copy_(torch.from_numpy(f[f"weights/{hf_name(n)}"][()]))
    model.train()
    return model


def nll_rows(logits, targets):
    """[B, T] NLL at target positions, 0 elsewhere."""
    logp = F.log_softmax(logits, dim=-1)
    safe = targets.clamp(min=0)
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(targets >= 0, nll, torch.zeros_like(nll))


def main():
    with h5py.File(os.path.join(DIR, "parity_parallel.h5"), "r") as src:
        model = load_model(src)
        ids = torch.from_numpy(src["input_ids"][()]).long()
        labels = torch.from_numpy(src["labels"][()]).long()
    B, T = ids.shape
    V = model.config.vocab_size
    targets = torch.full_like(labels, -100)
    targets[:, :-1] = labels[:, 1:]
    C = int((targets >= 0).sum())
    g = torch.Generator().manual_seed(3)

    def run(loss_fn):
        model.zero_grad()
        logits = model(input_ids=ids).logits
        loss, terms = loss_fn(logits)
        loss.backward()
        grads = {hf_name(n): p.grad.detach().numpy().astype(np.float32) for n, p in model.named_parameters()}
        return loss.item(), [t.item() for t in terms], grads

    # (a) weighted / negated token NLL
    w_a = torch.rand(B, T, generator=g) * 2 - 1
    a = run(lambda z: (lambda t: (t, [t]))((w_a * nll_rows(z, targets)).sum() / C))

    # (b) NLL + KL(p || q1) + KL(q2 || p)
    w_b = torch.rand(B, T, generator=g)
    pos1 = torch.tensor([[0, 2], [2, 5], [1, 0]])
    pos2 = torch.tensor([[1, 4], [0, 6], [2, 1], [0, 2]])
    ref1_logits = 2 * torch.randn(len(pos1), V, generator=g)
    ref2_logprobs = F.log_softmax(2 * torch.randn(len(pos2), V, generator=g), dim=-1)

    def kl_sum(z):
        logp = F.log_softmax(z, dim=-1)
        nll = (w_b * nll_rows(z, targets)).sum() / 1.0
        cur1 = logp[pos1[:, 0], pos1[:, 1]]
        kl1 = KL1 * F.kl_div(F.log_softmax(ref1_logits, dim=-1), cur1, log_target=True, reduction="batchmean")
        cur2 = logp[pos2[:, 0], pos2[:, 1]]
        kl2 = KL2 * F.kl_div(cur2, ref2_logprobs, log_target=True, reduction="batchmean")
        return nll + kl1 + kl2, [nll, kl1, kl2]

    b = run(kl_sum)

    path = os.path.join(DIR, "objectives.h5")
    with h5py.File(path, "w", libver=("v110", "latest")) as f:  # checksummed layout, as the library reads
        fixed = lambda t: np.array(t.encode(), dtype=h5py.string_dtype("utf-8", len(t.encode())))
        f.attrs["format"] = fixed("behemoth.parity")
        f.attrs["format_version"] = 1
        f.attrs["model"] = fixed("parity_parallel.h5")
        f.attrs["made_by"] = fixed(f"torch {torch.__version__}, transformers GPTNeoXForCausalLM (eager attention), float32")
        for name, (loss, terms, grads), w in [("weighted_nll", a, w_a), ("kl_sum", b, w_b)]:
            grp = f.create_group(name)
            grp["weights"] = w.numpy().astype(np.float32)
            grp["loss"] = np.array([loss], dtype=np.float32)
            grp["terms"] = np.array(terms, dtype=np.float32)
            for n, v in grads.items():
                grp[f"grads/{n}"] = v
            print(path, name, "loss", loss, "terms", terms)
        k = f["kl_sum"]
        k["kl_weights"] = np.array([KL1, KL2], dtype=np.float32)
        k["positions1"] = pos1.numpy().astype(np.int32)
        k["reference1_logits"] = ref1_logits.numpy().astype(np.float32)
        k["positions2"] = pos2.numpy().astype(np.int32)
        k["reference2_logprobs"] = ref2_logprobs.numpy().astype(np.float32)


if __name__ == "__main__":
    main()
