"""A baseline predictor with no learned parts: ~4 characters per input token, a fixed output-length prior.

The output prior (p10/p50/p90 = 40/200/600 tokens, capped by max_tokens) is the rough shape of chat
answers; every model gets the same quality score (0.5), so a router using it routes on price and load.
"""

from __future__ import annotations

import math
from typing import Sequence

from predictor.base import ModelPrediction, Prediction, PredictionInput

CHARS_PER_TOKEN = 4.0


class HeuristicPredictor:
    name = "heuristic"

    def __init__(self, output_tokens_p10: float = 40, output_tokens_p50: float = 200,
                 output_tokens_p90: float = 600) -> None:
        self.prior = (output_tokens_p10, output_tokens_p50, output_tokens_p90)

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        input_tokens = math.ceil(len(request.prompt_text) / CHARS_PER_TOKEN) + 4 * request.num_messages
        cap = request.max_tokens if request.max_tokens is not None else math.inf
        p10, p50, p90 = (min(q, cap) for q in self.prior)
        one = ModelPrediction(p10, p50, p90, p_as_good_as_strongest=0.5)
        return Prediction(input_tokens=input_tokens, by_model={m: one for m in models})
