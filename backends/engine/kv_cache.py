"""One sequence's KV cache: contiguous keys and values for every layer, grown by doubling."""

from __future__ import annotations

import torch

_INITIAL_NUM_TOKENS = 128


class KVCache:
    """Keys and values of the tokens a sequence has computed so far, for every layer.

    Storage is (num_layers, 2, capacity_tokens, num_kv_heads, head_dim); capacity doubles when a step needs more
    room, up to max_num_tokens. A forward pass writes every layer with `write` and then calls `commit` once.
    """

    def __init__(
        self, *, num_layers: int, num_kv_heads: int, head_dim: int, max_num_tokens: int,
        dtype: torch.dtype, device: torch.device | str,
    ) -> None:
        self.num_layers = num_layers
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.max_num_tokens = max_num_tokens
        self.dtype = dtype
        self.device = torch.device(device)
        self.num_tokens = 0  # tokens whose keys and values every layer holds
        self._data: torch.Tensor | None = None  # (num_layers, 2, capacity_tokens, num_kv_heads, head_dim)

    @property
    def capacity_tokens(self) -> int:
        return 0 if self._data is None else self._data.shape[2]

    @property
    def nbytes(self) -> int:
        return 0 if self._data is None else self._data.numel() * self._data.element_size()

    def reserve(self, num_new_tokens: int) -> None:
        """Make room for num_new_tokens more tokens, keeping what is cached."""
        needed = self.num_tokens + num_new_tokens
        if needed > self.max_num_tokens:
            raise ValueError(
                f"the KV cache holds at most {self.max_num_tokens} tokens (the context window); "
                f"{self.num_tokens} cached + {num_new_tokens} new do not fit"
            )
        if needed <= self.capacity_tokens:
            return
        capacity = max(_INITIAL_NUM_TOKENS, self.capacity_tokens)
        while capacity < needed:
            capacity *= 2
        capacity = min(capacity, self.max_num_tokens)
        data = torch.empty(
            (self.num_layers, 2, capacity, self.num_kv_heads, self.head_dim), dtype=self.dtype, device=self.device
        )
        if self._data is not None and self.num_tokens:
            data[:, :, : self.num_tokens] = self._data[:, :, : self.num_tokens]
        self._data = data

    def write(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys and values for one layer; returns that layer's keys and values so far.

        key, value: (num_new_tokens, num_kv_heads, head_dim). Returns two (num_tokens + num_new_tokens,
        num_kv_heads, head_dim) views. Call `reserve` first.
        """
        if self._data is None:
            raise RuntimeError("KVCache.write before reserve (or after free); call reserve(num_new_tokens) first")
        end = self.num_tokens + key.shape[0]
        self._data[layer, 0, self.num_tokens:end] = key
        self._data[layer, 1, self.num_tokens:end] = value
        return self._data[layer, 0, :end], self._data[layer, 1, :end]

    def commit(self, num_new_tokens: int) -> None:
        """Mark the tokens every layer has just written as cached."""
        self.num_tokens += num_new_tokens

    def free(self) -> None:
        """Release the storage at once; the cache is empty afterwards."""
        self._data = None
        self.num_tokens = 0
