#!/usr/bin/env python3
"""Writes Tests/Fixtures/hf/: a Hugging Face folder and two PEFT LoRA folders made by transformers
and peft themselves, with the logits they compute, so bindings/python/tests/test_hf_files.py checks
behemoth.hf.from_transformers and behemoth.peft.load_peft against them without torch (CI installs
neither torch, transformers nor peft).

    model/         save_pretrained of a GPTNeoXForCausalLM of the tiny preset's shape and vocabulary
                   (config.json, model.safetensors in float16 to keep the fixture small: the
                   float32 model behind every logit holds exactly those float16 values) and the
                   tiny dataset's official tokenizer.json / tokenizer_config.json
    peft-lora/     get_peft_model(r=4, lora_alpha=8, target_modules=[query_key_value, dense_4h_to_h],
                   init_lora_weights=False: A and B random, not a no-op) + save_pretrained
    peft-rslora/   r=4, lora_alpha=6, use_rslora, target_modules=[dense, dense_h_to_4h],
                   layers_to_transform=[1] (scale lora_alpha / sqrt(r))
    llama/         save_pretrained of a LlamaForCausalLM of the llama-tiny preset's shape (grouped-query
                   attention, 2 key/value heads; tied embeddings, so the file has no lm_head), float16
    peft-llama/    get_peft_model(r=4, lora_alpha=8, target_modules=[k_proj, o_proj, up_proj]) on it
    tokens.npy     int64 [2, 8]: the first 8 tokens of two tiny training sentences
    logits_base.npy, logits_peft_lora.npy, logits_peft_rslora.npy, logits_llama.npy,
    logits_peft_llama.npy   float32 [2, 8, vocab]: transformers' (and PeftModel's) logits for those tokens, computed in float64 from the float32
                   weights (eager attention) and stored as float32

Needs torch, transformers, peft, safetensors and the behemoth library (for the tiny dataset's
tokenizer); deterministic for a given torch version (torch.manual_seed).

    PYTHONPATH=bindings/python python3 tools/make_hf_fixture.py          # everything
    PYTHONPATH=bindings/python python3 tools/make_hf_fixture.py llama    # only llama/, peft-llama/ and their logits
"""
import copy
import os
import shutil
import sys
import tempfile

import numpy as np
import peft
import torch
import transformers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import behemoth  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "Fixtures", "hf")


def logits(model, tokens):
    """The model's logits computed in float64 from its float32 weights (exact up to float64 rounding,
    so the tests measure our float32 error alone), stored as float32."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(input_ids=torch.from_numpy(tokens)).logits.float().numpy()


def save(model, name):
    model.save_pretrained(os.path.join(OUT, name))
    for extra in ("generation_config.json", "README.md"):
        path = os.path.join(OUT, name, extra)
        if os.path.exists(path):
            os.unlink(path)


def llama(ds, tokens):
    """The llama folder and a PEFT adapter on it (float16-exact weights, as for the base model)."""
    shape = behemoth.Model.create(dataset=ds, preset="llama-tiny").config
    torch.manual_seed(21)
    hc = transformers.LlamaConfig(
        vocab_size=shape["vocab_size"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"], intermediate_size=shape["intermediate"],
        max_position_embeddings=shape["max_positions"], initializer_range=0.1, rms_norm_eps=shape["layer_norm_eps"],
        tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=0, eos_token_id=0)
    hc._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(hc).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p + 0.1 * torch.randn_like(p) if p.dim() == 1 else p).half().float())
    np.save(os.path.join(OUT, "logits_llama.npy"), logits(model, tokens))
    save(model.half(), "llama")
    model.float()
    torch.manual_seed(102)
    config = peft.LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, r=4, lora_alpha=8,
                             target_modules=["k_proj", "o_proj", "up_proj"])
    save(peft.get_peft_model(model, config).eval(), "peft-llama")
    # the logits of the folders as transformers and peft load them (the live PeftModel on the tied
    # llama computed others, 3e-4 away, than what it saved and loads back)
    base = transformers.LlamaForCausalLM.from_pretrained(os.path.join(OUT, "llama"), torch_dtype=torch.float32).eval()
    pm = peft.PeftModel.from_pretrained(base, os.path.join(OUT, "peft-llama")).eval()
    np.save(os.path.join(OUT, "logits_peft_llama.npy"), logits(pm, tokens))


def main():
    if sys.argv[1:] == ["llama"]:
        ds = behemoth.Dataset.generate(preset="tiny")
        llama(ds, np.load(os.path.join(OUT, "tokens.npy")))
        return
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    ds = behemoth.Dataset.generate(preset="tiny")
    shape = behemoth.Model.create(dataset=ds, preset="tiny").config
    tokens = np.stack([ds.sequences()[i][:8] for i in (0, 5)]).astype(np.int64)
    np.save(os.path.join(OUT, "tokens.npy"), tokens)

    # The base model: transformers' own initialisation (a wider one, so that logits are far from uniform),
    # rounded to float16 and back, so the float16 file holds exactly the weights behind the logits.
    torch.manual_seed(12)
    hc = transformers.GPTNeoXConfig(
        vocab_size=shape["vocab_size"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], intermediate_size=shape["intermediate"], rotary_pct=shape["rotary_pct"],
        max_position_embeddings=shape["max_positions"], initializer_range=0.1, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0)
    hc._attn_implementation = "eager"
    model = transformers.GPTNeoXForCausalLM(hc).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    np.save(os.path.join(OUT, "logits_base.npy"), logits(model, tokens))
    model.half().save_pretrained(os.path.join(OUT, "model"))
    model.float()
    for extra in ("generation_config.json",):
        path = os.path.join(OUT, "model", extra)
        if os.path.exists(path):
            os.unlink(path)
    with tempfile.TemporaryDirectory() as d:
        ds.export_reference(d)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(d, "metadata", name), os.path.join(OUT, "model", name))

    adapters = {
        "peft-lora": dict(r=4, lora_alpha=8, target_modules=["query_key_value", "dense_4h_to_h"]),
        "peft-rslora": dict(r=4, lora_alpha=6, use_rslora=True, target_modules=["dense", "dense_h_to_4h"],
                            layers_to_transform=[1]),
    }
    for i, (name, kwargs) in enumerate(adapters.items()):
        torch.manual_seed(100 + i)
        config = peft.LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kwargs)
        pm = peft.get_peft_model(model, config).eval()
        np.save(os.path.join(OUT, f"logits_{name.replace('-', '_')}.npy"), logits(pm, tokens))
        pm.save_pretrained(os.path.join(OUT, name))
        readme = os.path.join(OUT, name, "README.md")
        if os.path.exists(readme):
            os.unlink(readme)
        model = pm.unload()   # the base model back, without LoRA layers
    llama(ds, tokens)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Made by tools/make_hf_fixture.py (see its docstring) with torch %s, transformers %s, peft %s.\n"
                % (torch.__version__, transformers.__version__, peft.__version__))
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
