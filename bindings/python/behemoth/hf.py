"""Hugging Face interop: our models as Hugging Face folders and `transformers` objects, and back.

    from behemoth import hf
    hf.save_transformers("model.h5", "hf-model", dataset=ds)   # config.json + model.safetensors (+ tokenizer.json)
    m = hf.from_transformers("hf-model", dataset=ds)            # a folder, or a GPTNeoXForCausalLM / LlamaForCausalLM
    hf_model = hf.to_transformers("model.h5")                   # a GPTNeoXForCausalLM or LlamaForCausalLM (needs torch)

Both architectures of the engine map to their transformers class: `gpt_neox` to GPTNeoXForCausalLM,
`llama` to LlamaForCausalLM (same tensor names, grouped-query attention, tied or untied embeddings;
Llama rotates the whole head, so a llama model with rotary_pct < 1 has no transformers equivalent).

Folders in and out need only numpy, h5py and safetensors (`safetensors.numpy`): no torch. A folder
is what `save_pretrained` writes (config.json of a GPTNeoXForCausalLM, model.safetensors or its
shards), or what LitGPT's `litgpt convert_from_litgpt` writes (model.pth, read through torch) with
the model's config.json beside it (`litgpt_config` makes one from LitGPT's model_config.yaml).
Tensors keep their Hugging Face names; our untied output head is `embed_out.weight`, the name
Pythia checkpoints use (transformers 5 calls the parameter `lm_head.weight` and maps the two).

With a Behemoth dataset, `from_transformers` checks that the model was trained on its vocabulary:
the size (LitGPT pads the embedding to a multiple of 128; the engine accepts a vocabulary larger
than the dataset's: the extra rows are never a target) and, when the folder holds a tokenizer.json,
every token's id against the dataset's official tokenizer (`Dataset.export_reference`).
"""
from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
from typing import Any, Optional, Union

import numpy as np

from ._files import write_atomically

__all__ = ["to_transformers", "from_transformers", "save_transformers", "transformers_config", "config_json",
           "litgpt_config", "read_model_file", "read_folder", "official_tokenizer", "check_vocabulary"]

PathLike = Union[str, "os.PathLike[str]"]

_MISSING = ("behemoth.hf needs {what}: install it with `pip install {pkg}` "
            "(torch, transformers and safetensors are optional dependencies of the binding)")

#: Weight files of a folder, in the order they are looked for.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "model.pth")
#: Buffers some transformers versions keep in the state dict: not weights.
_BUFFERS = (".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")


