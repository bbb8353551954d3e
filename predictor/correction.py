"""Online length correction: a deployment's predicted lengths are nudged toward what it really writes.

After each finished request the gateway reports (model, predicted median tokens, true output tokens, the
kind of prompt it was: `features.prompt_kind`, and the offset the prediction was corrected by, which may
have moved since: a burst of requests is predicted at once and finishes one by one, and judging each by
the offset at its finish would count the same error again and again, running the offset to its bound).
The correction is an offset in log2 space, kept twice per model: one over all its requests and one per
kind of prompt. A prediction takes the kind's offset once that kind has been seen, else the model's. A
kind's offset starts from the model's at the time, so a model that is simply verbose is corrected at once
for every kind, and a model that answers multiple choice in a word but writes essays when asked to explain,
unlike the models the predictor was trained on, ends up corrected for each apart. With no kind given
(`kind=""`) only the model's offset is used and learnt.

Each offset is an exponentially weighted mean of the log2 error of the uncorrected prediction. Robust and
bounded: each error is clipped to +-`max_step_log2` of the current offset (one absurd output moves it little),
and the offset itself is bounded to +-`max_offset_log2` (a 4x bias at most with the defaults), so a burst of
odd traffic cannot wreck the predictions. Outputs cut off by max_tokens are censored: they only ever push an
offset up (the model would have written at least that much), never down.

Offsets can also start from a measurement instead of zero (`seed`): a calibrated model's offsets over the
calibration prompts (predictor/calibration.py), which traffic then moves as it would any other offset.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _State:
    offset_log2: float = 0.0
    observations: int = 0


class LengthCorrection:
    def __init__(self, weight: float = 0.05, max_step_log2: float = 2.0, max_offset_log2: float = 2.0) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.max_step_log2 = max_step_log2
        self.max_offset_log2 = max_offset_log2
        self._by_model: dict[str, _State] = {}
        self._by_kind: dict[tuple[str, str], _State] = {}
        self._lock = threading.Lock()

    def offset_log2(self, model: str, kind: str = "") -> float:
        state = (self._by_kind.get((model, kind)) if kind else None) or self._by_model.get(model)
        return state.offset_log2 if state else 0.0

    def observations(self, model: str, kind: str | None = None) -> int:
        """Requests this model's correction has learnt from: all of them, or those of one kind."""
        state = self._by_model.get(model) if kind is None else self._by_kind.get((model, kind))
        return state.observations if state else 0

    def seed(self, model: str, offset_log2: float, observations: int, kind: str = "") -> None:
        """Start a model's offset (or one kind's, given `kind`) at a measured value, learnt from
        `observations` requests elsewhere; it is bounded like a learnt one."""
        if not math.isfinite(offset_log2):
            raise ValueError(f"offset_log2 must be finite, got {offset_log2}")
        bounded = max(-self.max_offset_log2, min(self.max_offset_log2, offset_log2))
        with self._lock:
            state = _State(bounded, observations)
            if kind:
                self._by_kind[(model, kind)] = state
            else:
                self._by_model[model] = state

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool = False,
                kind: str = "", applied_log2: float | None = None) -> None:
        """Record one finished request; `predicted_tokens` is the median the predictor gave, corrected by
        `applied_log2` (None: by the offset as it is now)."""
        if predicted_tokens < 0 or output_tokens < 0 or not math.isfinite(predicted_tokens):
            return
        if applied_log2 is not None and not math.isfinite(applied_log2):
            applied_log2 = None
        with self._lock:
            applied = self.offset_log2(model, kind) if applied_log2 is None else applied_log2
            # the error of the uncorrected prediction
            error = math.log2(1 + output_tokens) - math.log2(1 + predicted_tokens) + applied
            by_model = self._by_model.setdefault(model, _State())
            by_kind = self._by_kind.get((model, kind), _State(by_model.offset_log2)) if kind else None
            self._learn(by_model, error, truncated)
            if by_kind is not None and self._learn(by_kind, error, truncated):
                self._by_kind[(model, kind)] = by_kind

    def _learn(self, state: _State, error_log2: float, truncated: bool) -> bool:
        surprise = error_log2 - state.offset_log2
        if truncated and surprise < 0:
            return False
        step = self.weight * max(-self.max_step_log2, min(self.max_step_log2, surprise))
        bound = self.max_offset_log2
        state.offset_log2 = max(-bound, min(bound, state.offset_log2 + step))
        state.observations += 1
        return True
