"""Continuous batching: which sequences run in the next step, and how many of their tokens.

Pure Python on plain values (the block manager decides memory, nothing here touches torch). Each step
has a token budget (max_num_batched_tokens) shared by:
1. running sequences that decode (one token each), then running sequences still in prefill (a chunk
   each: chunked prefill, so a long prompt never stalls the decodes behind it);
2. waiting sequences admitted in priority order while the budget, max_num_seqs and free blocks allow;
   an admitted sequence first takes what the prefix cache holds of its prompt.
When a running sequence needs a block and none is free, the running sequence with the lowest
precedence is preempted: its blocks are freed and it goes back to waiting, to be recomputed (prompt +
output so far) when readmitted. No request is ever dropped.

Priority with aging. Each sequence has a priority p (lower first; the router passes the predicted
output length, so shortest-predicted runs first) and arrives at step a. Its precedence key is
k = p + aging_per_step * a, i.e. its effective priority p - aging_per_step * (now - a) falls by
aging_per_step each step it waits, and ordering by k is ordering by effective priority at any step.
Bound: with all priorities >= 0, a request is overtaken only by requests that arrived no later than
step a + p / aging_per_step; anything arriving after that ranks behind it. Equal priorities (p = 0
for all, the default) give first-come-first-served.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from backends.engine.block_manager import BlockManager
from backends.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 512
    aging_per_step: float = 1.0  # priority units a waiting sequence gains per step

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < 1:
            raise ValueError(f"max_num_batched_tokens must be >= 1, got {self.max_num_batched_tokens}")
        if self.aging_per_step <= 0:
            raise ValueError(f"aging_per_step must be > 0, got {self.aging_per_step}")


@dataclass(frozen=True)
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens of this sequence computed in this step

    @property
    def samples(self) -> bool:
        """Whether this step reaches the sequence's last token, so a new token is sampled."""
        return self.seq.num_computed_tokens + self.num_tokens == self.seq.num_tokens


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager) -> None:
        self.config = config
        self.blocks = block_manager
        self.waiting: list[tuple[float, int, Sequence]] = []  # sorted by (key, arrival order)
        self.running: list[Sequence] = []
        self.step_count = 0
        self.num_preemptions = 0
        self._arrivals = 0
        self._keys: dict[int, tuple[float, int]] = {}  # id(seq) -> its sort key

    # --- membership ------------------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        seq.arrival_step = self.step_count
        seq.status = SequenceStatus.WAITING
        key = (seq.priority + self.config.aging_per_step * seq.arrival_step, self._arrivals)
        self._arrivals += 1
        self._keys[id(seq)] = key
        bisect.insort(self.waiting, (*key, seq), key=lambda entry: entry[:2])

    def finish(self, seq: Sequence) -> None:
        """A running sequence is done: drop it and free its blocks."""
        seq.status = SequenceStatus.FINISHED
        if seq in self.running:
            self.running.remove(seq)
        self.blocks.free(seq)
        self._keys.pop(id(seq), None)

    def remove(self, request_id: str) -> Sequence | None:
        """Abort: drop a sequence wherever it is and free its blocks at once; None for an unknown id."""
        for seq in self.running:
            if seq.request_id == request_id:
                self.finish(seq)
                return seq
        for i, (_, _, seq) in enumerate(self.waiting):
            if seq.request_id == request_id:
                del self.waiting[i]
                self.finish(seq)
                return seq
        return None

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def num_unfinished(self) -> int:
        return len(self.waiting) + len(self.running)

    def live(self) -> list[Sequence]:
        return [*self.running, *(entry[2] for entry in self.waiting)]

    # --- one step ----------------------------------------------------------------------------------------
    def schedule(self) -> list[ScheduledSeq]:
        self.step_count += 1
        budget = self.config.max_num_batched_tokens
        scheduled: list[ScheduledSeq] = []
        preempted = False
        decodes = [s for s in self.running if s.num_uncomputed_tokens == 1]
        prefills = [s for s in self.running if s.num_uncomputed_tokens > 1]
        for seq in decodes + prefills:
            if budget == 0:
                break
            if seq.status is not SequenceStatus.RUNNING:
                continue  # preempted earlier in this step
            num_tokens = min(seq.num_uncomputed_tokens, budget)
            if not self._make_room(seq, seq.num_computed_tokens + num_tokens):
                preempted = True
                continue
            self.blocks.grow(seq, seq.num_computed_tokens + num_tokens)
            scheduled.append(ScheduledSeq(seq, num_tokens))
            budget -= num_tokens
        if any(s.seq.status is not SequenceStatus.RUNNING for s in scheduled):
            scheduled = [s for s in scheduled if s.seq.status is SequenceStatus.RUNNING]
            preempted = True
        if not preempted:
            budget = self._admit(scheduled, budget)
        return scheduled

    def _make_room(self, seq: Sequence, num_total_tokens: int) -> bool:
        """Preempt lowest-precedence running sequences until seq fits; False if seq itself was preempted."""
        while not self.blocks.can_hold(seq, num_total_tokens):
            victim = max(self.running, key=lambda s: self._keys[id(s)])
            self._preempt(victim)
            if victim is seq:
                return False
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.blocks.free(seq)
        seq.reset_for_recompute()
        self.num_preemptions += 1
        bisect.insort(self.waiting, (*self._keys[id(seq)], seq), key=lambda entry: entry[:2])

    def _admit(self, scheduled: list[ScheduledSeq], budget: int) -> int:
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0][2]
            cached = self.blocks.match_prefix(seq)
            seq.num_computed_tokens = seq.num_cached_prompt_tokens = cached
            num_tokens = min(seq.num_uncomputed_tokens, budget)
            if not self.blocks.can_hold(seq, cached + num_tokens):
                self.blocks.free(seq)  # a waiting sequence holds no blocks
                seq.num_computed_tokens = seq.num_cached_prompt_tokens = 0
                break
            self.waiting.pop(0)
            self.blocks.grow(seq, cached + num_tokens)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            scheduled.append(ScheduledSeq(seq, num_tokens))
            budget -= num_tokens
        return budget