def _require(module: str, pkg: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(_MISSING.format(what=module, pkg=pkg) + f" [{e}]") from e


# ---- our model files --------------------------------------------------------------------------------

def read_model_file(path: PathLike) -> tuple:
    """(config dict, {HF name: numpy array}) from one of our model files or checkpoints."""
    h5py = _require("h5py", "h5py")
    with h5py.File(os.fspath(path), "r") as f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != "behemoth.model":
            raise ValueError(f"{os.fspath(path)} is not a behemoth model file (format = {fmt!r})")
        spec = f.attrs["spec"]
        config = json.loads(spec.decode() if isinstance(spec, bytes) else spec)
        weights: dict = {}
        f["weights"].visititems(lambda name, obj: weights.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return config, weights


def _config_and_weights(model_or_path) -> tuple:
    """(config, weights) of a behemoth.Model (saved to a temporary file first) or a model file."""
    from .model import Model  # local: keep `import behemoth` free of this module's needs

    if isinstance(model_or_path, Model):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.h5")
            model_or_path.save(path)
            return read_model_file(path)
    return read_model_file(model_or_path)


# ---- configs ----------------------------------------------------------------------------------------

def is_llama(config: dict) -> bool:
    return config.get("architecture", "gpt_neox") == "llama"


def _shape_json(config: dict) -> dict:
    """The config.json keys both architectures write the same way."""
    return {"vocab_size": int(config["vocab_size"]), "hidden_size": int(config["hidden"]),
            "num_hidden_layers": int(config["layers"]), "num_attention_heads": int(config["heads"]),
            "intermediate_size": int(config["intermediate"]),
            "max_position_embeddings": int(config.get("max_positions", 2048)),
            "initializer_range": float(config.get("init_range", 0.02))}


_TAIL_JSON = {"bos_token_id": 0, "eos_token_id": 0, "use_cache": True, "torch_dtype": "float32"}


def llama_config_json(config: dict) -> dict:
    """The config.json of a LlamaForCausalLM equivalent to our llama model config dict."""
    pct = float(config.get("rotary_pct", 1.0))
    if abs(pct - 1.0) > 1e-12:
        raise ValueError(f"rotary_pct = {pct}: LlamaForCausalLM rotates the whole head, so a llama model with a rotary "
                         "fraction has no transformers equivalent (train it with rotary_pct 1 to export it)")
    base = float(config.get("rotary_base", 10000.0))
    heads = int(config["heads"])
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **_shape_json(config),
        "num_key_value_heads": int(config.get("kv_heads") or heads),
        "head_dim": int(config["hidden"]) // heads,
        "hidden_act": "silu",
        "rope_theta": base,
        "rope_parameters": {"rope_type": "default", "rope_theta": base},
        "rms_norm_eps": float(config.get("layer_norm_eps", 1e-6)),
        "tie_word_embeddings": bool(config.get("tie_embeddings", False)),
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        **_TAIL_JSON,
    }


def config_json(config: dict) -> dict:
    """The config.json of a GPTNeoXForCausalLM (or, for a llama model, a LlamaForCausalLM) equivalent
    to our model config dict. GPT-NeoX's rotary settings are written both as transformers 4 reads
    them (rotary_pct, rotary_emb_base) and as transformers 5 does (rope_parameters)."""
    if is_llama(config):
        return llama_config_json(config)
    pct = float(config.get("rotary_pct", 0.25))
    base = float(config.get("rotary_base", 10000.0))
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        **_shape_json(config),
        "hidden_act": "gelu",
        "rotary_pct": pct,
        "rotary_emb_base": base,
        "rope_parameters": {"rope_type": "default", "rope_theta": base, "partial_rotary_factor": pct},
        "layer_norm_eps": float(config.get("layer_norm_eps", 1e-5)),
        "use_parallel_residual": bool(config.get("parallel_residual", True)),
        "attention_bias": True,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        **_TAIL_JSON,
    }


def transformers_config(config: dict, **overrides: Any):
    """A GPTNeoXConfig (LlamaConfig for a llama model) equivalent to our model config dict."""
    transformers = _require("transformers", "transformers")
    if is_llama(config):
        kwargs = {k: v for k, v in config_json(config).items() if k not in ("architectures", "model_type", "torch_dtype", "rope_theta")}
        kwargs.update(overrides)
        return transformers.LlamaConfig(**kwargs)
    kwargs = {k: v for k, v in config_json(config).items()
              if k not in ("architectures", "model_type", "rope_parameters", "torch_dtype")}
    kwargs.update(overrides)
    hc = transformers.GPTNeoXConfig(**kwargs)
    # transformers 5 folds rotary_pct / rotary_emb_base into rope_parameters; check they arrived.
    rope = getattr(hc, "rope_parameters", None) or {}
    pct = rope.get("partial_rotary_factor", getattr(hc, "rotary_pct", None))
    base = rope.get("rope_theta", getattr(hc, "rotary_emb_base", None))
    if pct is not None and abs(float(pct) - kwargs["rotary_pct"]) > 1e-12 or \
            base is not None and abs(float(base) - kwargs["rotary_emb_base"]) > 1e-6:
        raise RuntimeError(f"transformers {transformers.__version__} did not take rotary_pct/rotary_emb_base "
                           f"(got {pct}, {base}): this version is not supported by behemoth.hf")
    return hc


