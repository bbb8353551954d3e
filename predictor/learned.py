"""The learned predictor (`predictor = "learned"`): the shipped bundle, model cards and online correction.

For one request and N candidate models, predict() computes the prompt's features once (statistics,
cues, the text heads' scores), then runs the four LightGBM models on N rows, one per model card.
A model with no card gets the default card (the median training model) until it is calibrated; the
online correction (predictor/correction.py) then moves its lengths toward what it really writes, for each
kind of prompt (features.prompt_kind) apart. A calibrated card's measured lengths seed that correction
when the predictor is built (predictor/calibration.py: about a millisecond per prompt, once).

Artifacts are loaded once, when the predictor is built (never at import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from predictor.base import ModelPrediction, Prediction, PredictionInput
from predictor.bundle import PredictorBundle, difficulty_rows, length_rows
from predictor.calibration import seed_correction
from predictor.correction import LengthCorrection
from predictor.features import dense_features, prompt_kind, prompt_kind_of
from predictor.model_card import ModelCard, default_card, load_cards

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
DEFAULT_BUNDLE_DIR = ARTIFACTS_DIR / "v1"
BUNDLED_MODEL_CARDS = ARTIFACTS_DIR / "bundled_model_cards.json"
TOKENS_PER_MESSAGE = 4  # chat-template overhead per message


def shipped_cards(bundle_dir: Path = DEFAULT_BUNDLE_DIR) -> dict[str, ModelCard]:
    """The cards that ship with tamer: the bundle's (training data) and the bundled local model's."""
    cards = load_cards(Path(bundle_dir) / "model_cards.json")
    cards.update(load_cards(BUNDLED_MODEL_CARDS))
    return cards


class LearnedPredictor:
    name = "learned"

    def __init__(self, bundle: PredictorBundle | None = None, bundle_dir: Path | str | None = None,
                 cards_path: Path | str | None = None, correction: LengthCorrection | None = None) -> None:
        self.bundle = bundle if bundle is not None else PredictorBundle.load(Path(bundle_dir or DEFAULT_BUNDLE_DIR))
        self.cards_path = Path(cards_path) if cards_path else None
        self.cards: dict[str, ModelCard] = dict(self.bundle.cards)
        self.cards.update(load_cards(BUNDLED_MODEL_CARDS))
        if self.cards_path is not None:
            self.cards.update(load_cards(self.cards_path))
        self.correction = correction or LengthCorrection()
        for card in self.cards.values():
            if card.calibration_output_tokens and not self.correction.observations(card.model):
                seed_correction(self.correction, card.model, card.calibration_output_tokens,
                                lambda request, m=card.model: self._uncorrected_p50(request, m))

    def _uncorrected_p50(self, request: PredictionInput, model: str) -> float:
        guess = self.predict(request, [model]).by_model[model]
        return guess.output_tokens_p50 / 2.0 ** guess.correction_log2

    def card(self, model: str) -> ModelCard:
        return self.cards.get(model) or default_card(model)

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        text = request.prompt_text
        token_ids = self.bundle.heads.token_ids(text)
        dense = dense_features(request)
        kind = prompt_kind_of(dense)
        prompt = self.bundle.prompt_row(dense, text, token_ids)
        input_tokens = len(token_ids) + TOKENS_PER_MESSAGE * request.num_messages
        if not models:
            return Prediction(input_tokens=input_tokens)
        cards = [self.card(m) for m in models]
        tiled = np.repeat(prompt[None, :].astype(np.float64), len(models), axis=0)
        lengths = self.bundle.predict_lengths(length_rows(tiled, cards))
        quality = self.bundle.predict_quality(difficulty_rows(tiled, cards))
        offsets_log2 = [self.correction.offset_log2(model, kind) for model in models]
        scaled = lengths * np.exp2(offsets_log2)[:, None]
        if request.max_tokens is not None:
            scaled = np.minimum(scaled, request.max_tokens)
        by_model = {model: ModelPrediction(p10, p50, p90, p_as_good_as_strongest=q, correction_log2=offset_log2)
                    for model, (p10, p50, p90), q, offset_log2
                    in zip(models, scaled.tolist(), quality.tolist(), offsets_log2)}
        return Prediction(input_tokens=input_tokens, by_model=by_model)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        kind = prompt_kind(request) if request is not None else ""
        self.correction.observe(model, predicted_tokens, output_tokens, truncated, kind, correction_log2)
