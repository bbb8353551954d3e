"""Triton paged decode attention against `kernels.reference`: GQA, holes, ragged contexts, split partitions."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import ops, reference
from tests.kernels.paged_fixtures import paged_layout, scribble_table_padding
from tests.kernels.tolerances import ATTENTION, assert_close

pytest.importorskip("triton")

# (context_lens, block_size, num_heads, num_kv_heads, head_dim): GQA ratios 1, 3, 4; lengths off the block size
SMALL = [
    ([1], 16, 4, 4, 64),
    ([7, 1, 33], 16, 9, 3, 64),
    ([17, 1023, 5], 32, 8, 2, 128),
    ([100, 31, 2], 5, 4, 1, 80),  # a block size and a head_dim that are not powers of two
]
FULL = [
    ([1, 7, 4097, 1023] * 2, 16, 32, 8, 128),  # Llama-3-8B layer
    ([4096] * 32, 16, 32, 8, 128),
    ([65], 16, 32, 8, 128),
    ([300, 1, 2047], 16, 9, 3, 64),  # SmolLM2-135M layer
    ([16384], 32, 32, 8, 128),  # one long context: the split path
]


def make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, device):
    key_cache, value_cache, tables, _, _ = paged_layout(context_lens, block_size, num_kv_heads, head_dim,
                                                        dtype=dtype, device=device)
    tables = scribble_table_padding(tables, context_lens, block_size, key_cache.shape[0])
    g = torch.Generator().manual_seed(len(context_lens) + head_dim)
    query = torch.randn(len(context_lens), num_heads, head_dim, generator=g).to(device, dtype)  # (seqs, heads, dim)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    return query, key_cache, value_cache, tables, lens, 1 / math.sqrt(head_dim)


def check_decode(case, **launch_options) -> None:
    query, key_cache, value_cache, tables, lens, scale = case
    expected = reference.paged_decode_attention(query, key_cache, value_cache, tables, lens, scale)
    if launch_options:
        from kernels.triton.paged_decode_attention import launch

        actual = launch(query, key_cache, value_cache, tables, lens, scale, **launch_options)
    else:
        with ops.kernel_backend("triton"):
            actual = ops.paged_decode_attention(query, key_cache, value_cache, tables, lens, scale)
    assert_close(actual, expected, ATTENTION)


@pytest.mark.parametrize("context_lens, block_size, num_heads, num_kv_heads, head_dim", SMALL)
def test_paged_decode_attention(context_lens, block_size, num_heads, num_kv_heads, head_dim, device):
    check_decode(make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, torch.float32, device))


@pytest.mark.parametrize("partition_size", [0, 32, 64])
def test_split_partitions_merge_to_the_same_result(partition_size, device):
    # partitions of 32 and 64 tokens: sequences that end mid-partition, and one whose later partitions are empty
    case = make_case([1, 40, 97, 33], 16, 8, 2, 64, torch.float32, device)
    check_decode(case, partition_size=partition_size, block_n=16)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("context_lens, block_size, num_heads, num_kv_heads, head_dim", FULL)
def test_paged_decode_attention_full_size_on_gpu(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype):
    case = make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, "cuda")
    check_decode(case)
    check_decode(case, partition_size=0)
    check_decode(case, partition_size=512)