def _one_value(source: str, what: str, candidates: dict, default: float) -> float:
    """The value several config keys give for one setting (they must agree), or the default."""
    given = {k: float(v) for k, v in candidates.items() if v is not None}
    if not given:
        return default
    first = next(iter(given.values()))
    if any(not math.isclose(v, first, rel_tol=1e-9, abs_tol=0.0) for v in given.values()):
        raise ValueError(f"{source}: the {what} is given differently by {given} (transformers 4 reads the plain "
                         "keys, transformers 5 rope_parameters): make them agree")
    return first


def _rotary_base(hc: dict, source: str) -> float:
    rope = hc.get("rope_parameters") or {}
    for scaling in (rope, hc.get("rope_scaling") or {}):
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind != "default":
            raise ValueError(f"{source}: scaled rotary embeddings ({kind!r}) are not supported; the engine computes plain RoPE")
    return _one_value(source, "rotary base", {"rotary_emb_base": hc.get("rotary_emb_base"), "rope_theta": hc.get("rope_theta"),
                                              "rope_parameters.rope_theta": rope.get("rope_theta")}, 10000.0)


def _missing(hc: dict, source: str) -> None:
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
               if hc.get(k) is None]
    if missing:
        raise ValueError(f"{source}: {', '.join(missing)} missing")


def our_llama_config(hc: dict, source: str) -> dict:
    """Our llama model config from a Llama config.json; what the engine does not compute is refused."""
    _missing(hc, source)
    if hc.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{source}: hidden_act is {hc['hidden_act']!r}; the engine's llama MLP is SwiGLU (\"silu\")")
    for key in ("attention_bias", "mlp_bias"):
        if hc.get(key, False):
            raise ValueError(f"{source}: {key} is true; the engine's llama has no biases")
    heads, hidden = int(hc["num_attention_heads"]), int(hc["hidden_size"])
    if hc.get("head_dim") not in (None, hidden // heads):
        raise ValueError(f"{source}: head_dim = {hc['head_dim']} is not hidden_size / num_attention_heads = {hidden // heads}")
    pct = float((hc.get("rope_parameters") or {}).get("partial_rotary_factor", hc.get("partial_rotary_factor") or 1.0))
    if abs(pct - 1.0) > 1e-12:
        raise ValueError(f"{source}: partial_rotary_factor = {pct}; LlamaForCausalLM rotates the whole head")
    return {
        "architecture": "llama", "layers": int(hc["num_hidden_layers"]), "hidden": hidden, "heads": heads,
        "kv_heads": int(hc.get("num_key_value_heads") or heads), "intermediate": int(hc["intermediate_size"]),
        "rotary_pct": 1.0, "rotary_base": _rotary_base(hc, source), "parallel_residual": False,
        "layer_norm_eps": float(hc.get("rms_norm_eps", 1e-6)), "vocab_size": int(hc["vocab_size"]),
        "max_positions": int(hc.get("max_position_embeddings", 2048)),
        "init_range": float(hc.get("initializer_range", 0.02)),
        "tie_embeddings": bool(hc.get("tie_word_embeddings", False)),
    }


def our_config(hc: dict, source: str = "config.json") -> dict:
    """Our model config from a GPT-NeoX or Llama config.json (or `model.config.to_dict()`),
    transformers 4 or 5 style; anything the engine does not compute is refused with the reason."""
    if hc.get("model_type") == "llama":
        return our_llama_config(hc, source)
    if hc.get("model_type", "gpt_neox") != "gpt_neox":
        raise ValueError(f"{source}: model_type is {hc.get('model_type')!r}; behemoth imports GPT-NeoX and Llama models only")
    if hc.get("tie_word_embeddings", False):
        raise ValueError(f"{source}: tie_word_embeddings is true; the engine's GPT-NeoX has untied input and output embeddings")
    if hc.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{source}: hidden_act is {hc['hidden_act']!r}; the engine computes exact (erf) GELU, \"gelu\"")
    rope = hc.get("rope_parameters") or {}
    base = _rotary_base(hc, source)
    pct = _one_value(source, "rotary fraction", {"rotary_pct": hc.get("rotary_pct"),
                                                 "partial_rotary_factor": hc.get("partial_rotary_factor"),
                                                 "rope_parameters.partial_rotary_factor": rope.get("partial_rotary_factor")}, 0.25)
    _missing(hc, source)
    return {
        "layers": int(hc["num_hidden_layers"]), "hidden": int(hc["hidden_size"]), "heads": int(hc["num_attention_heads"]),
        "intermediate": int(hc["intermediate_size"]), "rotary_pct": pct, "rotary_base": base,
        "parallel_residual": bool(hc.get("use_parallel_residual", True)),
        "layer_norm_eps": float(hc.get("layer_norm_eps", 1e-5)), "vocab_size": int(hc["vocab_size"]),
        "max_positions": int(hc.get("max_position_embeddings", 2048)),
        "init_range": float(hc.get("initializer_range", 0.02)),
    }


