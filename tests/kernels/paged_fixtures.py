"""Random paged-cache layouts for kernel tests: sequences scattered over shuffled blocks, with holes."""

from __future__ import annotations

import torch


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal GQA attention of the last q_len positions of one sequence, the obvious way (the oracle).

    q: (q_len, num_heads, head_dim); k, v: (context_len, num_kv_heads, head_dim).
    """
    q_len, num_heads, _ = q.shape
    context_len, num_kv_heads, _ = k.shape
    group = num_heads // num_kv_heads
    k = k.float().repeat_interleave(group, dim=1)  # (context_len, num_heads, head_dim)
    v = v.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale  # (num_heads, q_len, context_len)
    q_pos = torch.arange(context_len - q_len, context_len)[:, None]
    scores = scores.masked_fill(torch.arange(context_len)[None, :] > q_pos, float("-inf"))
    return torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)  # (q_len, num_heads, head_dim)


def paged_layout(context_lens: list[int], block_size: int, num_kv_heads: int, head_dim: int, *,
                 dtype=torch.float32, device="cpu", seed: int = 0):
    """Random K/V per sequence stored in a paged cache with shuffled blocks and unused (hole) blocks.

    Returns (key_cache, value_cache, block_tables (num_seqs, max_blocks) int32 padded with -1,
    dense per-sequence keys and values).
    """
    g = torch.Generator().manual_seed(seed)
    blocks_per_seq = [(n + block_size - 1) // block_size for n in context_lens]
    num_blocks = sum(blocks_per_seq) * 2 + 3  # half of the blocks stay unused: holes between sequences
    order = torch.randperm(num_blocks, generator=g).tolist()
    key_cache = torch.randn(num_blocks, block_size, num_kv_heads, head_dim, generator=g).to(dtype).to(device)
    value_cache = torch.randn(num_blocks, block_size, num_kv_heads, head_dim, generator=g).to(dtype).to(device)
    max_blocks = max(blocks_per_seq) + 1
    tables = torch.full((len(context_lens), max_blocks), -1, dtype=torch.int32)
    keys, values = [], []
    cursor = 0
    for s, (n, nb) in enumerate(zip(context_lens, blocks_per_seq)):
        ids = order[cursor:cursor + nb]
        cursor += nb * 2
        tables[s, :nb] = torch.tensor(ids, dtype=torch.int32)
        slots = torch.tensor([ids[t // block_size] * block_size + t % block_size for t in range(n)])
        keys.append(key_cache.view(-1, num_kv_heads, head_dim)[slots.to(device)])
        values.append(value_cache.view(-1, num_kv_heads, head_dim)[slots.to(device)])
    return key_cache, value_cache, tables.to(device), keys, values


def scribble_table_padding(tables: torch.Tensor, context_lens: list[int], block_size: int, num_blocks: int,
                           seed: int = 1) -> torch.Tensor:
    """A copy of `tables` whose entries past each sequence's blocks hold random real block ids (other sequences'
    blocks and holes), so a kernel that reads past a sequence's length picks up wrong keys instead of failing."""
    g = torch.Generator().manual_seed(seed)
    out = tables.clone().cpu()
    for s, n in enumerate(context_lens):
        used = (n + block_size - 1) // block_size
        out[s, used:] = torch.randint(0, num_blocks, (out.shape[1] - used,), generator=g, dtype=torch.int32)
    return out.to(tables.device)
