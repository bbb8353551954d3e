"""The Predictor protocol, what it returns, and the registry of predictors by name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class ModelPrediction:
    """What one candidate model is expected to do with a request."""

    output_tokens_p10: float
    output_tokens_p50: float
    output_tokens_p90: float
    p_as_good_as_strongest: float  # in [0, 1]
    correction_log2: float = 0.0  # the online length correction the quantiles were scaled by (fed back with them)

    def __post_init__(self) -> None:
        if not (0 <= self.output_tokens_p10 <= self.output_tokens_p50 <= self.output_tokens_p90):
            raise ValueError(f"quantiles must be ordered and >= 0, got {self}")
        if not 0.0 <= self.p_as_good_as_strongest <= 1.0:
            raise ValueError(f"p_as_good_as_strongest must be in [0, 1], got {self.p_as_good_as_strongest}")


@dataclass(frozen=True)
class Prediction:
    input_tokens: int
    by_model: dict[str, ModelPrediction] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictionInput:
    """The request as the predictor sees it: plain values, no HTTP, no tokenizer."""

    prompt_text: str
    num_messages: int
    max_tokens: int | None
    has_system_prompt: bool = False


class Predictor(Protocol):
    name: str

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction: ...

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        """Feed back a finished request's true output length (online correction, predictor/correction.py);
        `request`, when given, is the request it answered, so the correction can learn per kind of prompt;
        `correction_log2` is the correction its prediction was made with (ModelPrediction.correction_log2),
        which may have moved while it queued and ran (None: assume the current one)."""
        ...


_REGISTRY: dict[str, str] = {
    "heuristic": "predictor.heuristic:HeuristicPredictor",
    "learned": "predictor.learned:LearnedPredictor",
}


def registered_predictors() -> list[str]:
    return sorted(_REGISTRY)


def create_predictor(name: str, **options: Any) -> Predictor:
    target = _REGISTRY.get(name)
    if target is None:
        raise ValueError(f"unknown predictor {name!r}; registered: {registered_predictors()}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)
