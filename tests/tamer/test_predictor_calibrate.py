"""`tamer predictor calibrate`: real deployments (the bundled model on the local engine, an OpenAI endpoint)
measured on a few calibration prompts, their cards written; bad input exits 2 with a clear message."""

from __future__ import annotations

import json
import math

import pytest
import typer
from typer.testing import CliRunner

from predictor.calibration import CALIBRATION_FILE, card_prompts, kind_prompts
from predictor.model_card import card_from_lengths, load_cards, upsert_card
from tamer.config import load_settings
from tamer.predictor_calibrate import calibrate
from tests.serving import MODEL, free_port

app = typer.Typer()
app.command("calibrate")(calibrate)


@app.callback()
def _main() -> None:
    """A stand-in for the `tamer predictor` sub-app."""


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["calibrate", *args], env=env)


def write_config(tmp_path, deployment_toml: str, routing_toml: str = "") -> str:
    path = tmp_path / "tamer.toml"
    path.write_text(f"{routing_toml}\n[[deployments]]\n{deployment_toml}\n")
    return str(path)


LOCAL = f'''name = "local"
backend = "local"
model = "{MODEL}"
device = "cpu"
kv_cache_gib = 0.25
max_concurrency = 4'''


def test_calibrates_the_bundled_model_into_the_configured_card_file(tmp_path):
    cards = tmp_path / "cards" / "model_cards.json"
    config = write_config(tmp_path, LOCAL, f'[routing]\nmodel_cards_path = "{cards}"')
    assert load_settings(config, env={}).routing.model_cards_file == cards
    result = invoke("--config", config, "--deployment", "local", "--prompts", "4", "--kind-prompts", "6",
                    "--max-tokens", "16")
    assert result.exit_code == 0, result.output
    card = load_cards(cards)[MODEL]
    measured = [p.prompt_id for p in card_prompts()[:4] + kind_prompts()[:6]]
    assert sorted(card.calibration_output_tokens) == sorted(measured)  # every length kept, by prompt
    assert all(0 < n <= 16 for n in card.calibration_output_tokens.values())
    assert "length offset" in result.output
    shipped = load_cards(CALIBRATION_FILE.parent / "bundled_model_cards.json")[MODEL]
    assert card.source == "calibrated" and card.calibration_prompts == 4
    assert card.strength == shipped.strength  # a calibration measures lengths; the strength prior is kept
    assert 0 < card.output_log2_mean <= math.log2(1 + 16)  # every answer is capped at 16 tokens
    assert f"model card for {MODEL}" in result.output and "truncated" in result.output
    assert str(cards) in result.output


def test_calibrates_an_openai_endpoint_into_the_env_card_file(server, tmp_path):
    """tamer's own proxy (the session server) is the OpenAI-compatible upstream; the card keeps other cards."""
    cards = tmp_path / "env_cards.json"
    upsert_card(cards, card_from_lengths("other-model", [5, 6, 7, 8]))
    config = write_config(tmp_path, f'name = "remote"\nbackend = "openai"\nmodel = "{MODEL}"\n'
                                    f'url = "{server.url}/v1"')
    result = invoke("--config", config, "--deployment", "remote", "--prompts", "5", "--kind-prompts", "0",
                    "--max-tokens", "8",
                    "--strength", "0.7", env={"TAMER_MODEL_CARDS_PATH": str(cards)})
    assert result.exit_code == 0, result.output
    found = load_cards(cards)
    assert sorted(found) == sorted([MODEL, "other-model"])
    assert found[MODEL].calibration_prompts == 5 and found[MODEL].strength == 0.7
    assert found[MODEL].output_log2_mean <= math.log2(1 + 8)
    assert "truncated" in result.output


def test_cards_option_overrides_the_setting_and_keeps_the_strength(server, tmp_path):
    setting, option = tmp_path / "setting.json", tmp_path / "option.json"
    upsert_card(option, card_from_lengths(MODEL, [1, 2, 3, 4], strength=0.9))
    config = write_config(tmp_path, f'name = "remote"\nbackend = "openai"\nmodel = "{MODEL}"\n'
                                    f'url = "{server.url}/v1"', f'[routing]\nmodel_cards_path = "{setting}"')
    result = invoke("--config", config, "--deployment", "remote", "--prompts", "4", "--kind-prompts", "0",
                    "--max-tokens", "4", "--cards", str(option))
    assert result.exit_code == 0, result.output
    assert not setting.exists()
    card = load_cards(option)[MODEL]
    assert card.strength == 0.9 and card.calibration_prompts == 4  # re-measured; the strength is kept


