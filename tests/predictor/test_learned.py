"""The shipped learned predictor: loading, shapes, determinism, ordered quantiles, caps, bad input."""

from __future__ import annotations

import math

import pytest

from predictor.base import PredictionInput, create_predictor
from predictor.learned import DEFAULT_BUNDLE_DIR, LearnedPredictor

MODELS = ["gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1", "text_davinci_003", "never-seen-model"]


@pytest.fixture(scope="module")
def predictor() -> LearnedPredictor:
    return create_predictor("learned")


def test_shipped_bundle_loads_with_cards(predictor):
    assert DEFAULT_BUNDLE_DIR.joinpath("manifest.json").exists()
    assert len(predictor.cards) > 100
    assert predictor.card("never-seen-model").source == "default"


def test_predicts_every_candidate_with_ordered_quantiles(predictor):
    request = PredictionInput("Write a detailed essay about the history of bread.", num_messages=1, max_tokens=None)
    prediction = predictor.predict(request, MODELS)
    assert set(prediction.by_model) == set(MODELS)
    assert prediction.input_tokens > 5
    for p in prediction.by_model.values():
        assert 0 <= p.output_tokens_p10 <= p.output_tokens_p50 <= p.output_tokens_p90
        assert 0.0 <= p.p_as_good_as_strongest <= 1.0


def test_deterministic(predictor):
    request = PredictionInput("List five fruits.", num_messages=1, max_tokens=None)
    assert predictor.predict(request, MODELS) == predictor.predict(request, MODELS)


def test_verbose_models_and_long_tasks_get_longer_predictions(predictor):
    essay = PredictionInput("Write a detailed, step-by-step guide to planning a two-week trip to Japan, "
                            "with an itinerary for every day.", num_messages=1, max_tokens=None)
    word = PredictionInput("In one word: what is the capital of France?", num_messages=1, max_tokens=None)
    for model in ("gpt4_1106_preview", "text_davinci_003"):
        assert predictor.predict(essay, [model]).by_model[model].output_tokens_p50 > \
            predictor.predict(word, [model]).by_model[model].output_tokens_p50
    both = predictor.predict(essay, ["gpt4_1106_preview", "text_davinci_003"]).by_model
    assert both["gpt4_1106_preview"].output_tokens_p50 > both["text_davinci_003"].output_tokens_p50


def test_stronger_model_more_likely_as_good(predictor):
    request = PredictionInput("Prove that there are infinitely many primes.", num_messages=1, max_tokens=None)
    by_model = predictor.predict(request, ["gpt4_1106_preview", "alpaca-7b"]).by_model
    assert by_model["gpt4_1106_preview"].p_as_good_as_strongest > by_model["alpaca-7b"].p_as_good_as_strongest


def test_max_tokens_caps_the_quantiles(predictor):
    request = PredictionInput("Write a long story about a dragon.", num_messages=1, max_tokens=16)
    for p in predictor.predict(request, MODELS).by_model.values():
        assert p.output_tokens_p90 <= 16


@pytest.mark.parametrize("text", ["", " ", "\x00\x01", "🙂" * 3000, "a" * 200_000])
def test_odd_prompts_still_predict(predictor, text):
    prediction = predictor.predict(PredictionInput(text, num_messages=1, max_tokens=None), MODELS)
    for p in prediction.by_model.values():
        assert all(math.isfinite(q) for q in (p.output_tokens_p10, p.output_tokens_p50, p.output_tokens_p90))


def test_no_candidates(predictor):
    assert predictor.predict(PredictionInput("hi", 1, None), []).by_model == {}


def test_online_correction_moves_a_biased_model(predictor):
    fresh = LearnedPredictor(bundle=predictor.bundle)
    request = PredictionInput("Tell me about cats.", num_messages=1, max_tokens=None)
    before = fresh.predict(request, ["terse-model"]).by_model["terse-model"].output_tokens_p50
    for _ in range(200):
        predicted = fresh.predict(request, ["terse-model"]).by_model["terse-model"].output_tokens_p50
        fresh.observe("terse-model", predicted, output_tokens=10, truncated=False)
    after = fresh.predict(request, ["terse-model"]).by_model["terse-model"].output_tokens_p50
    assert after < before / 2
    assert after >= before / 4 - 1e-6  # bounded: at most a 4x correction with the defaults


