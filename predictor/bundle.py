"""The trained predictor as one versioned bundle: text heads, LightGBM models, model cards, a manifest.

Layout of a bundle directory (predictor/artifacts/<version>/):
  manifest.json        version, feature names, training data and its licences, metrics at training time
  text_heads.npz       linear text heads (predictor/text_heads.py)   tokenizer.json  their tokenizer
  length_p10.txt, length_p50.txt, length_p90.txt   LightGBM quantile models of log2(1 + output tokens)
  difficulty.txt       LightGBM model of P(answer as good as the strong reference's)
  model_cards.json     the cards of every model in the training data

Feature rows (`length_rows`, `difficulty_rows`) are built here and nowhere else, so training, evaluation
and serving cannot disagree on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from predictor.booster_call import BoosterCall
from predictor.features import DENSE_NAMES
from predictor.model_card import ModelCard, load_cards, save_cards
from predictor.text_heads import TextHeads

BUNDLE_FORMAT = 1
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}


def length_feature_names(head_names: tuple[str, ...]) -> list[str]:
    return list(DENSE_NAMES) + [f"head_{h}" for h in head_names] + ["card_log2_mean", "card_log2_std"]


def difficulty_feature_names(head_names: tuple[str, ...]) -> list[str]:
    return list(DENSE_NAMES) + [f"head_{h}" for h in head_names] + ["card_strength", "card_log2_mean"]


def length_rows(prompt_features: np.ndarray, cards: list[ModelCard]) -> np.ndarray:
    """Rows for (prompt i, card i): prompt_features (n, D+H) beside each card's verbosity."""
    card_part = np.array([[c.output_log2_mean, c.output_log2_std] for c in cards], dtype=np.float32).reshape(-1, 2)
    return np.hstack([prompt_features, card_part])


def difficulty_rows(prompt_features: np.ndarray, cards: list[ModelCard]) -> np.ndarray:
    card_part = np.array([[c.strength, c.output_log2_mean] for c in cards], dtype=np.float32).reshape(-1, 2)
    return np.hstack([prompt_features, card_part])


@dataclass
class PredictorBundle:
    heads: TextHeads
    length_models: dict  # "p10" | "p50" | "p90" -> lightgbm.Booster
    difficulty_model: object  # lightgbm.Booster
    cards: dict[str, ModelCard]
    interval_widen_log2: tuple[float, float] = (0.0, 0.0)  # subtracted from p10 / added to p90 (conformal)
    manifest: dict = field(default_factory=dict)
    # the boosters' C calls (predictor/booster_call.py), built once
    _length_calls: dict = field(init=False, repr=False, compare=False)  # "p10" | "p50" | "p90" -> BoosterCall
    _difficulty_call: BoosterCall = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._length_calls = {q: BoosterCall(booster) for q, booster in self.length_models.items()}
        self._difficulty_call = BoosterCall(self.difficulty_model)

    def prompt_row(self, dense: np.ndarray, text: str, token_ids: list[int] | None = None) -> np.ndarray:
        """(D+H,) float32: one prompt's dense features beside the text heads' scores (serving and eval)."""
        return np.concatenate([dense, self.heads.score(text, token_ids)]).astype(np.float32)

    def prompt_features(self, dense: np.ndarray, texts: list[str]) -> np.ndarray:
        """(n, D+H): prompt_row of each prompt."""
        return np.stack([self.prompt_row(d, t) for d, t in zip(dense, texts)])

    def predict_lengths(self, rows: np.ndarray) -> np.ndarray:
        """(n, 3) output tokens p10/p50/p90, ordered, >= 0."""
        low, high = self.interval_widen_log2
        logs = np.stack([self._length_calls[q](rows) for q in QUANTILES], axis=1)
        logs[:, 0] -= low
        logs[:, 2] += high
        logs = np.sort(logs, axis=1)  # quantile crossing is possible between separately fitted models
        return np.maximum(np.exp2(logs) - 1.0, 0.0)

    def predict_quality(self, rows: np.ndarray) -> np.ndarray:
        """(n,) P(answer as good as the strong reference's)."""
        return np.clip(self._difficulty_call(rows), 0.0, 1.0)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.heads.save(directory)
        for q, booster in self.length_models.items():
            booster.save_model(str(directory / f"length_{q}.txt"))
        self.difficulty_model.save_model(str(directory / "difficulty.txt"))
        save_cards(directory / "model_cards.json", self.cards)
        manifest = dict(self.manifest, format=BUNDLE_FORMAT, interval_widen_log2=list(self.interval_widen_log2))
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "PredictorBundle":
        import lightgbm as lgb

        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{directory} holds no predictor bundle (no manifest.json); "
                                    f"train one with `tamer predictor train --data DIR`")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"{directory}: bundle format {manifest.get('format')}, this tamer reads {BUNDLE_FORMAT}")
        return cls(
            heads=TextHeads.load(directory),
            length_models={q: lgb.Booster(model_file=str(directory / f"length_{q}.txt")) for q in QUANTILES},
            difficulty_model=lgb.Booster(model_file=str(directory / "difficulty.txt")),
            cards=load_cards(directory / "model_cards.json"),
            interval_widen_log2=tuple(manifest.get("interval_widen_log2", (0.0, 0.0))),
            manifest=manifest,
        )
