"""The fixed calibration prompts a new model is measured on (`tamer predictor calibrate`), and what the
predictor learns from a model's measured answers to them.

Two parts, in one file:
- 48 card prompts (`card: true`): AlpacaEval instructions (CC BY-NC 4.0, tatsu-lab/alpaca_eval) from the
  training split, chosen by a fixed hash of their ids. A card's verbosity (its mean and spread of log2
  length) is measured on exactly these, as the shipped training cards were, so the two are comparable.
- 20 kind prompts (`card: false`): 8 MMLU questions and 8 GSM8K problems (both MIT, via RouteLLM) and 4 more
  AlpacaEval coding tasks, from the training split, the first of their kind in the same hash order,
  interleaved. Models differ most in how they answer these kinds of prompt (a letter or an essay for a
  multiple-choice question; the bare number or the worked solution for a word problem), so they measure
  how far off the predictor is for this model on each kind of prompt (`features.prompt_kind`).

A calibrated card keeps every measured length by prompt id. When a predictor is built it predicts those
same prompts for the model and seeds its online length correction (predictor/correction.py) with the
median log2 error: over all the prompts, and for each kind of prompt measured on at least
`MIN_KIND_PROMPTS` of them. A model is then corrected per kind from its first request, not only after
serving traffic of that kind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Callable, Iterable

from predictor.base import PredictionInput
from predictor.features import prompt_kind

CALIBRATION_FILE = Path(__file__).parent / "artifacts" / "calibration_prompts.jsonl"
MIN_KIND_PROMPTS = 4  # a kind measured on fewer prompts takes the model's overall offset


@dataclass(frozen=True)
class CalibrationPrompt:
    prompt_id: str
    text: str
    dataset: str = "alpaca_eval"
    card: bool = True  # measures the card's verbosity (else only the per-kind offsets)


def load_calibration_prompts(path: Path = CALIBRATION_FILE, limit: int | None = None) -> list[CalibrationPrompt]:
    with path.open() as fh:
        prompts = [CalibrationPrompt(**json.loads(line)) for line in fh if line.strip()]
    return prompts[:limit] if limit is not None else prompts


def card_prompts(prompts: Iterable[CalibrationPrompt] | None = None) -> list[CalibrationPrompt]:
    return [p for p in (load_calibration_prompts() if prompts is None else prompts) if p.card]


def kind_prompts(prompts: Iterable[CalibrationPrompt] | None = None) -> list[CalibrationPrompt]:
    return [p for p in (load_calibration_prompts() if prompts is None else prompts) if not p.card]


@dataclass(frozen=True)
class CalibrationOffsets:
    """Log2 offsets (true over predicted length) measured on the calibration prompts."""

    model_log2: float
    model_prompts: int
    by_kind_log2: dict[str, float]
    prompts_by_kind: dict[str, int]


def calibration_offsets(measured: Iterable[tuple[str, float, int]], bound_log2: float = 2.0,
                        min_kind_prompts: int = MIN_KIND_PROMPTS) -> CalibrationOffsets | None:
    """Offsets from (kind, predicted median tokens, true tokens) per measured prompt, None if there are none.

    Each is the median of log2(1 + true) - log2(1 + predicted), so one runaway answer moves it little,
    bounded to +-bound_log2 like the online correction's. An answer cut off at the calibration's
    max_tokens counts at the length it reached, which can only make an offset too small, never too large
    (the bundled SmolLM2 ran 28 of its 68 greedy answers on to the 1,024 cap, repeating itself)."""
    errors_by_kind: dict[str, list[float]] = {}
    for kind, predicted_tokens, true_tokens in measured:
        if predicted_tokens < 0 or true_tokens < 0 or not math.isfinite(predicted_tokens):
            continue
        error = math.log2(1 + true_tokens) - math.log2(1 + predicted_tokens)
        errors_by_kind.setdefault(kind, []).append(error)
    everything = [e for errors in errors_by_kind.values() for e in errors]
    if not everything:
        return None

    def bounded(errors: list[float]) -> float:
        return max(-bound_log2, min(bound_log2, median(errors)))

    kinds = {k: errors for k, errors in errors_by_kind.items() if len(errors) >= min_kind_prompts}
    return CalibrationOffsets(bounded(everything), len(everything), {k: bounded(e) for k, e in kinds.items()},
                              {k: len(e) for k, e in kinds.items()})


def seed_correction(correction, model: str, output_tokens_by_prompt: dict[str, int],
                    predict_p50: Callable[[PredictionInput], float],
                    prompts: Iterable[CalibrationPrompt] | None = None) -> CalibrationOffsets | None:
    """Seed `correction` (a LengthCorrection) for `model` from its measured calibration lengths.

    `predict_p50` is the predictor's uncorrected median for the model; prompts measured on another version
    of the calibration set (ids not in it) are skipped."""
    texts = {p.prompt_id: p.text for p in (load_calibration_prompts() if prompts is None else prompts)}
    measured = []
    for prompt_id, true_tokens in output_tokens_by_prompt.items():
        if prompt_id in texts:
            request = PredictionInput(prompt_text=texts[prompt_id], num_messages=1, max_tokens=None)
            measured.append((prompt_kind(request), predict_p50(request), true_tokens))
    offsets = calibration_offsets(measured, correction.max_offset_log2)
    if offsets is not None:
        correction.seed(model, offsets.model_log2, offsets.model_prompts)
        for kind, offset_log2 in offsets.by_kind_log2.items():
            correction.seed(model, offset_log2, offsets.prompts_by_kind[kind], kind=kind)
    return offsets
