"""The paged KV cache: one pool of fixed-size blocks per layer, sized from a memory budget.

Storage is two tensors (keys, values), allocated once; which block holds which tokens is the block manager's
business. The pool is zeroed so that masked-out slots never hold NaNs. Every layer's cache is seen as
(num_blocks, block_size, num_kv_heads, head_dim), whatever the storage order, which depends on the device:
  blocks outer (num_layers, num_blocks, block_size, num_kv_heads, head_dim) on CUDA: a block's heads sit
      together, the layout the Triton kernels were written for;
  heads outer (num_layers, num_kv_heads, num_blocks, block_size, head_dim) on CPU: a block of one kv head is one
      contiguous run of block_size x head_dim values, which the C++ decode attention (kernels/cpu) reads in
      place and the torch reference gathers as one matrix per (kv head, sequence) pair (kernels/reference.py).
Kernels take strides from the views, so both orders run on both backends.
"""

from __future__ import annotations

import os

import torch

DEFAULT_CPU_FRACTION = 0.10  # of available memory, on CPU, when no budget is given
DEFAULT_CPU_MAX_GIB = 4.0
DEFAULT_GPU_FRACTION = 0.85  # of free GPU memory after the weights


class PagedKVCache:
    def __init__(self, *, num_layers: int, num_blocks: int, block_size: int, num_kv_heads: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str, heads_outer: bool | None = None) -> None:
        """heads_outer: the storage order (see the module docstring); None picks it by device."""
        self.heads_outer = torch.device(device).type == "cpu" if heads_outer is None else heads_outer
        if self.heads_outer:
            shape = (num_layers, num_kv_heads, num_blocks, block_size, head_dim)
        else:
            shape = (num_layers, num_blocks, block_size, num_kv_heads, head_dim)
        self.key = torch.zeros(shape, dtype=dtype, device=device)
        self.value = torch.zeros(shape, dtype=dtype, device=device)
        self.num_blocks = num_blocks
        self.block_size = block_size
        if self.heads_outer:
            self._layers = [(k.permute(1, 2, 0, 3), v.permute(1, 2, 0, 3)) for k, v in zip(self.key, self.value)]
        else:
            self._layers = list(zip(self.key, self.value))

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(key_cache, value_cache) of layer i, each seen as (num_blocks, block_size, num_kv_heads, head_dim)."""
        return self._layers[i]

    @property
    def nbytes(self) -> int:
        return 2 * self.key.numel() * self.key.element_size()


def bytes_per_block(*, num_layers: int, block_size: int, num_kv_heads: int, head_dim: int,
                    dtype: torch.dtype) -> int:
    return 2 * num_layers * block_size * num_kv_heads * head_dim * torch.tensor([], dtype=dtype).element_size()


def _available_cpu_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def kv_cache_budget_bytes(device: torch.device, kv_cache_gib: float | None) -> int:
    """The KV-cache budget: kv_cache_gib if given, else a fraction of free memory on the device."""
    if kv_cache_gib is not None:
        if kv_cache_gib <= 0:
            raise ValueError(f"kv_cache_gib must be > 0, got {kv_cache_gib}")
        return int(kv_cache_gib * 2**30)
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        return int(free_bytes * DEFAULT_GPU_FRACTION)
    return int(min(_available_cpu_bytes() * DEFAULT_CPU_FRACTION, DEFAULT_CPU_MAX_GIB * 2**30))
