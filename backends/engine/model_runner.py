"""Runs the model for the scheduled sequences: prefill on a sequence's first step, one-token decode after.

Each sequence runs on its own against its own KV cache; batching them into one forward pass is a later step.
"""

from __future__ import annotations

import torch

from backends.engine.model import CausalLM
from backends.engine.sequence import Sequence


class ModelRunner:
    def __init__(self, model: CausalLM, *, max_model_len: int) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.device = model.lm_head.weight.device

    def allocate(self, seq: Sequence) -> None:
        if seq.kv_cache is None:
            seq.kv_cache = self.model.new_cache(self.max_model_len)

    def free(self, seq: Sequence) -> None:
        if seq.kv_cache is not None:
            seq.kv_cache.free()
            seq.kv_cache = None

    @torch.inference_mode()
    def run(self, seqs: list[Sequence]) -> list[torch.Tensor]:
        """Next-token logits (vocab_size,) fp32 for each sequence, after running its uncached tokens."""
        logits = []
        for seq in seqs:
            self.allocate(seq)
            token_ids = torch.tensor(seq.uncached_token_ids(), dtype=torch.long, device=self.device)  # (num_new,)
            logits.append(self.model(token_ids, seq.kv_cache)[-1])  # (vocab_size,)
        return logits
