"""One request inside the engine: its tokens, how many have KV in the cache, its blocks, status and priority."""

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
    detokenizer: IncrementalDetokenizer | None = None
    stop_token_ids: frozenset[int] = frozenset()  # EOS (unless ignore_eos) and sampling.stop_token_ids
    priority: float = 0.0  # lower runs first (the router passes predicted output tokens); 0 for all = FCFS
    arrival_step: int = 0  # the scheduler step at which it arrived (for aging)
    output_token_ids: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    finish_reason: str | None = None
    num_computed_tokens: int = 0  # tokens whose KV is in the cache
    num_cached_prompt_tokens: int = 0  # of those, taken from the prefix cache at (re)admission
    num_preemptions: int = 0
    block_table: list[int] = field(default_factory=list)
    block_hashes: list[int] = field(default_factory=list)
    generator: Any = None  # a torch.Generator when sampling.seed is set
    _all_token_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._all_token_ids = list(self.prompt_token_ids)

    @property
    def all_token_ids(self) -> list[int]:
        """Prompt then output tokens (do not mutate; use append_token)."""
        return self._all_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self._all_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_uncomputed_tokens(self) -> int:
        """Tokens the next forward passes must run before the next token can be sampled."""
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def append_token(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        self._all_token_ids.append(token_id)

    def reset_for_recompute(self) -> None:
        """After preemption: the cache is gone, prompt and output so far are recomputed on readmission."""
        self.num_computed_tokens = 0
        self.num_cached_prompt_tokens = 0
        self.num_preemptions += 1
        self.status = SequenceStatus.WAITING
