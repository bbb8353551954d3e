"""First-come-first-served scheduling: which sequences run in the next engine step.

Pure Python on plain values. Waiting sequences join the running set in arrival order while it has fewer than
max_num_seqs members; every running sequence takes part in every step until it finishes or is aborted.
"""

from __future__ import annotations

from collections import deque

from backends.engine.sequence import Sequence, SequenceStatus


class Scheduler:
    def __init__(self, max_num_seqs: int) -> None:
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def schedule(self) -> list[Sequence]:
        """Admit waiting sequences up to max_num_seqs; return the sequences to run this step, oldest first."""
        while self.waiting and len(self.running) < self.max_num_seqs:
            seq = self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
        return list(self.running)

    def finish(self, seq: Sequence) -> None:
        """Take a sequence out of the running set once it has finished."""
        seq.status = SequenceStatus.FINISHED
        if seq in self.running:
            self.running.remove(seq)

    def remove(self, request_id: str) -> Sequence | None:
        """Drop a sequence wherever it is (an abort); returns it, or None for an unknown id."""
        for queue in (self.running, self.waiting):
            for seq in queue:
                if seq.request_id == request_id:
                    queue.remove(seq)
                    seq.status = SequenceStatus.FINISHED
                    return seq
        return None

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def num_unfinished(self) -> int:
        return len(self.waiting) + len(self.running)
