"""Model cards: built from measured lengths, saved and loaded, upserted; bad files and inputs are refused."""

from __future__ import annotations

import json
import math

import pytest

from predictor.model_card import (
    MIN_CALIBRATION_PROMPTS,
    ModelCard,
    card_from_lengths,
    default_card,
    load_cards,
    save_cards,
    upsert_card,
)


def test_card_from_lengths_is_the_mean_and_std_of_log2_one_plus_tokens():
    card = card_from_lengths("m", [1, 3, 7, 15], strength=0.4)
    assert card.output_log2_mean == pytest.approx(2.5)  # log2(2, 4, 8, 16) = 1, 2, 3, 4
    assert card.output_log2_std == pytest.approx(math.sqrt(5 / 3))  # sample std
    assert card.calibration_prompts == 4 and card.strength == 0.4 and card.source == "calibrated"
    assert card.median_output_tokens == pytest.approx(2 ** 2.5 - 1)


def test_too_few_lengths_are_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_CALIBRATION_PROMPTS}"):
        card_from_lengths("m", [10] * (MIN_CALIBRATION_PROMPTS - 1))


def test_negative_lengths_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        card_from_lengths("m", [10, 10, 10, -1])


@pytest.mark.parametrize("fields", [dict(output_log2_mean=math.nan), dict(output_log2_std=-1.0),
                                    dict(strength=1.5)])
def test_bad_card_values_are_refused(fields):
    with pytest.raises(ValueError):
        ModelCard(**{"model": "m", "output_log2_mean": 8.0, "output_log2_std": 1.0, "strength": 0.2,
                     "calibration_prompts": 4, **fields})


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "cards.json"
    cards = {"b": card_from_lengths("b", [100, 200, 300, 400]), "a": default_card("a")}
    save_cards(path, cards)
    assert load_cards(path) == cards
    assert [c["model"] for c in json.loads(path.read_text())["cards"]] == ["a", "b"]  # sorted, stable diffs
    assert not path.with_suffix(".json.tmp").exists()


def test_missing_file_is_no_cards(tmp_path):
    assert load_cards(tmp_path / "none.json") == {}


def test_upsert_replaces_only_its_model(tmp_path):
    path = tmp_path / "cards.json"
    upsert_card(path, card_from_lengths("a", [10, 10, 10, 10]))
    upsert_card(path, card_from_lengths("b", [50, 50, 50, 50]))
    upsert_card(path, card_from_lengths("a", [90, 90, 90, 90]))
    cards = load_cards(path)
    assert sorted(cards) == ["a", "b"]
    assert cards["a"].median_output_tokens == pytest.approx(90)


@pytest.mark.parametrize("text", ["not json", "[]", '{"cards": [{"model": "m"}]}',
                                  '{"cards": [{"model": "m", "output_log2_mean": -1, "output_log2_std": 1, '
                                  '"strength": 0.2, "calibration_prompts": 4}]}', '{"other": 1}'])
def test_bad_file_is_a_value_error_naming_it(tmp_path, text):
    path = tmp_path / "cards.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="not a model-card file"):
        load_cards(path)


def test_measured_lengths_by_prompt_round_trip_and_bad_ones_are_refused(tmp_path):
    card = card_from_lengths("m", [10, 20, 30, 40], by_prompt={"a": 10, "mmlu-1": 1})
    save_cards(tmp_path / "c.json", {"m": card})
    assert load_cards(tmp_path / "c.json")["m"].calibration_output_tokens == {"a": 10, "mmlu-1": 1}
    for bad in ({"a": -1}, {"a": 1.5}, ["a", 1]):
        with pytest.raises(ValueError, match="calibration_output_tokens"):
            ModelCard("m", 8.0, 1.0, 0.2, 4, calibration_output_tokens=bad)
    broken = json.loads((tmp_path / "c.json").read_text())
    broken["cards"][0]["calibration_output_tokens"] = {"a": "ten"}
    (tmp_path / "c.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="not a model-card file"):
        load_cards(tmp_path / "c.json")
