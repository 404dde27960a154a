"""PEFT LoRA adapter folders in and out: adapter_config.json + adapter_model.safetensors.

    from behemoth import peft
    peft.save_peft(result.adapter, "lora-folder", base_model_name_or_path="hf-model")
    adapter = peft.load_peft("lora-folder")        # a behemoth.Adapter: apply(model, merge=...)

The folder is what `peft.PeftModel.save_pretrained` writes for a LoRA on a GPT-NeoX (or a Llama)
and what `peft.PeftModel.from_pretrained(hf.to_transformers(model), folder)` loads. Tensors are
`base_model.model.gpt_neox.layers.{i}.{module}.lora_A.weight` [r, in] and `...lora_B.weight`
[out, r] for the four block matrices (attention.query_key_value, attention.dense,
mlp.dense_h_to_4h, mlp.dense_4h_to_h); for a Llama `base_model.model.model.layers.{i}.{module}...`
for its seven (self_attn.q_proj, k_proj, v_proj, o_proj, mlp.gate_proj, up_proj, down_proj). PEFT scales B·A by lora_alpha / r (by lora_alpha / sqrt(r)
with use_rslora); our adapters by alpha / rank, so rsLoRA comes in with alpha = lora_alpha · sqrt(r).

Only plain LoRA on those matrices comes in: adapters on other modules (embeddings, the head,
modules_to_save), DoRA, trained biases, fan_in_fan_out, different ranks or alphas per module, and
initialisations that change the base weights (PiSSA, OLoRA, ...) are refused with the reason. For
those, merge the adapter in PEFT (`merge_and_unload()`, `save_pretrained`) and import the merged
model with `behemoth.hf.from_transformers`. Needs safetensors (`safetensors.numpy`), not torch.
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Optional, Union

import numpy as np

from .edit import Adapter
from ._files import write_atomically
from .hf import _float32, _read_safetensors, _read_torch, _require, _write_json

__all__ = ["save_peft", "load_peft", "MODULES"]

PathLike = Union[str, "os.PathLike[str]"]

#: The block matrices our adapters change, as PEFT names the modules (module path inside a block).
MODULES = ("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
LLAMA_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
#: Per block prefix ("gpt_neox" or the llama's "model"): its matrices, and the modules that are not
#: ours to adapt (target_modules must not reach them), outside and inside a block.
_ARCH = {
    "gpt_neox": (MODULES, ("gpt_neox.embed_in", "embed_out", "lm_head", "gpt_neox.final_layer_norm", "gpt_neox.emb_dropout",
                           "gpt_neox.rotary_emb"),
                 ("input_layernorm", "post_attention_layernorm", "post_attention_dropout", "post_mlp_dropout",
                  "attention", "attention.rotary_emb", "mlp", "mlp.act")),
    "model": (LLAMA_MODULES, ("model.embed_tokens", "lm_head", "model.norm", "model.rotary_emb"),
              ("input_layernorm", "post_attention_layernorm", "self_attn", "mlp", "mlp.act_fn")),
}
_KEY = re.compile(r"base_model\.model\.(gpt_neox|model)\.layers\.(\d+)\.(" +
                  "|".join(re.escape(m) for m in MODULES + LLAMA_MODULES) + r")\.lora_([AB])\.weight")

# adapter_config.json keys that do not change what the adapter computes at inference.
_NEUTRAL = {"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
            "peft_version", "r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules",
            "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "use_rslora", "fan_in_fan_out",
            "bias", "init_lora_weights", "runtime_config", "megatron_core", "qalora_group_size", "ensure_weight_tying",
            "modules_to_save", "use_dora", "loftq_config", "eva_config", "corda_config", "lora_ga_config"}
# init_lora_weights values whose training changed the base weights themselves (the adapter is then
# relative to weights nobody else has, unless PEFT converted it when saving).
_BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")


def _refuse(folder: str, what: str) -> ValueError:
    return ValueError(f"{folder}: {what}. Only plain LoRA on the blocks' attention and MLP matrices comes in as a "
                      "behemoth adapter; merge other adapters in PEFT (merge_and_unload, save_pretrained) and import "
                      "the merged model with behemoth.hf.from_transformers")


# ---- out ----------------------------------------------------------------------------------------------

def save_peft(adapter: Adapter, folder: PathLike, base_model_name_or_path: Optional[str] = None) -> str:
    """Writes `adapter` as a PEFT LoRA folder (adapter_config.json, adapter_model.safetensors) that
    `peft.PeftModel.from_pretrained(hf.to_transformers(model), folder)` loads with logits equal to
    ours with the adapter applied. The targets are written as target_modules plus
    layers_to_transform (the adapted blocks, listed even when they are all of the model's) when they
    are every listed matrix in every listed block, else as a regular expression naming exactly the
    adapted modules. Returns the folder."""
    safetensors_numpy = _require("safetensors.numpy", "safetensors")
    if not isinstance(adapter, Adapter):
        raise TypeError(f"save_peft takes a behemoth.Adapter, not {type(adapter).__name__}")
    info = adapter.info
    # (block, module) of each target: {prefix}.layers.{block}.{module}.weight, prefix gpt_neox or (llama) model
    prefix = info["targets"][0]["tensor"].split(".")[0]
    targets = [(int(t["tensor"].split(".")[2]), ".".join(t["tensor"].split(".")[3:5])) for t in info["targets"]]
    blocks = sorted({b for b, _ in targets})
    modules = [m for m in _ARCH[prefix][0] if m in {mm for _, mm in targets}]
    if len(targets) == len(blocks) * len(modules):
        target_modules: Union[list, str] = [m.split(".")[-1] for m in modules]   # "dense" is attention.dense only
        layers_to_transform, layers_pattern = blocks, "layers"
    else:
        target_modules = prefix + r"\.layers\.(" + "|".join(f"{b}\\.{re.escape(m)}" for b, m in targets) + ")"
        layers_to_transform, layers_pattern = None, None
    alpha = float(info["alpha"])
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": int(info["rank"]),
        "lora_alpha": int(alpha) if alpha.is_integer() else alpha,
        "target_modules": target_modules,
        "layers_to_transform": layers_to_transform,
        "layers_pattern": layers_pattern,
        "rank_pattern": {},
        "alpha_pattern": {},
        "lora_dropout": 0.0,
        "fan_in_fan_out": False,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
        "revision": None,
    }
    tensors = {}
    for t in info["targets"]:
        a, b = adapter.factor(t["tensor"], "A"), adapter.factor(t["tensor"], "B")
        prefix = "base_model.model." + t["tensor"][: -len(".weight")]
        tensors[f"{prefix}.lora_A.weight"] = np.ascontiguousarray(a)
        tensors[f"{prefix}.lora_B.weight"] = np.ascontiguousarray(b)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    write_atomically(os.path.join(folder, "adapter_model.safetensors"),
                      lambda tmp: safetensors_numpy.save_file(tensors, tmp, metadata={"format": "pt"}))
    _write_json(os.path.join(folder, "adapter_config.json"), config)
    return folder


# ---- in -----------------------------------------------------------------------------------------------

def _targeted(config: dict, name: str) -> bool:
    """Whether PEFT puts a LoRA layer on module `name` (peft.tuners.tuners_utils.check_target_module_exists)."""
    exclude = config.get("exclude_modules")
    if exclude:
        if isinstance(exclude, str):
            if re.fullmatch(exclude, name):
                return False
        elif name in exclude or any(name.endswith("." + e) for e in exclude):
            return False
    target = config.get("target_modules")
    if target is None:
        return False
    if isinstance(target, str):
        if target.lower() == "all-linear":   # every nn.Linear but the output head: the blocks' matrices
            return name.endswith(MODULES + LLAMA_MODULES)
        return re.fullmatch(target, name) is not None
    if name in target:
        return True
    if not any(name.endswith("." + t) for t in target):
        return False
    layers = config.get("layers_to_transform")
    if layers is None or layers == []:
        return True
    patterns = config.get("layers_pattern") or [r"[^.]*"]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    for p in patterns:
        m = re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", name)
        if m:
            idx = int(m.group("idx"))
            return idx == layers if isinstance(layers, int) else idx in layers
    return False


def _pattern_value(patterns: dict, name: str, default):
    """The rank/alpha PEFT gives module `name` (peft.utils.other.get_pattern_key)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def _check_config(config: dict, folder: str) -> None:
    if config.get("peft_type") != "LORA":
        raise _refuse(folder, f"peft_type is {config.get('peft_type')!r}, not \"LORA\"")
    if config.get("use_dora"):
        raise _refuse(folder, "use_dora is true: a DoRA adapter rescales each weight column by a learned magnitude, "
                              "which is not a low-rank change B·A")
    if config.get("bias", "none") != "none":
        raise _refuse(folder, f"bias is {config['bias']!r}: the adapter trained biases too (only \"none\" comes in)")
    if config.get("fan_in_fan_out"):
        raise _refuse(folder, "fan_in_fan_out is true: that is for Conv1D layers (GPT-2); GPT-NeoX's are nn.Linear")
    if config.get("modules_to_save"):
        raise _refuse(folder, f"modules_to_save = {config['modules_to_save']}: the adapter replaces whole modules")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(_BASE_CHANGING_INITS):
        raise _refuse(folder, f"init_lora_weights is {init!r}: that initialisation changed the base weights, so the "
                              "adapter does not apply to the original model (save it from PEFT with "
                              "path_initial_model_for_weight_conversion to get a plain LoRA)")
    for key, value in config.items():
        if key not in _NEUTRAL and value not in (None, False, {}, [], "", 0):
            raise _refuse(folder, f"adapter_config.json sets {key} = {value!r}, a PEFT feature behemoth does not apply")


def load_peft(folder: PathLike) -> Adapter:
    """A behemoth.Adapter from a PEFT LoRA folder (adapter_config.json and adapter_model.safetensors,
    or adapter_model.bin through torch) on a GPT-NeoX. Refuses, naming what and why, anything
    that is not a plain LoRA on the blocks' attention and MLP matrices (see the module's doc)."""
    folder = os.fspath(folder)
    config_path = os.path.join(folder, "adapter_config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{folder} has no adapter_config.json: not a PEFT adapter folder")
    with open(config_path) as f:
        config = json.load(f)
    _check_config(config, folder)
    for path in ("adapter_model.safetensors", "adapter_model.bin"):
        if os.path.isfile(os.path.join(folder, path)):
            weights_path = os.path.join(folder, path)
            break
    else:
        raise FileNotFoundError(f"{folder} has adapter_config.json but neither adapter_model.safetensors nor adapter_model.bin")
    tensors = _read_safetensors(weights_path) if weights_path.endswith(".safetensors") else _read_torch(weights_path)

    factors: dict = {}   # module name -> {"A": ..., "B": ...}
    for key, value in tensors.items():
        m = _KEY.fullmatch(key)
        if m is None:
            module = re.sub(r"^base_model\.model\.", "", key).split(".lora_")[0]
            raise _refuse(folder, f"adapter_model holds {key}, for {module}" if ".lora_" in key else
                          f"adapter_model holds {key}, which is not a LoRA factor of a block's attention or MLP matrix")
        if m.group(3) not in _ARCH[m.group(1)][0]:
            raise _refuse(folder, f"adapter_model holds {key}: {m.group(3)} is not a module of the {m.group(1)} model")
        module = f"{m.group(1)}.layers.{m.group(2)}.{m.group(3)}"
        factors.setdefault(module, {})[m.group(4)] = _float32(key, value, weights_path)
    if not factors:
        raise _refuse(folder, "adapter_model holds no LoRA factors")
    prefixes = {n.split(".")[0] for n in factors}
    if len(prefixes) > 1:
        raise _refuse(folder, "adapter_model holds factors of both a GPT-NeoX and a Llama model")
    prefix = prefixes.pop()

    # target_modules must reach only our block matrices, and every module with factors
    blocks = range(max(int(n.split(".")[2]) for n in factors) + 1)
    _, outside, inside = _ARCH[prefix]
    others = list(outside) + [f"{prefix}.layers.{b}.{m}" for b in blocks for m in inside]
    reached = [n for n in others if _targeted(config, n)]
    if reached:
        raise _refuse(folder, f"target_modules {config.get('target_modules')!r} reaches {', '.join(reached[:3])}")
    rank = int(config.get("r", 8))
    alpha = float(config.get("lora_alpha", 8))
    ranks, config_ranks, alphas = set(), set(), set()
    for module, pair in sorted(factors.items()):
        if set(pair) != {"A", "B"}:
            raise ValueError(f"{folder}: adapter_model has lora_{''.join(pair)} but not both factors for {module}")
        if not _targeted(config, module):
            raise ValueError(f"{folder}: adapter_model has factors for {module}, which adapter_config.json's "
                             f"target_modules {config.get('target_modules')!r} does not reach: the two files disagree")
        a, b = pair["A"], pair["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(f"{folder}: {module} has lora_A {a.shape} and lora_B {b.shape}; expected [r, in] and [out, r]")
        ranks.add(a.shape[0])
        config_ranks.add(int(_pattern_value(config.get("rank_pattern"), module, rank)))
        alphas.add(float(_pattern_value(config.get("alpha_pattern"), module, alpha)))
    if len(ranks) > 1 or len(config_ranks) > 1 or len(alphas) > 1:
        raise _refuse(folder, f"the modules have different ranks {sorted(ranks | config_ranks)} or alphas {sorted(alphas)} "
                              "(rank_pattern / alpha_pattern); a behemoth adapter has one rank and one alpha")
    r, lora_alpha = ranks.pop(), alphas.pop()
    if r != config_ranks.pop():
        raise ValueError(f"{folder}: the factors have rank {r} but adapter_config.json gives another r")
    # PEFT: ΔW = scaling · B·A with scaling = lora_alpha / r, or lora_alpha / sqrt(r) (rsLoRA); ours: alpha / r.
    ours = lora_alpha * math.sqrt(r) if config.get("use_rslora") else lora_alpha
    return Adapter.create(r, ours, {f"{module}.weight": (pair["A"], pair["B"]) for module, pair in factors.items()})
