#!/usr/bin/env python3
"""PyTorch reference for bh-bench: transformers GPTNeoXForCausalLM training steps (forward, backward,
global-norm clip, AdamW) on random tokens, same shape as bh-bench's defaults. Prints tokens/s.
With --forward: forward passes only, under torch.inference_mode (bh-bench --forward's reference).

    python3 bench/torch_train_bench.py [--preset pythia-31m-shape] [--vocab 5000] [--batch 128] [--seq 16] [--threads 2] [--forward]
"""
import argparse, time
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

PRESETS = {"tiny": (2, 64, 4, 256), "pythia-14m-shape": (6, 128, 4, 512), "pythia-31m-shape": (6, 256, 8, 1024)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="pythia-31m-shape")
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--forward", action="store_true", help="forward passes only, under torch.inference_mode")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers, hidden, heads, inter = PRESETS[a.preset]
    cfg = GPTNeoXConfig(vocab_size=a.vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, rotary_pct=0.25, rotary_emb_base=10000, max_position_embeddings=2048,
                        use_parallel_residual=True, tie_word_embeddings=False, hidden_act="gelu",
                        attention_dropout=0.0, hidden_dropout=0.0)
    model = GPTNeoXForCausalLM(cfg).float().train()
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    if a.forward:
        model.eval()

        def step():
            with torch.inference_mode():
                return float(model(input_ids=ids).logits[0, 0, 0])
    else:
        step = train_step

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    n = a.batch * a.seq
    print(f"torch {torch.__version__}, attention {model.config._attn_implementation}, threads {torch.get_num_threads()}")
    print(f"  step time: median {med*1000:.1f} ms, best {times[0]*1000:.1f} ms over {a.steps} steps (loss {loss:.4f})")
    kind = "forward_" if a.forward else ""
    print(f"torch_{kind}tokens_per_s {n / med:.0f}")
    print(f"torch_{kind}best_step_tokens_per_s {n / times[0]:.0f}")


if __name__ == "__main__":
    main()