def test_online_correction_learns_each_kind_of_prompt_apart(predictor):
    """A model that answers multiple choice with a letter and open questions at length, unlike any trained on."""
    fresh = LearnedPredictor(bundle=predictor.bundle)
    choice = PredictionInput("Which planet is largest?\nA. Mars\nB. Venus\nC. Jupiter\nD. Earth\nAnswer:", 1, None)
    essay = PredictionInput("Write a story about a lighthouse keeper.", 1, None)
    model = "letter-answering-model"

    def p50(request: PredictionInput) -> float:
        return fresh.predict(request, [model]).by_model[model].output_tokens_p50

    before_choice, before_essay = p50(choice), p50(essay)
    for _ in range(300):
        fresh.observe(model, p50(choice), output_tokens=round(before_choice / 3), truncated=False, request=choice)
        fresh.observe(model, p50(essay), output_tokens=round(before_essay * 2), truncated=False, request=essay)
    assert p50(choice) == pytest.approx(before_choice / 3, rel=0.1)
    assert p50(essay) == pytest.approx(before_essay * 2, rel=0.1)
    assert fresh.correction.observations(model, "multiple_choice") == 300


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictor train"):
        LearnedPredictor(bundle_dir=tmp_path)


def test_a_calibrated_cards_measured_lengths_seed_the_correction_per_kind(predictor, tmp_path):
    """A model measured answering multiple choice in 1 token and word problems in 500 is predicted so from its
    first request; the same card without its measured lengths is not."""
    from predictor.calibration import card_prompts, kind_prompts
    from predictor.features import prompt_kind
    from predictor.model_card import card_from_lengths, save_cards

    def kind(text: str) -> str:
        return prompt_kind(PredictionInput(text, 1, None))

    model = "letter-model"
    measured = {p.prompt_id: 300 for p in card_prompts()}
    measured |= {p.prompt_id: {"multiple_choice": 1, "math": 500}.get(kind(p.text), 300) for p in kind_prompts()}
    card = card_from_lengths(model, [300] * 48, strength=0.3, by_prompt=measured)
    save_cards(tmp_path / "seeded.json", {model: card})
    save_cards(tmp_path / "plain.json", {model: card_from_lengths(model, [300] * 48, strength=0.3)})
    seeded = LearnedPredictor(bundle=predictor.bundle, cards_path=tmp_path / "seeded.json")
    plain = LearnedPredictor(bundle=predictor.bundle, cards_path=tmp_path / "plain.json")
    assert plain.correction.observations(model) == 0
    assert seeded.correction.observations(model) == len(measured)
    assert seeded.correction.observations(model, "multiple_choice") >= 4
    assert seeded.correction.offset_log2(model, "multiple_choice") < -1.0
    assert seeded.correction.offset_log2(model, "math") > seeded.correction.offset_log2(model)

    choice = PredictionInput("Which gas do plants take in?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Neon\n"
                             "Answer:", 1, None)
    problem = PredictionInput("Tom has 3 boxes of 12 pens and gives away 7. How many pens are left?", 1, None)
    assert kind(choice.prompt_text) == "multiple_choice" and kind(problem.prompt_text) == "math"

    def p50(p: LearnedPredictor, request: PredictionInput) -> float:
        return p.predict(request, [model]).by_model[model].output_tokens_p50

    assert p50(seeded, choice) < p50(plain, choice) / 2
    assert p50(seeded, problem) > p50(plain, problem)
    # a correction that has already learnt from traffic is not overwritten by the card
    learnt = LearnedPredictor(bundle=predictor.bundle).correction
    learnt.observe(model, 100, 100)
    kept = LearnedPredictor(bundle=predictor.bundle, cards_path=tmp_path / "seeded.json", correction=learnt)
    assert kept.correction.observations(model) == 1 and kept.correction.observations(model, "math") == 0