def litgpt_config(model_config_yaml: PathLike) -> dict:
    """The config.json (a dict) of the GPTNeoXForCausalLM that `litgpt convert_from_litgpt` makes
    from a LitGPT checkpoint with this model_config.yaml (needs PyYAML). Only Pythia-style configs
    convert: LayerNorm, GptNeoxMLP with exact GELU, biases, one query group per head."""
    yaml = _require("yaml", "pyyaml")
    path = os.fspath(model_config_yaml)
    with open(path) as f:
        c = yaml.safe_load(f)
    # LitGPT settings a GPT-NeoX computes one way only (absent keys take LitGPT's defaults, which are these)
    need = {"mlp_class_name": "GptNeoxMLP", "norm_class_name": "LayerNorm", "bias": True, "gelu_approximate": "none",
            "shared_attention_norm": False, "lm_head_bias": False, "norm_qk": False, "post_attention_norm": False,
            "post_mlp_norm": False, "norm_1": True, "norm_2": True, "scale_embeddings": False, "rope_condense_ratio": 1,
            "rope_interleave": False, "n_expert": 0, "attention_scores_scalar": None, "sliding_window_size": None,
            "attention_logit_softcapping": None, "final_logit_softcapping": None, "rope_adjustments": None,
            "latent_attention": None, "rope_local_base_freq": None}
    for key, want in need.items():
        if key in c and c[key] != want:
            raise ValueError(f"{path}: {key} = {c[key]!r}; a GPT-NeoX (Pythia-style) model has {want!r}")
    if (c.get("n_query_groups") or c["n_head"]) != c["n_head"]:
        raise ValueError(f"{path}: n_query_groups = {c['n_query_groups']} differs from n_head = {c['n_head']} (grouped-query "
                         "attention is not GPT-NeoX)")
    if c.get("head_size") not in (None, c["n_embd"] // c["n_head"]):
        raise ValueError(f"{path}: head_size = {c['head_size']} is not n_embd / n_head")
    multiple = int(c.get("padding_multiple") or 512)   # LitGPT pads the embedding rows to a multiple of this
    vocab = int(c.get("padded_vocab_size") or -(-int(c["vocab_size"]) // multiple) * multiple)
    ours = {"vocab_size": vocab, "hidden": c["n_embd"], "layers": c["n_layer"], "heads": c["n_head"],
            "intermediate": c.get("intermediate_size") or 4 * c["n_embd"], "rotary_pct": c.get("rotary_percentage", 0.25),
            "rotary_base": c.get("rope_base", 10000), "max_positions": c.get("block_size", 2048),
            "layer_norm_eps": c.get("norm_eps", 1e-5), "parallel_residual": c.get("parallel_residual", True)}
    return config_json(ours)


# ---- folders ----------------------------------------------------------------------------------------

def _float32(name: str, a: np.ndarray, source: str) -> np.ndarray:
    if a.dtype not in (np.float32, np.float16, np.float64):
        raise ValueError(f"{source}: {name} has dtype {a.dtype}; weights must be floating point")
    return np.ascontiguousarray(a, dtype=np.float32)


def _read_safetensors(path: str) -> dict:
    """{name: float32 array} of a .safetensors file. BF16 (which numpy lacks) is widened by hand:
    a bfloat16 is the top half of a float32."""
    _require("safetensors", "safetensors")
    from safetensors import safe_open

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n)) if 0 < n < 100_000_000 else None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file")
    out = {}
    with safe_open(path, framework="numpy") as f:
        for name in f.keys():
            entry = header[name]
            if entry["dtype"] == "BF16":
                start, end = entry["data_offsets"]
                raw = np.fromfile(path, dtype="<u2", count=(end - start) // 2, offset=8 + n + start)
                out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])
            else:
                out[name] = _float32(name, f.get_tensor(name), path)
    return out


