"""Plain-torch reference of every hot op: the CPU path and the test oracle for the Triton kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Root-mean-square norm over the last axis: y = w * (x / sqrt(mean(x^2) + eps)).

    The mean and the division are computed in fp32; the normalized value is cast back to x's dtype
    before the weight multiplies it (the order Llama and Qwen2 use).
    x: (num_tokens, hidden_size); weight: (hidden_size,). Returns x's shape and dtype.
    """
    x_fp32 = x.float()  # (num_tokens, hidden_size)
    variance = x_fp32.pow(2).mean(dim=-1, keepdim=True)  # (num_tokens, 1)
    normed = x_fp32 * torch.rsqrt(variance + eps)  # (num_tokens, hidden_size)
    return weight * normed.to(x.dtype)


def rope_cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype, attention_scaling: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for the given positions: angle[p, i] = p * inv_freq[i], repeated twice along the last axis.

    cos = cos(angle) * attention_scaling, sin = sin(angle) * attention_scaling, computed in fp32, cast to dtype.
    positions: (num_tokens,) int; inv_freq: (head_dim // 2,) fp32. Returns two (num_tokens, head_dim) tensors.
    """
    angles = positions.float()[:, None] * inv_freq.float()[None, :]  # (num_tokens, head_dim // 2)
    angles = torch.cat((angles, angles), dim=-1)  # (num_tokens, head_dim)
    cos = (angles.cos() * attention_scaling).to(dtype)  # (num_tokens, head_dim)
    sin = (angles.sin() * attention_scaling).to(dtype)  # (num_tokens, head_dim)
    return cos, sin


def rotary_embedding(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, NeoX / Hugging Face `rotate_half` layout.

    With x = [x1, x2] split in halves along head_dim: y = x * cos + [-x2, x1] * sin.
    x: (num_tokens, num_heads, head_dim); cos, sin: (num_tokens, head_dim). Returns x's shape.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (num_tokens, num_heads, head_dim // 2) each
    rotated = torch.cat((-x2, x1), dim=-1)  # (num_tokens, num_heads, head_dim)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """SwiGLU gate: with x = [gate, up] split in halves along the last axis, y = silu(gate) * up.

    silu(g) = g * sigmoid(g). x: (num_tokens, 2 * intermediate_size). Returns (num_tokens, intermediate_size).
    """
    half = x.shape[-1] // 2
    return F.silu(x[..., :half]) * x[..., half:]


def attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, scale: float, query_start_pos: int
) -> torch.Tensor:
    """Causal grouped-query attention of new query tokens over a sequence's whole KV cache.

    Query token i sits at position query_start_pos + i and attends to cached positions j <= that:
    out_i = sum_j softmax_j(scale * q_i . k_j) v_j. Query head h reads KV head h // (num_heads // num_kv_heads).
    The softmax runs in fp32; the result is cast back to the query's dtype.
    query: (num_query_tokens, num_heads, head_dim); key, value: (num_kv_tokens, num_kv_heads, head_dim), where
    num_kv_tokens = query_start_pos + num_query_tokens. Returns (num_query_tokens, num_heads, head_dim).
    """
    num_query_tokens, num_heads, head_dim = query.shape
    num_kv_tokens, num_kv_heads, _ = key.shape
    if num_kv_tokens != query_start_pos + num_query_tokens:
        raise ValueError(
            f"the KV cache holds {num_kv_tokens} tokens but query_start_pos + num_query_tokens is "
            f"{query_start_pos + num_query_tokens}; append this step's keys and values before attending"
        )
    group_size = num_heads // num_kv_heads
    q = query.float().view(num_query_tokens, num_kv_heads, group_size, head_dim).permute(1, 2, 0, 3)
    q = q.reshape(num_kv_heads, group_size * num_query_tokens, head_dim)  # rows ordered (group, query token)
    k = key.float().transpose(0, 1)  # (num_kv_heads, num_kv_tokens, head_dim)
    v = value.float().transpose(0, 1)  # (num_kv_heads, num_kv_tokens, head_dim)
    scores = torch.matmul(q, k.transpose(1, 2)) * scale  # (num_kv_heads, group_size * num_query_tokens, num_kv_tokens)
    if num_query_tokens > 1:
        query_pos = torch.arange(num_query_tokens, device=query.device)[:, None] + query_start_pos
        key_pos = torch.arange(num_kv_tokens, device=query.device)[None, :]
        future = (key_pos > query_pos).repeat(group_size, 1)  # (group_size * num_query_tokens, num_kv_tokens)
        scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # (num_kv_heads, group_size * num_query_tokens, num_kv_tokens)
    out = torch.matmul(probs, v)  # (num_kv_heads, group_size * num_query_tokens, head_dim)
    out = out.view(num_kv_heads, group_size, num_query_tokens, head_dim).permute(2, 0, 1, 3)
    return out.reshape(num_query_tokens, num_heads, head_dim).to(query.dtype)
