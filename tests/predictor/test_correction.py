"""Online length correction: bounded, robust to outliers, censored outputs only push up, converges to a bias,
per model and per kind of prompt."""

from __future__ import annotations

import math

import pytest

from predictor.base import PredictionInput
from predictor.correction import LengthCorrection
from predictor.heuristic import HeuristicPredictor

MODEL = "m"


def test_no_observations_means_no_offset():
    c = LengthCorrection()
    assert c.offset_log2(MODEL) == 0.0 and c.observations(MODEL) == 0


def test_offset_stays_within_its_bound_however_wrong_the_predictions():
    c = LengthCorrection(weight=0.5, max_offset_log2=2.0)
    for _ in range(200):
        c.observe(MODEL, predicted_tokens=1, output_tokens=100_000)
    assert c.offset_log2(MODEL) == pytest.approx(2.0)
    for _ in range(400):
        c.observe(MODEL, predicted_tokens=100_000, output_tokens=0)
    assert c.offset_log2(MODEL) == pytest.approx(-2.0)
    assert c.observations(MODEL) == 600


def test_one_absurd_output_moves_the_offset_by_at_most_weight_times_max_step():
    c = LengthCorrection(weight=0.05, max_step_log2=2.0)
    c.observe(MODEL, predicted_tokens=100, output_tokens=10**9)
    assert c.offset_log2(MODEL) == pytest.approx(0.05 * 2.0)


def test_truncated_outputs_only_push_the_offset_up():
    c = LengthCorrection(weight=0.5)
    c.observe(MODEL, predicted_tokens=400, output_tokens=16, truncated=True)  # cut short: says nothing
    assert c.offset_log2(MODEL) == 0.0 and c.observations(MODEL) == 0
    c.observe(MODEL, predicted_tokens=100, output_tokens=400, truncated=True)  # at least 4x: says "longer"
    assert c.offset_log2(MODEL) > 0 and c.observations(MODEL) == 1


def test_models_are_corrected_apart():
    c = LengthCorrection()
    c.observe("a", 100, 400)
    assert c.offset_log2("a") > 0 and c.offset_log2("b") == 0.0


def test_invalid_observations_are_ignored():
    c = LengthCorrection()
    c.observe(MODEL, predicted_tokens=math.nan, output_tokens=10)
    c.observe(MODEL, predicted_tokens=-1, output_tokens=10)
    c.observe(MODEL, predicted_tokens=10, output_tokens=-1)
    assert c.observations(MODEL) == 0


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_bad_weight_is_refused(weight):
    with pytest.raises(ValueError, match="weight"):
        LengthCorrection(weight=weight)


@pytest.mark.parametrize("true_factor", [0.5, 3.0])
def test_converges_toward_a_constant_bias(true_factor):
    """A model that always writes `true_factor` x the uncorrected prediction: the corrected prediction meets it."""
    c = LengthCorrection(weight=0.05)
    base_tokens = 200.0
    actual = round(base_tokens * true_factor)
    for _ in range(300):
        predicted = base_tokens * 2.0 ** c.offset_log2(MODEL)
        c.observe(MODEL, predicted, actual)
    corrected = base_tokens * 2.0 ** c.offset_log2(MODEL)
    assert corrected == pytest.approx(actual, rel=0.05)


def test_converges_despite_outliers():
    c = LengthCorrection(weight=0.05)
    for i in range(400):
        predicted = 100 * 2.0 ** c.offset_log2(MODEL)
        c.observe(MODEL, predicted, 20_000 if i % 10 == 0 else 200)  # one in ten answers is absurdly long
    corrected = 100 * 2.0 ** c.offset_log2(MODEL)
    assert 150 < corrected < 400  # near the typical 200, not dragged to the outliers' 20000


def test_kinds_of_prompt_are_corrected_apart_and_an_unseen_kind_gets_the_models_offset():
    """A model that answers multiple choice in 1/3 of the prediction and open questions in 2x, interleaved:
    the corrected predictions meet both; a kind it never served gets the offset over all its requests."""
    c = LengthCorrection(weight=0.05)
    base_tokens = 200.0
    truth = {"multiple_choice": base_tokens / 3, "open": base_tokens * 2}
    for i in range(600):
        kind = "open" if i % 3 == 0 else "multiple_choice"
        predicted = base_tokens * 2.0 ** c.offset_log2(MODEL, kind)
        c.observe(MODEL, predicted, round(truth[kind]), kind=kind)
    for kind, tokens in truth.items():
        assert base_tokens * 2.0 ** c.offset_log2(MODEL, kind) == pytest.approx(tokens, rel=0.05)
    assert c.offset_log2(MODEL, "code") == c.offset_log2(MODEL) == c.offset_log2(MODEL, "")
    assert c.offset_log2(MODEL, "multiple_choice") < c.offset_log2(MODEL) < c.offset_log2(MODEL, "open")
    assert c.observations(MODEL) == 600
    assert (c.observations(MODEL, "open"), c.observations(MODEL, "multiple_choice")) == (200, 400)
    assert c.observations(MODEL, "code") == 0