def _read_torch(path: str) -> dict:
    torch = _require("torch", "torch")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return {k: v.detach().to("cpu").float().numpy() for k, v in sd.items() if hasattr(v, "detach")}


def read_folder(folder: PathLike) -> tuple:
    """(config.json as a dict, {name: float32 array}, tokenizer.json as a dict or None) of a Hugging
    Face folder: model.safetensors (or its shards; no torch needed), else pytorch_model.bin or
    LitGPT's model.pth (through torch)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder")
    present = [f for f in WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))]
    if not present:
        if os.path.isfile(os.path.join(folder, "lit_model.pth")):
            raise FileNotFoundError(f"{folder} is a LitGPT checkpoint (lit_model.pth, LitGPT's names): convert it first with "
                                    f"`litgpt convert_from_litgpt {folder} <hf-folder>` (docs/huggingface.md)")
        raise FileNotFoundError(f"{folder} holds none of {', '.join(WEIGHT_FILES)}: not a Hugging Face model folder")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{folder} has {present[0]} but no config.json: put the model's config.json beside it (LitGPT's "
            "convert_from_litgpt writes only model.pth; behemoth.hf.litgpt_config(model_config.yaml) makes the "
            "config.json of that checkpoint)")
    with open(config_path) as f:
        config = json.load(f)
    weights_file = os.path.join(folder, present[0])
    if weights_file.endswith(".index.json"):
        with open(weights_file) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files = [os.path.join(folder, s) for s in shards]
    else:
        files = [weights_file]
    tensors: dict = {}
    for path in files:
        tensors.update(_read_safetensors(path) if path.endswith(".safetensors") else _read_torch(path))
    tokenizer = None
    tok_path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(tok_path):
        with open(tok_path, encoding="utf-8") as f:
            tokenizer = json.load(f)
    return config, tensors, tokenizer


def _write_json(path: str, obj) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    write_atomically(path, write)


def save_transformers(model_or_path, folder: PathLike, *, dataset=None) -> str:
    """Writes a Hugging Face folder that `transformers.GPTNeoXForCausalLM.from_pretrained(folder)`
    loads with logits equal to ours: config.json and model.safetensors (float32, Hugging Face names,
    the head as `embed_out.weight`). With a dataset, also its official tokenizer.json and
    tokenizer_config.json (`AutoTokenizer.from_pretrained(folder)` then encodes its text to our
    token ids). Needs h5py and safetensors, not torch. Returns the folder."""
    safetensors_numpy = _require("safetensors.numpy", "safetensors")
    config, weights = _config_and_weights(model_or_path)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if dataset is not None:
        check_vocabulary(int(config["vocab_size"]), None, dataset, "the model")
        tokenizer, tokenizer_config = _official_files(dataset)
        _write_json(os.path.join(folder, "tokenizer.json"), tokenizer)
        _write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config)
    tensors = {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in weights.items()}
    write_atomically(os.path.join(folder, "model.safetensors"),
                      lambda tmp: safetensors_numpy.save_file(tensors, tmp, metadata={"format": "pt"}))
    _write_json(os.path.join(folder, "config.json"), config_json(config))
    return folder


# ---- vocabulary -------------------------------------------------------------------------------------

def _official_files(dataset) -> tuple:
    with tempfile.TemporaryDirectory() as d:
        dataset.export_reference(d)
        with open(os.path.join(d, "metadata", "tokenizer.json"), encoding="utf-8") as f:
            tokenizer = json.load(f)
        with open(os.path.join(d, "metadata", "tokenizer_config.json"), encoding="utf-8") as f:
            tokenizer_config = json.load(f)
    return tokenizer, tokenizer_config


def official_tokenizer(dataset) -> dict:
    """The dataset's official tokenizer.json (as `Dataset.export_reference` writes it), as a dict."""
    return _official_files(dataset)[0]


