"""Loading a Hugging Face safetensors directory (one file or shards) into the engine's CausalLM."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from backends.engine.config import ModelConfig
from backends.engine.errors import ModelNotFoundError
from backends.engine.model import CausalLM
from backends.engine.rope import rope_inv_freq

_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def safetensors_files(model_dir: Path) -> list[Path]:
    """The weight files of a model directory: the shards its index names, else every *.safetensors."""
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        found = sorted(p.name for p in model_dir.iterdir())[:12] if model_dir.is_dir() else []
        raise ModelNotFoundError(
            f"no *.safetensors weights in {model_dir} (found: {found}); the engine loads Hugging Face safetensors "
            f"directories. Convert .bin/.pt checkpoints with transformers' save_pretrained(safe_serialization=True)"
        )
    return files


def read_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory, by its Hugging Face name, on the CPU in its stored dtype."""
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in safetensors_files(model_dir):
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in handle.keys():
                if not name.endswith(_IGNORED_SUFFIXES):
                    state[name] = handle.get_tensor(name)
    return state


def fuse_projections(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Hugging Face names -> the engine's: q/k/v become qkv_proj, gate/up become gate_up_proj, tied heads shared."""
    fused = dict(state)
    for i in range(config.num_hidden_layers):
        attn, mlp = f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        for kind in ("weight", "bias"):
            parts = [f"{attn}{p}_proj.{kind}" for p in ("q", "k", "v")]
            if all(p in fused for p in parts):
                fused[f"{attn}qkv_proj.{kind}"] = torch.cat([fused.pop(p) for p in parts], dim=0)
            parts = [f"{mlp}{p}_proj.{kind}" for p in ("gate", "up")]
            if all(p in fused for p in parts):
                fused[f"{mlp}gate_up_proj.{kind}"] = torch.cat([fused.pop(p) for p in parts], dim=0)
    if "lm_head.weight" not in fused and config.tie_word_embeddings:
        fused["lm_head.weight"] = fused["model.embed_tokens.weight"]
    return fused


def load_model(model_dir: str | Path, config: ModelConfig, *, device: torch.device, dtype: torch.dtype) -> CausalLM:
    """Build the decoder for config and fill it with the directory's weights, cast to dtype on device."""
    model_dir = Path(model_dir)
    state = fuse_projections(read_state_dict(model_dir), config)
    tied = config.tie_word_embeddings and state["lm_head.weight"] is state["model.embed_tokens.weight"]
    cast: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if tied and name == "lm_head.weight":
            continue
        cast[name] = tensor.to(device=device, dtype=dtype)
    if tied:
        cast["lm_head.weight"] = cast["model.embed_tokens.weight"]
    with torch.device("meta"):
        model = CausalLM(config, inv_freq=torch.empty(0))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(cast)), sorted(set(cast) - expected)
    if missing or unexpected:
        raise ModelNotFoundError(
            f"the weights in {model_dir} do not match its config.json ({config.architecture}): "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    model.load_state_dict(cast, assign=True, strict=True)
    model.inv_freq = rope_inv_freq(config).to(device)
    return model.eval()
