"""Converting a llama-architecture GGUF file into a Hugging Face model directory, once and atomically.

The directory holds `config.json` (LlamaForCausalLM), `generation_config.json`, `model.safetensors` (fp32, Hugging
Face names and layout), `tokenizer.json` and `tokenizer_config.json`, so both this engine and `transformers` load it.
llama.cpp's converter permutes the rows of q_proj and k_proj for its rotary layout,
w.reshape(n_head, 2, head_dim // 2, dim).swapaxes(1, 2); `unpermute_rows` undoes that so Hugging Face's
rotate_half rotary embedding applies. The output is written to a temporary sibling directory and renamed into
place, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from backends.engine.errors import UnsupportedArchitectureError
from backends.engine.gguf_tokenizer import build_tokenizer, tokenizer_config

log = logging.getLogger("tamer.engine")

SUPPORTED_GGUF_ARCHITECTURES = ("llama",)
_STALE_TMP_AGE_S = 3600.0  # leftovers of a crashed conversion older than this are removed

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def unpermute_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's q/k permutation. weight: (num_heads * head_dim, hidden_size); returns the same shape."""
    rows, cols = weight.shape
    head_dim = rows // num_heads
    w = weight.reshape(num_heads, head_dim // 2, 2, cols)  # the GGUF order: (head, pair, half, col)
    return np.ascontiguousarray(w.swapaxes(1, 2).reshape(rows, cols))  # Hugging Face order: (head, half, pair, col)


def hf_tensor_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    prefix, _, rest = gguf_name.partition(".")
    layer, _, suffix = rest.partition(".")
    if prefix == "blk" and layer.isdigit() and suffix in _LAYER_NAMES:
        return f"model.layers.{layer}.{_LAYER_NAMES[suffix]}"
    raise UnsupportedArchitectureError(
        f"GGUF tensor {gguf_name!r} has no Hugging Face Llama counterpart; this GGUF uses features the converter "
        f"does not support"
    )


def read_metadata(reader) -> dict[str, Any]:
    """GGUF key-value metadata as plain Python values."""
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _f32(value: float) -> float:
    """The shortest decimal of a float32 (9.99999974e-06 -> 1e-05), as the original config spelled it."""
    return float(str(np.float32(value)))


def hf_config(meta: dict[str, Any], has_output_weight: bool) -> dict[str, Any]:
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"GGUF architecture {arch!r} is not supported; supported GGUF architectures: "
            f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)} (or pass a Hugging Face safetensors directory)"
        )
    scaling = meta.get(f"{arch}.rope.scaling.type", "none")
    if scaling != "none":
        raise UnsupportedArchitectureError(f"GGUF rope scaling {scaling!r} is not supported; only 'none' is")
    hidden_size = int(meta[f"{arch}.embedding_length"])
    num_heads = int(meta[f"{arch}.attention.head_count"])
    head_dim = hidden_size // num_heads
    rope_dims = int(meta.get(f"{arch}.rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise UnsupportedArchitectureError(
            f"GGUF rotary dimension {rope_dims} differs from head_dim {head_dim}; partial rotary is not supported"
        )
    vocab_size = int(meta.get(f"{arch}.vocab_size", len(meta["tokenizer.ggml.tokens"])))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "intermediate_size": int(meta[f"{arch}.feed_forward_length"]),
        "num_attention_heads": num_heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", num_heads)),
        "num_hidden_layers": int(meta[f"{arch}.block_count"]),
        "head_dim": head_dim,
        "rms_norm_eps": _f32(meta[f"{arch}.attention.layer_norm_rms_epsilon"]),
        "rope_theta": _f32(meta.get(f"{arch}.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "max_position_embeddings": int(meta[f"{arch}.context_length"]),
        "vocab_size": vocab_size,
        "tie_word_embeddings": not has_output_weight,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
    }


def hf_tensors(reader, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every tensor dequantized to fp32, renamed, with q/k rows put back in Hugging Face order."""
    from gguf.quants import dequantize

    tensors: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        name = hf_tensor_name(tensor.name)
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if name.endswith("q_proj.weight"):
            array = unpermute_rows(array, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            array = unpermute_rows(array, config["num_key_value_heads"])
        tensors[name] = np.ascontiguousarray(array)
    return tensors


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_hf_dir(gguf_path: Path, out_dir: Path) -> None:
    """Write the Hugging Face files for gguf_path into the existing, empty out_dir."""
    import gguf
    from safetensors.numpy import save_file

    reader = gguf.GGUFReader(str(gguf_path))
    meta = read_metadata(reader)
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    config = hf_config(meta, has_output)
    build_tokenizer(meta).save(str(out_dir / "tokenizer.json"))
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config(meta, config["max_position_embeddings"]))
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "generation_config.json",
                {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]})
    save_file(hf_tensors(reader, config), str(out_dir / "model.safetensors"), metadata={"format": "pt"})


def convert_gguf(gguf_path: str | Path, target_dir: str | Path) -> Path:
    """Convert gguf_path into target_dir unless it is already there; safe against crashes and concurrent runs."""
    gguf_path, target_dir = Path(gguf_path), Path(target_dir)
    if (target_dir / "config.json").exists():
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_prefix = f".{target_dir.name}.tmp-"
    _remove_stale(target_dir.parent, tmp_prefix)
    tmp_dir = Path(tempfile.mkdtemp(prefix=tmp_prefix, dir=target_dir.parent))
    started = time.perf_counter()
    log.info("converting %s into %s (once)", gguf_path.name, target_dir)
    try:
        write_hf_dir(gguf_path, tmp_dir)
        try:
            os.rename(tmp_dir, target_dir)
        except OSError:
            if not (target_dir / "config.json").exists():
                raise
            shutil.rmtree(tmp_dir, ignore_errors=True)  # another process finished first; keep its copy
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    log.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)
    return target_dir


def _remove_stale(parent: Path, prefix: str) -> None:
    now = time.time()
    for leftover in parent.glob(f"{prefix}*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_TMP_AGE_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
