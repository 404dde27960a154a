"""Hugging Face interop: our model files as `transformers.GPTNeoXForCausalLM`.

    from behemoth import hf
    hf_model = hf.to_transformers("model.h5")          # or a behemoth.Model
    hf_model(input_ids=torch.tensor(tokens)).logits      # equals Model.logits(tokens) to ~1e-5

Reads the HDF5 file with h5py only (not through the library): the root attribute `spec` is the model
config JSON, and /weights/<Hugging Face name> hold the tensors as PyTorch stores them. Our untied
output head is `embed_out.weight`; transformers 5 names it `lm_head.weight` (4.x: `embed_out`):
both are handled. Needs torch and transformers (`pip install torch transformers`) and h5py.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Union

__all__ = ["to_transformers", "from_transformers", "transformers_config", "read_model_file"]

PathLike = Union[str, "os.PathLike[str]"]

_MISSING = ("behemoth.hf needs {what}: install it with `pip install {pkg}` "
            "(torch and transformers are optional dependencies of the binding)")


def _require(module: str, pkg: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(_MISSING.format(what=module, pkg=pkg) + f" [{e}]") from e


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


def transformers_config(config: dict, **overrides: Any):
    """A GPTNeoXConfig equivalent to our model config dict."""
    transformers = _require("transformers", "transformers")
    kwargs = dict(
        vocab_size=int(config["vocab_size"]),
        hidden_size=int(config["hidden"]),
        num_hidden_layers=int(config["layers"]),
        num_attention_heads=int(config["heads"]),
        intermediate_size=int(config["intermediate"]),
        rotary_pct=float(config.get("rotary_pct", 0.25)),
        rotary_emb_base=float(config.get("rotary_base", 10000.0)),
        max_position_embeddings=int(config.get("max_positions", 2048)),
        initializer_range=float(config.get("init_range", 0.02)),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-5)),
        use_parallel_residual=bool(config.get("parallel_residual", True)),
        tie_word_embeddings=False,
        hidden_act="gelu",
        attention_dropout=0.0,
        hidden_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
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


def to_transformers(model_or_path, *, attn_implementation: str = "eager", torch_dtype=None):
    """A `transformers.GPTNeoXForCausalLM` (eval mode, float32) holding the weights of one of our
    model files (or of a `behemoth.Model`, saved to a temporary file first)."""
    from .model import Model  # local: keep `import behemoth` free of this module's needs

    torch = _require("torch", "torch")
    transformers = _require("transformers", "transformers")
    if isinstance(model_or_path, Model):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.h5")
            model_or_path.save(path)
            config, weights = read_model_file(path)
    else:
        config, weights = read_model_file(model_or_path)
    hc = transformers_config(config)
    try:
        hc._attn_implementation = attn_implementation
    except Exception:  # noqa: BLE001 - older/newer versions store it differently
        pass
    hf_model = transformers.GPTNeoXForCausalLM(hc)
    params = dict(hf_model.named_parameters())
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
        raise ValueError(f"tensors of the model file that transformers' GPTNeoX has no place for: {unused}")
    hf_model.eval()
    if torch_dtype is not None:
        hf_model = hf_model.to(torch_dtype)
    return hf_model


def from_transformers(hf_model, *, vocab_size: Any = None) -> "Model":
    """A behemoth Model holding the weights of a `transformers.GPTNeoXForCausalLM` (any GPT-NeoX:
    Pythia, a model trained with LitGPT and converted, or one from `to_transformers`). The config is
    read from hf_model.config (GELU, untied embeddings, no dropout at inference); every tensor is
    copied by its Hugging Face name and checked for shape and finiteness by the library."""
    from .model import Model

    _require("torch", "torch")
    hc = hf_model.config
    if getattr(hc, "model_type", "gpt_neox") != "gpt_neox":
        raise ValueError(f"from_transformers takes a GPT-NeoX model, not {hc.model_type!r}")
    if getattr(hc, "tie_word_embeddings", False):
        raise ValueError("from_transformers: tied input and output embeddings are not supported (GPT-NeoX unties them)")
    if getattr(hc, "hidden_act", "gelu") != "gelu":
        raise ValueError(f"from_transformers: activation {hc.hidden_act!r}; the engine computes exact GELU")
    rope = getattr(hc, "rope_parameters", None) or {}
    config = {
        "layers": int(hc.num_hidden_layers), "hidden": int(hc.hidden_size), "heads": int(hc.num_attention_heads),
        "intermediate": int(hc.intermediate_size),
        "rotary_pct": float(rope.get("partial_rotary_factor", getattr(hc, "rotary_pct", 0.25))),
        "rotary_base": float(rope.get("rope_theta", getattr(hc, "rotary_emb_base", 10000.0))),
        "parallel_residual": bool(hc.use_parallel_residual), "layer_norm_eps": float(hc.layer_norm_eps),
        "vocab_size": int(vocab_size or hc.vocab_size), "max_positions": int(hc.max_position_embeddings),
        "init_range": float(getattr(hc, "initializer_range", 0.02)),
    }
    model = Model.create(config)
    ours = model.tensors()
    seen = set()
    for name, p in hf_model.state_dict().items():
        key = "embed_out.weight" if name in ("lm_head.weight", "embed_out.weight") else name
        if key not in ours:
            if name.endswith((".attention.bias", ".attention.masked_bias", "rotary_emb.inv_freq")):
                continue   # buffers some versions keep in the state dict
            model.close()
            raise ValueError(f"from_transformers: the engine's GPT-NeoX has no tensor {name}")
        model.set_tensor(key, p.detach().to("cpu").float().numpy())
        seen.add(key)
    missing = sorted(set(ours) - seen)
    if missing:
        model.close()
        raise ValueError(f"from_transformers: the transformers model gave no values for {missing[:4]}")
    return model
