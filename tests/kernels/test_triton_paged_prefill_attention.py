"""Triton paged prefill attention against `kernels.reference`: packed ragged chunks, cached prefixes, GQA, holes."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from tests.kernels.paged_fixtures import paged_layout, scribble_table_padding
from tests.kernels.tolerances import ATTENTION, assert_close

pytest.importorskip("triton")

# (context_lens, query_lens, block_size): query tokens are the last query_lens of each context
WHOLE_PROMPT = ([5], [5], 16)
MIXED = ([40, 9, 70], [8, 9, 1], 16)  # a chunk after a cached prefix, a whole prompt, a decode token
RAGGED = ([33, 20, 17, 3], [0, 20, 17, 1], 5)  # a sequence with no query tokens; a block size not a power of 2
MHA, GQA3, GQA4 = (4, 4, 64), (9, 3, 64), (8, 2, 128)  # (num_heads, num_kv_heads, head_dim)
SMALL = [(*WHOLE_PROMPT, *MHA), (*MIXED, *MHA), (*MIXED, *GQA3), (*MIXED, *GQA4), (*RAGGED, *GQA3),
         (*RAGGED, *GQA4)]
FULL = [
    ([4096], [4096], 16, 32, 8, 128),  # a 4k prompt, Llama-3-8B layer
    ([1023, 3000, 7, 1], [1023, 512, 7, 1], 16, 32, 8, 128),  # mixed: prompt, chunk after prefix, short, decode
    ([2048, 77], [2048, 77], 16, 9, 3, 64),  # SmolLM2-135M layer
]


def make_case(context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, device):
    key_cache, value_cache, tables, _, _ = paged_layout(context_lens, block_size, num_kv_heads, head_dim,
                                                        dtype=dtype, device=device)
    tables = scribble_table_padding(tables, context_lens, block_size, key_cache.shape[0])
    g = torch.Generator().manual_seed(sum(query_lens) + head_dim)
    query = torch.randn(sum(query_lens), num_heads, head_dim, generator=g).to(device, dtype)  # (tokens, heads, dim)
    starts = torch.tensor([0] + torch.tensor(query_lens).cumsum(0).tolist(), dtype=torch.int32, device=device)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    return query, key_cache, value_cache, tables, starts, lens, head_dim ** -0.5


def check_prefill(case, config: dict | None = None) -> None:
    query, key_cache, value_cache, tables, starts, lens, scale = case
    expected = reference.paged_prefill_attention(query, key_cache, value_cache, tables, starts, lens, scale)
    if config:
        from kernels.triton.paged_prefill_attention import launch

        actual = launch(query, key_cache, value_cache, tables, starts, lens, scale, config=config)
    else:
        with ops.kernel_backend("triton"):
            actual = ops.paged_prefill_attention(query, key_cache, value_cache, tables, starts, lens, scale)
    assert_close(actual, expected, ATTENTION)


@pytest.mark.parametrize("context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim", SMALL)
def test_paged_prefill_attention(context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim, device):
    check_prefill(make_case(context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim,
                            torch.float32, device))


def test_long_prompt_and_long_chunk_after_a_prefix(device):
    check_prefill(make_case([1023, 3], [500, 2], 32, 6, 2, 64, torch.float32, device))


@pytest.mark.parametrize("block_m, block_n", [(16, 16), (16, 32), (64, 16)])
def test_tile_shapes_agree(block_m, block_n, device):
    # several row blocks per sequence, several unmasked tiles before the diagonal, rows past the chunk's end
    case = make_case([70, 45, 1], [50, 45, 1], 16, 6, 3, 64, torch.float32, device)
    check_prefill(case, config=dict(BLOCK_M=block_m, BLOCK_N=block_n, num_warps=4, num_stages=1))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim", FULL)
def test_paged_prefill_attention_full_size_on_gpu(context_lens, query_lens, block_size, num_heads, num_kv_heads,
                                                  head_dim, dtype):
    check_prefill(make_case(context_lens, query_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, "cuda"))
