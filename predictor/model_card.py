"""What the predictor knows about one model: its measured verbosity and strength (a "model card").

A card is what lets one predictor serve models it was never trained on: the length model reads a model
only through its card, never through its name. Cards come from two places:

- shipped: `predictor/artifacts/<version>/model_cards.json`, measured on the training data for every model
  there, plus the bundled local model (calibrated on this machine's engine);
- calibrated: `tamer predictor calibrate --deployment NAME` runs a deployed model on the fixed calibration
  prompts (`calibration_prompts.jsonl` beside the artifacts) and writes its card to a user file, which
  overrides a shipped card of the same name.

Lengths are in the model's own output tokens (what its usage reports), on log2(1 + tokens).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

# A model with no card is assumed to be like the median model of the training data until calibrated.
DEFAULT_LOG2_MEAN = 8.1  # ~ 275 tokens
DEFAULT_LOG2_STD = 1.0
DEFAULT_STRENGTH = 0.2
MIN_CALIBRATION_PROMPTS = 4


@dataclass(frozen=True)
class ModelCard:
    model: str
    output_log2_mean: float  # mean of log2(1 + output tokens) over the calibration prompts
    output_log2_std: float  # their standard deviation
    strength: float  # prior P(answer as good as the strongest model's), in [0, 1]
    calibration_prompts: int  # how many card prompts the verbosity was measured on (0: a default guess)
    source: str = "shipped"  # shipped | calibrated | default
    # a calibrated card's measured output tokens by calibration prompt id, card and kind prompts alike
    # (predictor/calibration.py): what the predictor seeds its per-kind length correction from
    calibration_output_tokens: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.output_log2_mean) or self.output_log2_mean < 0:
            raise ValueError(f"output_log2_mean must be finite and >= 0, got {self.output_log2_mean}")
        if not math.isfinite(self.output_log2_std) or self.output_log2_std < 0:
            raise ValueError(f"output_log2_std must be finite and >= 0, got {self.output_log2_std}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not isinstance(self.calibration_output_tokens, dict) or any(
                not isinstance(n, int) or n < 0 for n in self.calibration_output_tokens.values()):
            raise ValueError(f"calibration_output_tokens must be whole numbers >= 0, got "
                             f"{self.calibration_output_tokens!r:.80}")

    @property
    def median_output_tokens(self) -> float:
        return 2.0 ** self.output_log2_mean - 1.0


def default_card(model: str) -> ModelCard:
    return ModelCard(model, DEFAULT_LOG2_MEAN, DEFAULT_LOG2_STD, DEFAULT_STRENGTH, 0, source="default")


def card_from_lengths(model: str, output_tokens: Iterable[int], strength: float = DEFAULT_STRENGTH,
                      source: str = "calibrated", by_prompt: Mapping[str, int] | None = None) -> ModelCard:
    """A card from a model's measured output lengths on the card prompts; `by_prompt` (kept in the card)
    is every length measured, by prompt id, the card prompts' and the kind prompts'."""
    lengths = [int(n) for n in output_tokens]
    if len(lengths) < MIN_CALIBRATION_PROMPTS:
        raise ValueError(f"calibrating {model!r} needs at least {MIN_CALIBRATION_PROMPTS} measured outputs, "
                         f"got {len(lengths)}")
    if any(n < 0 for n in lengths):
        raise ValueError(f"output lengths must be >= 0, got {min(lengths)}")
    logs = [math.log2(1 + n) for n in lengths]
    mean = sum(logs) / len(logs)
    std = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(1, len(logs) - 1))
    return ModelCard(model, mean, std, strength, len(lengths), source=source,
                     calibration_output_tokens=dict(by_prompt or {}))


def load_cards(path: Path) -> dict[str, ModelCard]:
    """Cards from a JSON file ({"cards": [...]}); a missing file is no cards."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {c["model"]: ModelCard(**c) for c in data["cards"]}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a model-card file ({err})") from err


def save_cards(path: Path, cards: Mapping[str, ModelCard]) -> None:
    """Write cards atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"cards": [asdict(c) for c in sorted(cards.values(), key=lambda c: c.model)]},
                              indent=1) + "\n")
    tmp.replace(path)


def upsert_card(path: Path, card: ModelCard) -> None:
    cards = load_cards(path)
    cards[card.model] = card
    save_cards(path, cards)
