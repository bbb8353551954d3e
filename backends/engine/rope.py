"""Rotary inverse frequencies for a model config, with linear and llama3 long-context scaling."""

from __future__ import annotations

import math

import torch

from backends.engine.config import ModelConfig


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """inv_freq[i] = 1 / rope_theta^(2i / head_dim), then stretched per config.rope_scaling.

    linear: inv_freq / factor. llama3: wavelengths 2*pi/inv_freq longer than original_len / low_freq_factor are
    divided by factor, shorter than original_len / high_freq_factor kept, and the band between blended smoothly.
    Returns (head_dim // 2,) fp32 on the CPU.
    """
    head_dim = config.head_dim
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # (head_dim // 2,)
    inv_freq = 1.0 / (config.rope_theta ** exponents)  # (head_dim // 2,)
    scaling = config.rope_scaling
    if scaling.rope_type == "linear":
        return inv_freq / scaling.factor
    if scaling.rope_type == "llama3":
        old_len = scaling.original_max_position_embeddings
        low_freq_wavelen = old_len / scaling.low_freq_factor
        high_freq_wavelen = old_len / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv_freq  # (head_dim // 2,)
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
        smooth = (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        blended = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return torch.where(is_medium, blended, scaled)
    return inv_freq
