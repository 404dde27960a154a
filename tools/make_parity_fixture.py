#!/usr/bin/env python3
"""Writes the parity fixtures Tests/Fixtures/parity/parity_{parallel,sequential}.h5 with PyTorch and
Hugging Face transformers (GPTNeoXForCausalLM), and parity_llama{,_tied}.h5 (LlamaForCausalLM:
grouped-query attention with untied embeddings, and multi-head attention with tied ones). Run once;
the Swift tests only read the output.

Each file holds: attribute `config` (our ModelConfig JSON), /weights/<HF name> (embed_out.weight for
the untied head, which transformers 5 calls lm_head.weight), /input_ids [B,T] int32, /labels [B,T]
int32 (-100 = ignored, HF convention: the loss shifts them), /logits [B,T,V], /loss [1],
/grads/<name>, and for the parallel and llama files /adamw/step{1,2,3}/<name>: the parameters after 1..3
AdamW steps on the same batch (lr 1e-2 constant, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on
2-D tensors only, global-norm clipping at 0.05 so the clip is active), with attributes saying so.

    python3 tools/make_parity_fixture.py            # all four
    python3 tools/make_parity_fixture.py llama      # only the llama ones
"""
import json, os, sys
import numpy as np, torch, h5py
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "parity")
B, T, V = 3, 7, 50
LR, BETAS, EPS, WD, CLIP = 1e-2, (0.9, 0.95), 1e-8, 0.1, 0.05


def hf_name(n, model):
    """Our table's name: GPT-NeoX's unembedding is embed_out.weight (transformers 5 says lm_head.weight)."""
    return "embed_out.weight" if n == "lm_head.weight" and isinstance(model, GPTNeoXForCausalLM) else n


def neox_model(parallel, seed):
    cfg = dict(layers=2, hidden=32, heads=4, intermediate=64, rotary_pct=0.25, rotary_base=10000.0,
               parallel_residual=parallel, layer_norm_eps=1e-5, vocab_size=V, max_positions=64,
               init_range=0.1, seed=seed, preset="tiny")
    hc = GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, rotary_pct=0.25, rotary_emb_base=10000,
                       max_position_embeddings=64, initializer_range=0.1, layer_norm_eps=1e-5,
                       use_parallel_residual=parallel, tie_word_embeddings=False, hidden_act="gelu",
                       attention_dropout=0.0, hidden_dropout=0.0)
    hc._attn_implementation = "eager"
    return cfg, GPTNeoXForCausalLM(hc).float(), "transformers GPTNeoXForCausalLM (eager attention)"


def llama_model(tied, seed):
    kv = 4 if tied else 2
    cfg = dict(preset="llama-tiny", architecture="llama", layers=2, hidden=32, heads=4, kv_heads=kv,
               intermediate=48, rotary_pct=1.0, rotary_base=10000.0, parallel_residual=False,
               layer_norm_eps=1e-6, vocab_size=V, max_positions=64, init_range=0.1, seed=seed,
               tie_embeddings=tied)
    hc = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=kv, max_position_embeddings=64,
                     initializer_range=0.1, rms_norm_eps=1e-6, tie_word_embeddings=tied,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                     attention_bias=False, mlp_bias=False, hidden_act="silu", attention_dropout=0.0)
    hc._attn_implementation = "eager"
    return cfg, LlamaForCausalLM(hc).float(), "transformers LlamaForCausalLM (eager attention)"


def make(build, path, seed, adamw):
    torch.manual_seed(seed)
    cfg, model, made_by = build(seed)
    # Non-trivial biases and norm parameters so every gradient path is exercised.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    model.train()
    ids = torch.randint(0, V, (B, T))
    labels = ids.clone()
    labels[1, 5:] = -100  # sequence 1 is padded after 5 tokens (right padding)
    ids[1, 5:] = 0
    labels[2, 3] = -100   # one more masked target
    # named_parameters lists a tied unembedding once (as the embedding), as our table does
    weights = {hf_name(n, model): p.detach().clone() for n, p in model.named_parameters()}
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    grads = {hf_name(n, model): p.grad.detach().clone() for n, p in model.named_parameters()}
    with h5py.File(path, "w", libver=("v110", "latest")) as f:  # checksummed layout, as the library reads
        # Fixed-length UTF-8 strings: the library refuses variable-length ones (they live in HDF5's unchecked heap).
        fixed = lambda t: np.array(t.encode(), dtype=h5py.string_dtype("utf-8", len(t.encode())))
        f.attrs["format"] = fixed("behemoth.parity")
        f.attrs["format_version"] = 1
        f.attrs["config"] = fixed(json.dumps(cfg))
        f.attrs["made_by"] = fixed(f"torch {torch.__version__}, {made_by}")
        for n, w in weights.items():
            f[f"weights/{n}"] = w.numpy().astype(np.float32)
        for n, g in grads.items():
            f[f"grads/{n}"] = g.numpy().astype(np.float32)
        f["input_ids"] = ids.numpy().astype(np.int32)
        f["labels"] = labels.numpy().astype(np.int32)
        f["logits"] = out.logits.detach().numpy().astype(np.float32)
        f["loss"] = np.array([out.loss.item()], dtype=np.float32)
        if adamw:
            decay = [p for n, p in model.named_parameters() if p.dim() == 2]
            no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                                     {"params": no_decay, "weight_decay": 0.0}],
                                    lr=LR, betas=BETAS, eps=EPS, foreach=False)
            g = f.create_group("adamw")
            g.attrs["lr"] = LR; g.attrs["beta1"] = BETAS[0]; g.attrs["beta2"] = BETAS[1]
            g.attrs["eps"] = EPS; g.attrs["weight_decay"] = WD; g.attrs["max_grad_norm"] = CLIP
            norms = []
            for step in range(1, 4):
                if step > 1:
                    opt.zero_grad()
                    model(input_ids=ids, labels=labels).loss.backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
                opt.step()
                for n, p in model.named_parameters():
                    g[f"step{step}/{hf_name(n, model)}"] = p.detach().numpy().astype(np.float32)
            g["grad_norms"] = np.array(norms, dtype=np.float64)
    print(path, "loss", out.loss.item())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    which = sys.argv[1:] or ["neox", "llama"]
    if "neox" in which:
        make(lambda s: neox_model(True, s), os.path.join(OUT, "parity_parallel.h5"), 7, adamw=True)
        make(lambda s: neox_model(False, s), os.path.join(OUT, "parity_sequential.h5"), 11, adamw=False)
    if "llama" in which:
        make(lambda s: llama_model(False, s), os.path.join(OUT, "parity_llama.h5"), 13, adamw=True)
        make(lambda s: llama_model(True, s), os.path.join(OUT, "parity_llama_tied.h5"), 17, adamw=False)
