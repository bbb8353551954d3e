"""Tiny random-weight transformers models saved as Hugging Face directories, sharing the bundled tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

TINY_VOCAB_SIZE = 49152  # the bundled tokenizer's, so tiny models can share it


def save_tiny_model(kind: str, out_dir: Path, tokenizer_dir: Path, **overrides) -> Path:
    """A 2-layer `kind` ("llama", "qwen2", "mistral") with random weights everywhere, biases and norms included,
    so every parameter matters; `overrides` change its config."""
    import torch
    import transformers

    config_classes = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
                      "mistral": transformers.MistralConfig}
    model_classes = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
                     "mistral": transformers.MistralForCausalLM}
    settings = dict(
        vocab_size=TINY_VOCAB_SIZE, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rope_theta=5000.0,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    model = model_classes[kind](config_classes[kind](**settings))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5 if param.dim() == 1 else 0.1)
    model.save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, out_dir / name)
    return out_dir
