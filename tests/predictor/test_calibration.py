"""The calibration set (card prompts, kind prompts) and the offsets a model's measured answers seed."""

from __future__ import annotations

import math

import pytest

from predictor.base import PredictionInput
from predictor.calibration import (
    MIN_KIND_PROMPTS,
    CalibrationPrompt,
    calibration_offsets,
    card_prompts,
    kind_prompts,
    load_calibration_prompts,
    seed_correction,
)
from predictor.correction import LengthCorrection
from predictor.features import prompt_kind


def kind_of(text: str) -> str:
    return prompt_kind(PredictionInput(text, num_messages=1, max_tokens=None))


def test_the_shipped_set_has_48_card_prompts_and_kind_prompts_of_three_kinds():
    prompts = load_calibration_prompts()
    assert len({p.prompt_id for p in prompts}) == len(prompts)
    assert len(card_prompts(prompts)) == 48
    assert all(p.dataset == "alpaca_eval" for p in card_prompts(prompts))
    kinds = [kind_of(p.text) for p in kind_prompts(prompts)]
    for kind in ("multiple_choice", "math", "code"):
        assert kinds.count(kind) >= MIN_KIND_PROMPTS
    # interleaved: the first few kind prompts already cover the three kinds
    assert set(kinds[:3]) == {"multiple_choice", "math", "code"}


def test_offsets_are_medians_of_the_log2_error_per_kind_and_overall():
    measured = [("math", 15, 63)] * 4 + [("code", 63, 15)] * 4 + [("open", 7, 7)] * 3
    offsets = calibration_offsets(measured)
    assert offsets.by_kind_log2 == {"math": pytest.approx(2.0), "code": pytest.approx(-2.0)}
    assert offsets.prompts_by_kind == {"math": 4, "code": 4}  # "open": 3 prompts, below the minimum
    assert offsets.model_log2 == pytest.approx(0.0) and offsets.model_prompts == 11


def test_one_runaway_answer_moves_the_median_little_and_offsets_are_bounded():
    calm = calibration_offsets([("math", 100, 100)] * 4 + [("math", 100, 1_000_000)])
    assert calm.by_kind_log2["math"] == pytest.approx(0.0)
    wild = calibration_offsets([("code", 1, 100_000)] * 5, bound_log2=1.5)
    assert wild.by_kind_log2["code"] == 1.5 and wild.model_log2 == 1.5


def test_bad_rows_are_skipped_and_nothing_measured_is_none():
    assert calibration_offsets([]) is None
    assert calibration_offsets([("math", math.nan, 5), ("math", -1, 5), ("math", 5, -1)]) is None


def test_seed_correction_predicts_each_known_prompt_and_skips_unknown_ids():
    prompts = [CalibrationPrompt(f"q{i}", f"What is {i} + {i}? Show your work step by step.", "x", False)
               for i in range(5)]
    assert all(kind_of(p.text) == "math" for p in prompts)
    seen = []

    def predict_p50(request: PredictionInput) -> float:
        seen.append(request.prompt_text)
        return 31.0

    correction = LengthCorrection()
    measured = {f"q{i}": 127 for i in range(5)} | {"from-another-version": 0}
    offsets = seed_correction(correction, "m", measured, predict_p50, prompts=prompts)
    assert len(seen) == 5 and offsets.model_prompts == 5
    assert correction.offset_log2("m", "math") == pytest.approx(2.0)  # log2(128 / 32)
    assert correction.offset_log2("m") == pytest.approx(2.0)
    assert correction.observations("m", "math") == 5 and correction.observations("m") == 5
    assert correction.offset_log2("m", "code") == pytest.approx(2.0)  # an unseeded kind takes the model's
