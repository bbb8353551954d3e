"""A Llama-family decoder (Llama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP.

Hot ops go through `kernels.reference` only, so faster kernels can replace them in one place. Layer names mirror
Hugging Face's, except that q/k/v and gate/up projections are fused into `qkv_proj` and `gate_up_proj`.
"""

from __future__ import annotations

import torch
from torch import nn

from backends.engine.config import ModelConfig
from backends.engine.kv_cache import KVCache
from kernels import reference as ops


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim ** -0.5
        self.q_size = self.num_heads * self.head_dim
        self.kv_size = self.num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.q_size, config.hidden_size, bias=config.o_proj_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache) -> torch.Tensor:
        num_tokens = x.shape[0]
        qkv = self.qkv_proj(x)  # (num_tokens, q_size + 2 * kv_size)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(num_tokens, self.num_heads, self.head_dim)  # (num_tokens, num_heads, head_dim)
        k = k.view(num_tokens, self.num_kv_heads, self.head_dim)  # (num_tokens, num_kv_heads, head_dim)
        v = v.view(num_tokens, self.num_kv_heads, self.head_dim)  # (num_tokens, num_kv_heads, head_dim)
        q, k = ops.rotary_embedding(q, k, cos, sin)
        keys, values = cache.write(self.layer_idx, k, v)  # (num_cached + num_tokens, num_kv_heads, head_dim)
        out = _contiguous_attention(q, keys, values, self.scale)
        return self.o_proj(out.reshape(num_tokens, self.q_size))  # (num_tokens, hidden_size)


def _contiguous_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal GQA attention of the last q_len positions over one sequence's contiguous cache."""
    q_len, context_len = q.shape[0], k.shape[0]
    q_pos = torch.arange(context_len - q_len, context_len, device=q.device)[:, None]
    mask = torch.arange(context_len, device=q.device)[None, :] <= q_pos  # (q_len, context_len)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.float().transpose(0, 1)[None], k.float().transpose(0, 1)[None], v.float().transpose(0, 1)[None],
        attn_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])  # (1, num_heads, q_len, head_dim)
    return out[0].transpose(0, 1).to(q.dtype)  # (q_len, num_heads, head_dim)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up = self.gate_up_proj(x)  # (num_tokens, 2 * intermediate_size)
        return self.down_proj(ops.silu_and_mul(gate_up))  # (num_tokens, hidden_size)


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache) -> torch.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, cache)  # (num_tokens, hidden_size)
        return h + self.mlp(self.post_attention_layernorm(h))  # (num_tokens, hidden_size)


class DecoderBody(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class CausalLM(nn.Module):
    """Decoder plus LM head. `forward` runs new tokens of one sequence against its KV cache."""

    def __init__(self, config: ModelConfig, inv_freq: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.model = DecoderBody(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.inv_freq = inv_freq  # (head_dim // 2,) fp32; a plain attribute so casting the model keeps it fp32

    def new_cache(self, max_num_tokens: int) -> KVCache:
        weight = self.model.embed_tokens.weight
        return KVCache(
            num_layers=self.config.num_hidden_layers, num_kv_heads=self.config.num_key_value_heads,
            head_dim=self.config.head_dim, max_num_tokens=max_num_tokens, dtype=weight.dtype, device=weight.device,
        )

    def forward(self, token_ids: torch.Tensor, cache: KVCache, *, all_logits: bool = False) -> torch.Tensor:
        """token_ids: (num_tokens,) at positions cache.num_tokens onward. Returns fp32 logits.

        Logits are (1, vocab_size) for the last token, or (num_tokens, vocab_size) with all_logits.
        """
        num_tokens = token_ids.shape[0]
        start = cache.num_tokens
        positions = torch.arange(start, start + num_tokens, device=token_ids.device)  # (num_tokens,)
        h = self.model.embed_tokens(token_ids)  # (num_tokens, hidden_size)
        cos, sin = ops.rope_cos_sin(positions, self.inv_freq, h.dtype)  # (num_tokens, head_dim // 2) each
        cache.reserve(num_tokens)
        for layer in self.model.layers:
            h = layer(h, cos, sin, cache)  # (num_tokens, hidden_size)
        cache.commit(num_tokens)
        if not all_logits:
            h = h[-1:]  # (1, hidden_size)
        return self.lm_head(self.model.norm(h)).float()  # (num_tokens or 1, vocab_size)
