"""What one forward pass needs to know about the batch: where each token's KV goes and what each query reads.

Tokens are packed decode-first: the first num_decode_tokens tokens are one query token each of
sequences in decode (paged decode attention); the rest are chunks of sequences in prefill (paged
prefill attention over the cached prefix plus the chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttentionMetadata:
    slot_mapping: torch.Tensor  # (num_tokens,) int64: cache slot of each token's key and value
    num_decode_tokens: int
    decode_block_tables: torch.Tensor  # (num_decode_seqs, max_blocks) int32
    decode_context_lens: torch.Tensor  # (num_decode_seqs,) int32, this step's token included
    prefill_block_tables: torch.Tensor  # (num_prefill_seqs, max_blocks) int32
    prefill_query_start_loc: torch.Tensor  # (num_prefill_seqs + 1,) int32, offsets into the prefill tokens
    prefill_context_lens: torch.Tensor  # (num_prefill_seqs,) int32, this step's chunk included

    @property
    def num_prefill_seqs(self) -> int:
        return self.prefill_context_lens.shape[0]
