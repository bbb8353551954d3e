"""Paged decode attention on CPU, read in place from the paged cache (paged_decode_attention.cpp).

Same signature and semantics as `kernels.reference.paged_decode_attention`: float32 or bfloat16 tensors, the
cache as (num_blocks, block_size, num_kv_heads, head_dim) views of any order whose head_dim axis is contiguous;
the reference for other inputs.
"""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def paged_decode_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """query: (num_seqs, num_heads, head_dim); block_tables: (num_seqs, max_blocks) int; context_lens: (num_seqs,)
    int. Returns (num_seqs, num_heads, head_dim) in query's dtype."""
    if not (is_cpu_kernel_dtype(query) and is_cpu_kernel_dtype(key_cache, value_cache)) or key_cache.stride(-1) != 1 \
            or value_cache.stride(-1) != 1:
        return reference.paged_decode_attention(query, key_cache, value_cache, block_tables, context_lens, scale)
    query = query.contiguous()
    out = torch.empty_like(query)
    cpu_kernels().paged_decode_attention(query, key_cache, value_cache, block_tables.to(torch.int32).contiguous(),
                                         context_lens.to(torch.int32).contiguous(), float(scale), out)
    return out