def test_a_new_kind_starts_from_the_models_offset():
    c = LengthCorrection(weight=0.5)
    for _ in range(20):
        c.observe(MODEL, 100 * 2.0 ** c.offset_log2(MODEL), 300)  # no kind: a model 3x as verbose
    assert c.offset_log2(MODEL, "math") == c.offset_log2(MODEL) == pytest.approx(math.log2(301 / 101), abs=0.01)
    c.observe(MODEL, 100 * 2.0 ** c.offset_log2(MODEL, "math"), 300, kind="math")  # as predicted: no change
    assert c.offset_log2(MODEL, "math") == pytest.approx(math.log2(301 / 101), abs=0.01)
    assert c.observations(MODEL, "math") == 1


def test_kind_offsets_are_bounded_and_censored_too():
    c = LengthCorrection(weight=0.5, max_offset_log2=2.0)
    for _ in range(200):
        c.observe(MODEL, predicted_tokens=1, output_tokens=100_000, kind="long_form")
    assert c.offset_log2(MODEL) == pytest.approx(2.0) and c.offset_log2(MODEL, "long_form") == pytest.approx(2.0)
    c.observe(MODEL, predicted_tokens=400, output_tokens=16, truncated=True, kind="math")  # cut short: says nothing
    assert c.observations(MODEL, "math") == 0


def test_heuristic_predictor_applies_the_correction_multiplicatively_and_still_caps():
    p = HeuristicPredictor(output_tokens_p10=40, output_tokens_p50=200, output_tokens_p90=600)
    request = PredictionInput(prompt_text="hello", num_messages=1, max_tokens=None)
    for _ in range(300):
        p50 = p.predict(request, [MODEL]).by_model[MODEL].output_tokens_p50
        p.observe(MODEL, p50, 400, truncated=False)
    pred = p.predict(request, [MODEL, "other"])
    scale = 2.0 ** p.correction.offset_log2(MODEL)
    assert scale == pytest.approx(2.0, rel=0.05)
    got = pred.by_model[MODEL]
    assert (got.output_tokens_p10, got.output_tokens_p50, got.output_tokens_p90) == pytest.approx(
        (40 * scale, 200 * scale, 600 * scale))
    assert pred.by_model["other"].output_tokens_p50 == 200
    capped = p.predict(PredictionInput("hello", 1, max_tokens=500), [MODEL]).by_model[MODEL]
    assert capped.output_tokens_p50 == pytest.approx(200 * scale) and capped.output_tokens_p90 == 500


def test_heuristic_predictor_accepts_a_card_file_path(tmp_path):
    from predictor.base import create_predictor

    p = create_predictor("heuristic", cards_path=tmp_path / "cards.json")
    assert p.predict(PredictionInput("hi", 1, None), [MODEL]).by_model[MODEL].output_tokens_p50 == 200


def test_heuristic_predictor_learns_per_kind_of_prompt():
    p = HeuristicPredictor()
    choice = PredictionInput("Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:", 1, None)
    essay = PredictionInput("Write an essay about the sea.", 1, None)
    for _ in range(300):
        p50 = p.predict(choice, [MODEL]).by_model[MODEL].output_tokens_p50
        p.observe(MODEL, p50, 60, truncated=False, request=choice)
        p50 = p.predict(essay, [MODEL]).by_model[MODEL].output_tokens_p50
        p.observe(MODEL, p50, 600, truncated=False, request=essay)
    assert p.predict(choice, [MODEL]).by_model[MODEL].output_tokens_p50 == pytest.approx(60, rel=0.05)
    assert p.predict(essay, [MODEL]).by_model[MODEL].output_tokens_p50 == pytest.approx(600, rel=0.05)


def test_a_seeded_offset_is_bounded_and_traffic_moves_it_like_a_learnt_one():
    c = LengthCorrection(weight=0.5, max_offset_log2=2.0)
    c.seed(MODEL, 5.0, observations=7)
    c.seed(MODEL, -1.0, observations=4, kind="code")
    assert c.offset_log2(MODEL) == 2.0 and c.observations(MODEL) == 7
    assert c.offset_log2(MODEL, "code") == -1.0 and c.offset_log2(MODEL, "math") == 2.0
    c.observe(MODEL, predicted_tokens=2 ** -1.0 * 16 - 1, output_tokens=15, kind="code")  # error 0 vs -1
    assert c.offset_log2(MODEL, "code") == pytest.approx(-0.5)
    assert c.observations(MODEL, "code") == 5
    with pytest.raises(ValueError, match="finite"):
        c.seed(MODEL, math.nan, observations=1)


def test_a_burst_predicted_at_once_is_judged_by_the_offset_it_was_made_with():
    """32 requests predicted before any finished, each answered at half the prediction: judged by the offset
    they were made with (0), the offset moves toward -1 and stops; judged by the offset at each finish, the
    same error would be counted again and again, running the offset to its bound."""
    made_with, judged_now = LengthCorrection(weight=0.1), LengthCorrection(weight=0.1)
    for _ in range(32):
        made_with.observe(MODEL, predicted_tokens=199, output_tokens=99, applied_log2=0.0)
        judged_now.observe(MODEL, predicted_tokens=199, output_tokens=99)
    assert -1.0 < made_with.offset_log2(MODEL) < -0.9  # 1 - 0.9**32 of the way to -1
    assert judged_now.offset_log2(MODEL) == pytest.approx(-2.0)
