"""A Llama-family decoder (Llama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP.

One forward pass runs a packed batch of tokens from many sequences against the paged KV cache.
Hot ops go through `kernels.ops` only (the plain-torch reference on CPU, Triton kernels on CUDA).
Layer names mirror Hugging Face's, except that q/k/v and gate/up projections are fused into `qkv_proj`
and `gate_up_proj`.
"""

from __future__ import annotations

import torch
from torch import nn

from backends.engine.attention_metadata import AttentionMetadata
from backends.engine.config import ModelConfig
from backends.engine.kv_cache import PagedKVCache
from kernels import ops


class Linear(nn.Linear):
    """nn.Linear through `kernels.ops.linear`; after pack(), on CPU, with its weight prepacked for oneDNN."""

    packed: torch.Tensor | None = None

    def pack(self, batch_size_hint: int) -> None:
        """Prepack the weight where the kernel backend uses it (CPU); elsewhere a no-op."""
        self.packed = ops.pack_linear_weight(self.weight, batch_size_hint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.linear(x, self.weight, self.bias, self.packed)


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """rms_norm(x), or with a residual: (rms_norm(x + residual), x + residual)."""
        if residual is None:
            return ops.rms_norm(x, self.weight, self.eps)
        return ops.fused_add_rms_norm(x, residual, self.weight, self.eps)


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
        self.qkv_proj = Linear(config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.qkv_bias)
        self.o_proj = Linear(self.q_size, config.hidden_size, bias=config.o_proj_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, meta: AttentionMetadata,
                cache: PagedKVCache) -> torch.Tensor:
        num_tokens = x.shape[0]
        qkv = self.qkv_proj(x)  # (num_tokens, q_size + 2 * kv_size)
        heads = qkv.view(num_tokens, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        q = heads[:, :self.num_heads]  # (num_tokens, num_heads, head_dim)
        k = heads[:, self.num_heads:self.num_heads + self.num_kv_heads]  # (num_tokens, num_kv_heads, head_dim)
        v = heads[:, self.num_heads + self.num_kv_heads:]  # (num_tokens, num_kv_heads, head_dim)
        q, k = ops.rotary_embedding(q, k, cos, sin, is_neox=True)
        key_cache, value_cache = cache.layer(self.layer_idx)
        ops.store_kv_cache(k, v, key_cache, value_cache, meta.slot_mapping)
        num_decode = meta.num_decode_tokens
        parts = []
        if num_decode:
            parts.append(ops.paged_decode_attention(q[:num_decode], key_cache, value_cache,
                                                    meta.decode_block_tables, meta.decode_context_lens,
                                                    self.scale))  # (num_decode, num_heads, head_dim)
        if num_decode < num_tokens:
            parts.append(ops.paged_prefill_attention(q[num_decode:], key_cache, value_cache,
                                                     meta.prefill_block_tables, meta.prefill_query_start_loc,
                                                     meta.prefill_context_lens, self.scale))
        out = parts[0] if len(parts) == 1 else torch.cat(parts)  # (num_tokens, num_heads, head_dim)
        return self.o_proj(out.reshape(num_tokens, self.q_size))  # (num_tokens, hidden_size)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_up_proj = Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

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

    def forward(self, h: torch.Tensor, residual: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                meta: AttentionMetadata, cache: PagedKVCache) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, residual) -> (mlp output, residual stream before it); the sum of the two is the layer's output."""
        if residual is None:
            residual, h = h, self.input_layernorm(h)
        else:
            h, residual = self.input_layernorm(h, residual)
        h = self.self_attn(h, cos, sin, meta, cache)  # (num_tokens, hidden_size)
        h, residual = self.post_attention_layernorm(h, residual)
        return self.mlp(h), residual


class DecoderBody(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class CausalLM(nn.Module):
    """Decoder plus LM head over a packed batch of tokens and the paged KV cache."""

    def __init__(self, config: ModelConfig, inv_freq: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.model = DecoderBody(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.inv_freq = inv_freq  # (head_dim // 2,) fp32; a plain attribute so casting the model keeps it fp32

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata,
                cache: PagedKVCache) -> torch.Tensor:
        """input_ids, positions: (num_tokens,). Returns the final hidden states (num_tokens, hidden_size)."""
        h = self.model.embed_tokens(input_ids)  # (num_tokens, hidden_size)
        cos, sin = ops.rope_cos_sin(positions, self.inv_freq, h.dtype)  # (num_tokens, head_dim // 2) each
        residual = None
        for layer in self.model.layers:
            h, residual = layer(h, residual, cos, sin, meta, cache)
        h, _ = self.model.norm(h, residual)
        return h

    def pack_linears(self, batch_size_hint: int) -> None:
        """Prepack every projection's weight for the CPU kernels (see kernels/cpu/packed_linear.py)."""
        for module in self.modules():
            if isinstance(module, Linear):
                module.pack(batch_size_hint)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (num_rows, hidden_size) -> fp32 logits (num_rows, vocab_size)."""
        return self.lm_head(hidden).float()