def test_a_predictor_that_cannot_load_still_leaves_the_card_written(server, tmp_path, monkeypatch):
    import predictor.learned

    def missing(*args, **kwargs):
        raise FileNotFoundError("no bundle here")

    monkeypatch.setattr(predictor.learned, "LearnedPredictor", missing)
    cards = tmp_path / "c.json"
    config = write_config(tmp_path, f'name = "remote"\nbackend = "openai"\nmodel = "{MODEL}"\n'
                                    f'url = "{server.url}/v1"')
    result = invoke("--config", config, "--deployment", "remote", "--prompts", "4", "--kind-prompts", "0",
                    "--max-tokens", "4", "--cards", str(cards))
    assert result.exit_code == 0, result.output
    assert "not shown" in result.output and "no bundle here" in result.output
    assert load_cards(cards)[MODEL].calibration_prompts == 4


def test_unknown_deployment_exits_2_naming_the_known_ones(tmp_path):
    result = invoke("--config", write_config(tmp_path, LOCAL), "--deployment", "nope",
                    "--cards", str(tmp_path / "c.json"))
    assert result.exit_code == 2
    assert "unknown deployment 'nope'" in result.output and "['local']" in result.output
    assert not (tmp_path / "c.json").exists()


def test_a_deployment_that_errors_exits_2_with_its_error(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = write_config(tmp_path, f'name = "down"\nbackend = "openai"\nmodel = "m"\nurl = "{dead}"')
    cards = tmp_path / "c.json"
    result = invoke("--config", config, "--deployment", "down", "--prompts", "4", "--cards", str(cards))
    assert result.exit_code == 2
    assert "answered 0 of 4" in result.output and "unreachable" in result.output
    assert not cards.exists()


def test_a_deployment_that_cannot_start_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("TAMER_TEST_MISSING_KEY", raising=False)
    config = write_config(tmp_path, 'name = "keyed"\nbackend = "openai"\nmodel = "m"\n'
                                    'url = "http://127.0.0.1:1/v1"\napi_key_env = "TAMER_TEST_MISSING_KEY"')
    result = invoke("--config", config, "--deployment", "keyed", "--cards", str(tmp_path / "c.json"))
    assert result.exit_code == 2 and "failed to start" in result.output and "TAMER_TEST_MISSING_KEY" in result.output


@pytest.mark.parametrize("args, message", [(["--prompts", "2"], "at least 4"), (["--prompts", "49"], "has 48"),
                                           (["--kind-prompts", "21"], "has 20 kind prompts")])
def test_bad_prompt_counts_exit_2(tmp_path, args, message):
    result = invoke("--config", write_config(tmp_path, LOCAL), "--deployment", "local", *args,
                    "--cards", str(tmp_path / "c.json"))
    assert result.exit_code == 2 and message in result.output


def test_a_broken_card_file_exits_2_before_running_anything(tmp_path):
    cards = tmp_path / "c.json"
    cards.write_text("{not json")
    result = invoke("--config", write_config(tmp_path, LOCAL), "--deployment", "local", "--cards", str(cards))
    assert result.exit_code == 2 and "not a model-card file" in result.output and "--cards" in result.output
    assert cards.read_text() == "{not json"


def test_bad_settings_file_exits_2(tmp_path):
    result = invoke("--config", str(tmp_path / "missing.toml"), "--deployment", "local")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_the_shipped_bundled_card_file_is_a_card_file_for_the_bundled_model():
    from backends.deployment import bundled_deployment

    shipped = CALIBRATION_FILE.parent / "bundled_model_cards.json"
    cards = load_cards(shipped)
    card = cards[bundled_deployment().model]
    assert card.calibration_prompts == 48 and card.source == "calibrated"
    assert sorted(card.calibration_output_tokens) == sorted(p.prompt_id for p in card_prompts() + kind_prompts())
    assert json.loads(shipped.read_text())["cards"][0]["model"] == bundled_deployment().model
