"""A baseline predictor with no learned parts: ~4 characters per input token, a fixed output-length prior.

The output prior (p10/p50/p90 = 40/200/600 tokens) is the rough shape of chat answers. Each model's
quantiles are then scaled by its online length correction (predictor/correction.py: q * 2**offset, per
model and kind of prompt, fed by `observe` with each finished request's true length) and capped by
max_tokens. Every model gets the same quality score (0.5), so a router using it routes on price and load.
Model cards are not read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from predictor.base import ModelPrediction, Prediction, PredictionInput
from predictor.correction import LengthCorrection
from predictor.features import prompt_kind

CHARS_PER_TOKEN = 4.0


class HeuristicPredictor:
    name = "heuristic"

    def __init__(self, output_tokens_p10: float = 40, output_tokens_p50: float = 200,
                 output_tokens_p90: float = 600, cards_path: Path | None = None,
                 correction: LengthCorrection | None = None) -> None:
        self.prior = (output_tokens_p10, output_tokens_p50, output_tokens_p90)
        self.cards_path = cards_path  # accepted for a common constructor; this predictor has no use for cards
        self.correction = correction or LengthCorrection()

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        input_tokens = math.ceil(len(request.prompt_text) / CHARS_PER_TOKEN) + 4 * request.num_messages
        cap = request.max_tokens if request.max_tokens is not None else math.inf
        kind = prompt_kind(request)
        by_model = {}
        for model in models:
            offset_log2 = self.correction.offset_log2(model, kind)
            scale = 2.0 ** offset_log2
            p10, p50, p90 = (min(q * scale, cap) for q in self.prior)
            by_model[model] = ModelPrediction(p10, p50, p90, p_as_good_as_strongest=0.5, correction_log2=offset_log2)
        return Prediction(input_tokens=input_tokens, by_model=by_model)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        kind = prompt_kind(request) if request is not None else ""
        self.correction.observe(model, predicted_tokens, output_tokens, truncated, kind, correction_log2)