def _tokens_by_id(tokenizer: dict, source: str) -> dict:
    """id -> token of a tokenizer.json: its model's vocab and its added tokens."""
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError(f"{source}: tokenizer.json has no model.vocab map (token -> id)")
    out = {int(i): t for t, i in vocab.items()}
    for added in tokenizer.get("added_tokens") or []:
        i, t = int(added["id"]), added["content"]
        if out.setdefault(i, t) != t:
            raise ValueError(f"{source}: tokenizer.json gives id {i} to both {out[i]!r} and the added token {t!r}")
    return out


def check_vocabulary(vocab_size: int, tokenizer: Optional[dict], dataset, source: str) -> None:
    """ValueError unless a model of `vocab_size` rows (and its tokenizer.json, if any) fits the
    dataset: at least its vocabulary size (more is padding, as LitGPT makes), and every token of the
    tokenizer at the id the dataset's official tokenizer gives it."""
    n = int(dataset.info["vocabulary"]["size"])
    if vocab_size < n:
        raise ValueError(f"{source} has a vocabulary of {vocab_size} tokens but the dataset uses {n}: "
                         "the model was trained on another dataset's vocabulary")
    if tokenizer is None:
        return
    theirs = _tokens_by_id(tokenizer, source)
    ours = _tokens_by_id(official_tokenizer(dataset), "the dataset's official tokenizer")
    for i in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(i), ours.get(i)
        if a != b:
            there = f"{a!r}" if a is not None else "no token"
            here = f"{b!r}" if b is not None else "no token"
            raise ValueError(f"{source}: tokenizer.json has {there} at id {i} but the dataset's official tokenizer has "
                             f"{here}: the model was trained on another dataset's vocabulary (compare with "
                             "Dataset.export_reference's metadata/tokenizer.json)")


# ---- into and out of transformers -------------------------------------------------------------------

def to_transformers(model_or_path, *, attn_implementation: str = "eager", torch_dtype=None):
    """A `transformers.GPTNeoXForCausalLM` (a `LlamaForCausalLM` for a llama model; eval mode,
    float32) holding the weights of one of our model files (or of a `behemoth.Model`, saved to a
    temporary file first)."""
    torch = _require("torch", "torch")
    transformers = _require("transformers", "transformers")
    config, weights = _config_and_weights(model_or_path)
    hc = transformers_config(config)
    try:
        hc._attn_implementation = attn_implementation
    except Exception:  # noqa: BLE001 - older/newer versions store it differently
        pass
    hf_model = (transformers.LlamaForCausalLM if is_llama(config) else transformers.GPTNeoXForCausalLM)(hc)
    params = dict(hf_model.named_parameters())   # a tied unembedding is listed once, as the embedding
    used = set()
    with torch.no_grad():
        for name, p in params.items():
            ours = name
            if ours not in weights and name in ("lm_head.weight", "embed_out.weight"):
                ours = "embed_out.weight" if name == "lm_head.weight" else "lm_head.weight"
            if ours not in weights:
                raise ValueError(f"the model file has no tensor for {name} (it has {len(weights)}: "
                                 f"{', '.join(sorted(weights)[:4])}, ...)")
            w = torch.from_numpy(weights[ours])
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"{ours} has shape {tuple(w.shape)} but transformers expects {tuple(p.shape)}")
            p.copy_(w)
            used.add(ours)
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"tensors of the model file that transformers' {type(hf_model).__name__} has no place for: {unused}")
    hf_model.eval()
    if torch_dtype is not None:
        hf_model = hf_model.to(torch_dtype)
    return hf_model


