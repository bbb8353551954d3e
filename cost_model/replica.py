"""One simulated replica: continuous batching over the performance model, advanced lazily between events.

A step either prefills chunks of admitted prompts (at most max_batched_tokens prompt tokens, a long prompt
split over several steps, the running sequences decoding a token in the same step, as chunked-prefill engines
do) or decodes one token for every running sequence. Between changes
of the batch, decode steps are uniform, so the replica jumps straight to the next completion.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from cost_model.perf import PerfModel


@dataclass
class Seq:
    """A request in flight on a replica; resumed requests carry their generated tokens as prompt."""

    req: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int  # still to generate
    first_token_s: float | None = None
    done_before: int = 0  # generated before a preemption
    finish_step: float = 0.0
    decode_start_step: float = 0.0
    prefilled: int = 0  # prompt tokens already in the KV cache
    admitted: bool = False  # KV cache reserved on this replica


@dataclass
class Replica:
    """Continuous-batching state of one model replica on one instance."""

    perf: PerfModel
    instance: object
    max_num_seqs: int = 256
    max_batched_tokens: int = 2048
    waiting: deque = field(default_factory=deque)
    running: list = field(default_factory=list)  # heap of (finish_step, seq id, Seq)
    steps_done: float = 0.0
    t_last: float = 0.0
    dt_s: float = 0.0
    prefill_end_s: float | None = None
    prefill_batch: list = field(default_factory=list)
    kv_reserved: int = 0
    ctx_sum: float = 0.0
    version: int = 0
    accepting: bool = True
    alive: bool = True

    @property
    def num_outstanding(self) -> int:
        return len(self.waiting) + len(self.running) + len(self.prefill_batch)

    def fits(self, seq: Seq) -> bool:
        return seq.prompt_tokens + seq.output_tokens <= self.perf.kv_capacity_tokens

    def _advance(self, now: float) -> None:
        if self.prefill_end_s is None and self.running and self.dt_s > 0:
            self.steps_done += (now - self.t_last) / self.dt_s
        self.t_last = now

    def _retime(self) -> None:
        n = len(self.running)
        self.dt_s = self.perf.decode_step_s(n, self.ctx_sum / n) if n else 0.0

    def step(self, now: float, finished: list) -> float | None:
        """Process what is due at `now`; append (Seq, finish_s) of completed requests to `finished`;
        return the time of this replica's next event (None: idle)."""
        self._advance(now)
        if self.prefill_end_s is not None and now >= self.prefill_end_s - 1e-12:
            self.prefill_end_s = None
            if self.running:
                self.steps_done += 1  # the running sequences decoded a token in the mixed step
            for seq, chunk in self.prefill_batch:
                seq.prefilled += chunk
                if seq.prefilled < seq.prompt_tokens:
                    self.waiting.appendleft(seq)  # admitted, more chunks to go (only the last of a batch)
                    continue
                if seq.first_token_s is None:
                    seq.first_token_s = now
                seq.decode_start_step = self.steps_done
                seq.finish_step = self.steps_done + seq.output_tokens - 1
                heapq.heappush(self.running, (seq.finish_step, seq.req, seq))
                self.ctx_sum += seq.prompt_tokens + seq.output_tokens / 2
            self.prefill_batch = []
        while self.running and self.running[0][0] <= self.steps_done + 1e-9:
            _, _, seq = heapq.heappop(self.running)
            self.kv_reserved -= seq.prompt_tokens + seq.output_tokens
            self.ctx_sum -= seq.prompt_tokens + seq.output_tokens / 2
            finished.append((seq, now))
        if self.prefill_end_s is None and self.waiting:
            self._start_prefill(now)
        self._retime()
        if self.prefill_end_s is not None:
            return self.prefill_end_s
        if self.running:
            return now + (self.running[0][0] - self.steps_done) * self.dt_s
        return None

    def _start_prefill(self, now: float) -> None:
        tokens, sq = 0, 0.0
        while self.waiting and tokens < self.max_batched_tokens:
            seq = self.waiting[0]
            if not seq.admitted:
                need = seq.prompt_tokens + seq.output_tokens
                if self.kv_reserved + need > self.perf.kv_capacity_tokens or \
                        len(self.running) + len(self.prefill_batch) >= self.max_num_seqs:
                    break
                self.kv_reserved += need
                seq.admitted = True
            self.waiting.popleft()
            chunk = min(seq.prompt_tokens - seq.prefilled, self.max_batched_tokens - tokens)
            self.prefill_batch.append((seq, chunk))
            tokens += chunk
            sq += chunk * (2 * seq.prefilled + chunk)
        if self.prefill_batch:
            n = len(self.running)
            self.prefill_end_s = now + self.perf.step_s(tokens, sq, n, self.ctx_sum)

    def evict(self, now: float) -> list[Seq]:
        """Take every request off this replica (it is going away); running ones keep what they generated."""
        self._advance(now)
        out = list(self.waiting) + [seq for seq, _ in self.prefill_batch]
        for seq in out:
            seq.prefilled, seq.admitted = 0, False
        for _, _, seq in self.running:
            made = max(1, min(seq.output_tokens - 1, int(self.steps_done - seq.decode_start_step) + 1))
            out.append(Seq(seq.req, seq.arrival_s, seq.prompt_tokens + made, seq.output_tokens - made,
                           seq.first_token_s, seq.done_before + made))
        self.waiting.clear()
        self.prefill_batch = []
        self.running = []
        self.prefill_end_s = None
        self.kv_reserved, self.ctx_sum = 0, 0.0
        self.alive = self.accepting = False
        self.version += 1
        return out
