"""One request inside the engine: its tokens, sampling settings, status, KV cache and detokenizer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from backends.engine.detokenizer import IncrementalDetokenizer
from backends.engine.sampling_params import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    request_id: str
    prompt_token_ids: list[int]
    sampling: SamplingParams
    max_output_tokens: int  # sampling.max_tokens, capped so prompt + output fits the context window
    detokenizer: IncrementalDetokenizer
    stop_token_ids: frozenset[int] = frozenset()  # EOS (unless ignore_eos) and sampling.stop_token_ids
    output_token_ids: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    finish_reason: str | None = None
    kv_cache: Any = None  # a KVCache while running, None before and after
    generator: Any = None  # a torch.Generator when sampling.seed is set

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_cached_tokens(self) -> int:
        return 0 if self.kv_cache is None else self.kv_cache.num_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def uncached_token_ids(self) -> list[int]:
        """The tokens the next forward pass must run: the whole prompt at first, then the last sampled token."""
        cached = self.num_cached_tokens
        if cached < self.num_prompt_tokens:
            return self.prompt_token_ids[cached:] + self.output_token_ids
        return self.output_token_ids[cached - self.num_prompt_tokens:]
