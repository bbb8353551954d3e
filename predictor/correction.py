"""Online length correction: a deployment's predicted lengths are nudged toward what it really writes.

After each finished request the gateway reports (model, predicted median tokens, true output tokens).
The correction is a per-model offset in log2 space, an exponentially weighted mean of the errors, with
each error clipped to +-`max_step_log2` (one absurd output moves it little) and the offset itself bounded
to +-`max_offset_log2` (a 4x bias at most with the defaults), so a burst of odd traffic cannot wreck the
predictions. Outputs cut off by max_tokens are censored: they only ever push the offset up (the model
would have written at least that much), never down.
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
        self._lock = threading.Lock()

    def offset_log2(self, model: str) -> float:
        state = self._by_model.get(model)
        return state.offset_log2 if state else 0.0

    def observations(self, model: str) -> int:
        state = self._by_model.get(model)
        return state.observations if state else 0

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool = False) -> None:
        """Record one finished request; `predicted_tokens` is the median the predictor gave (corrected)."""
        if predicted_tokens < 0 or output_tokens < 0 or not math.isfinite(predicted_tokens):
            return
        error = math.log2(1 + output_tokens) - math.log2(1 + predicted_tokens)
        with self._lock:
            state = self._by_model.setdefault(model, _State())
            if truncated and error < 0:
                return
            step = max(-self.max_step_log2, min(self.max_step_log2, error))
            bound = self.max_offset_log2
            state.offset_log2 = max(-bound, min(bound, state.offset_log2 + self.weight * step))
            state.observations += 1