def from_transformers(model_or_dir, dataset=None) -> "Model":
    """A behemoth Model holding the weights of a GPT-NeoX: a Hugging Face folder (config.json and
    model.safetensors, its shards, pytorch_model.bin, or LitGPT's converted model.pth; safetensors
    need no torch) or a `transformers.GPTNeoXForCausalLM` object (Pythia, a model trained with
    LitGPT and converted, or one from `to_transformers`).

    With `dataset` (a behemoth.Dataset) the vocabulary is checked first (`check_vocabulary`: the size,
    and the folder's tokenizer.json if it has one) and the model is made for that dataset (edits and
    analyses then check they use its vocabulary). Every tensor is copied by its Hugging Face name and
    checked for shape and finiteness by the library; float16 and bfloat16 weights are widened exactly."""
    from .model import Model

    if isinstance(model_or_dir, (str, os.PathLike)):
        source = os.fspath(model_or_dir)
        hc, tensors, tokenizer = read_folder(source)
    else:
        _require("torch", "torch")
        source = f"the {type(model_or_dir).__name__}"
        hc = model_or_dir.config.to_dict()
        tensors = {k: v.detach().to("cpu").float().numpy() for k, v in model_or_dir.state_dict().items()}
        head = model_or_dir.get_output_embeddings() if hasattr(model_or_dir, "get_output_embeddings") else None
        if hc.get("model_type") == "llama" and hc.get("tie_word_embeddings") and head is not None:
            # what the object computes with, which its state dict may leave out when tied: checked to be the embedding
            tensors["lm_head.weight"] = head.weight.detach().to("cpu").float().numpy()
        tokenizer = None
    config = our_config(hc, f"{source} config")
    if dataset is not None:
        check_vocabulary(config["vocab_size"], tokenizer, dataset, source)
    model = Model.create(dataset, config)
    try:
        if is_llama(config):
            _set_llama_weights(model, tensors, source, tied=config["tie_embeddings"])
        else:
            _set_weights(model, tensors, source, attention_bias=hc.get("attention_bias", True))
    except BaseException:
        model.close()
        raise
    return model


def _set_weights(model, tensors: dict, source: str, attention_bias: bool) -> None:
    ours = model.tensors()
    seen = set()
    for name, value in tensors.items():
        key = "embed_out.weight" if name in ("lm_head.weight", "embed_out.weight") else name
        if key not in ours:
            if name.endswith(_BUFFERS):
                continue
            raise ValueError(f"{source}: the engine's GPT-NeoX has no tensor {name}")
        if key in seen:
            raise ValueError(f"{source}: the output head is there twice (lm_head.weight and embed_out.weight)")
        value = _float32(name, np.asarray(value), source)
        if value.shape != ours[key]:
            raise ValueError(f"{source}: {name} has shape {value.shape}; the config gives {ours[key]}")
        model.set_tensor(key, value)
        seen.add(key)
    missing = sorted(set(ours) - seen)
    if not attention_bias:   # the attention's biases are absent: zero is the same function
        for name in [m for m in missing if m.endswith((".attention.query_key_value.bias", ".attention.dense.bias"))]:
            model.set_tensor(name, np.zeros(ours[name], np.float32))
            missing.remove(name)
    if missing:
        raise ValueError(f"{source}: no values for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")


def _set_llama_weights(model, tensors: dict, source: str, tied: bool) -> None:
    """Every tensor by its (identical) name; a tied model's lm_head.weight, which state dicts repeat,
    must equal the embedding."""
    ours = model.tensors()
    seen = set()
    for name, value in tensors.items():
        value = _float32(name, np.asarray(value), source)
        if name == "lm_head.weight" and tied:
            emb = tensors.get("model.embed_tokens.weight")
            if emb is None or not np.array_equal(value, _float32(name, np.asarray(emb), source)):
                raise ValueError(f"{source}: tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight")
            continue
        if name not in ours:
            if name.endswith(_BUFFERS):
                continue
            raise ValueError(f"{source}: the engine's llama has no tensor {name}")
        if value.shape != ours[name]:
            raise ValueError(f"{source}: {name} has shape {value.shape}; the config gives {ours[name]}")
        model.set_tensor(name, value)
        seen.add(name)
    missing = sorted(set(ours) - seen)
    if missing:
        raise ValueError(f"{source}: no values for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
