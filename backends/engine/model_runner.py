"""Runs one scheduled step: packs the sequences' new tokens into one batch, runs the model, returns logits.

Packing is decode-first (see attention_metadata.py). Slot numbers come from each sequence's block table:
token t of a sequence lives at slot block_table[t // block_size] * block_size + t % block_size.
Logits are computed only for the rows that sample (the last token of a sequence whose prompt or
recompute is complete), so prefill chunks do not pay for the LM head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.engine.attention_metadata import AttentionMetadata
from backends.engine.kv_cache import PagedKVCache
from backends.engine.model import CausalLM
from backends.engine.scheduler import ScheduledSeq


@dataclass
class PreparedBatch:
    input_ids: torch.Tensor  # (num_tokens,) int64
    positions: torch.Tensor  # (num_tokens,) int64
    meta: AttentionMetadata
    ordered: list[ScheduledSeq]  # decode sequences first, then prefill, as packed
    logits_indices: torch.Tensor  # (num_sampling,) rows of the packed batch whose logits are needed
    sampling: list[ScheduledSeq]  # the sequences those rows belong to, in the same order


def _block_tables(seqs: list[ScheduledSeq], device: torch.device) -> torch.Tensor:
    width = max((len(s.seq.block_table) for s in seqs), default=0)
    rows = [s.seq.block_table + [0] * (width - len(s.seq.block_table)) for s in seqs]
    return torch.tensor(rows, dtype=torch.int32, device=device).reshape(len(seqs), width)


class ModelRunner:
    def __init__(self, model: CausalLM, cache: PagedKVCache) -> None:
        self.model = model
        self.cache = cache
        self.block_size = cache.block_size
        self.device = model.lm_head.weight.device

    def prepare(self, scheduled: list[ScheduledSeq]) -> PreparedBatch:
        decodes = [s for s in scheduled if s.num_tokens == 1]
        prefills = [s for s in scheduled if s.num_tokens > 1]
        ordered = decodes + prefills
        bs = self.block_size
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        logits_rows: list[int] = []
        sampling: list[ScheduledSeq] = []
        query_start = [0]
        for s in ordered:
            seq = s.seq
            start, end = seq.num_computed_tokens, seq.num_computed_tokens + s.num_tokens
            table = seq.block_table
            input_ids.extend(seq.all_token_ids[start:end])
            positions.extend(range(start, end))
            slots.extend(table[p // bs] * bs + p % bs for p in range(start, end))
            if s.samples:
                logits_rows.append(len(input_ids) - 1)
                sampling.append(s)
            if s.num_tokens > 1:
                query_start.append(query_start[-1] + s.num_tokens)
        dev = self.device
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.int64, device=dev),
            num_decode_tokens=len(decodes),
            decode_block_tables=_block_tables(decodes, dev),
            decode_context_lens=torch.tensor([s.seq.num_computed_tokens + 1 for s in decodes], dtype=torch.int32,
                                             device=dev),
            prefill_block_tables=_block_tables(prefills, dev),
            prefill_query_start_loc=torch.tensor(query_start, dtype=torch.int32, device=dev),
            prefill_context_lens=torch.tensor([s.seq.num_computed_tokens + s.num_tokens for s in prefills],
                                              dtype=torch.int32, device=dev),
        )
        return PreparedBatch(
            input_ids=torch.tensor(input_ids, dtype=torch.int64, device=dev),
            positions=torch.tensor(positions, dtype=torch.int64, device=dev),
            meta=meta, ordered=ordered,
            logits_indices=torch.tensor(logits_rows, dtype=torch.int64, device=dev), sampling=sampling,
        )

    @torch.inference_mode()
    def run(self, batch: PreparedBatch) -> torch.Tensor:
        """fp32 logits (num_sampling, vocab_size) for batch.sampling, in that order."""
        hidden = self.model(batch.input_ids, batch.positions, batch.meta, self.cache)  # (num_tokens, hidden)
        return self.model.compute_logits(hidden[batch.logits_indices])  # (num_sampling, vocab_size)
