"""`tamer predictor train` and `eval` on a small data directory written by code: a real (small) training run."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from predictor.bundle import PredictorBundle
from predictor.learned import LearnedPredictor
from predictor.base import PredictionInput
from tamer.cli import app
from tests.predictor.llm_fixture import write_fixture

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    data = write_fixture(root / "data")
    result = runner.invoke(app, ["predictor", "train", "--data", str(data), "--out", str(root / "bundle")])
    assert result.exit_code == 0, result.output
    return data, root / "bundle"


def test_train_writes_a_loadable_bundle(trained):
    _, bundle_dir = trained
    bundle = PredictorBundle.load(bundle_dir)
    assert set(bundle.cards) >= {"tiny-1b", "verbose-7b"}
    assert bundle.cards["verbose-7b"].output_log2_mean > bundle.cards["terse-7b"].output_log2_mean
    predictor = LearnedPredictor(bundle=bundle)
    long = PredictionInput("Write a detailed essay about volcanoes", 1, None)
    short = PredictionInput("In one word, what colour is tea?", 1, None)
    assert predictor.predict(long, ["small-7b"]).by_model["small-7b"].output_tokens_p50 > \
        2 * predictor.predict(short, ["small-7b"]).by_model["small-7b"].output_tokens_p50


def test_eval_prints_metrics_and_writes_json(trained, tmp_path):
    data, bundle_dir = trained
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["predictor", "eval", "--data", str(data), "--bundle", str(bundle_dir),
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["length_kendall_tau"] > 0.3  # the fixture's lengths follow the task wording
    assert 0.0 <= metrics["length_p10_p90_coverage"] <= 1.0
    assert 0.0 <= metrics["cpt50_mmlu"] <= 1.0
    assert metrics["predict_p50_ms"] > 0
    assert "Kendall" in result.output


def test_eval_calibrates_models_it_has_no_card_for(trained, tmp_path):
    data, bundle_dir = trained
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for name in ("prompts.jsonl.gz", "responses.jsonl.gz", "judgments.jsonl.gz"):
        with gzip.open(data / name, "rt") as src, gzip.open(renamed / name, "wt") as dst:
            for line in src:
                row = json.loads(line)
                if "model" in row:
                    row["model"] = "unseen-" + row["model"]
                dst.write(json.dumps(row) + "\n")
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["predictor", "eval", "--data", str(renamed), "--bundle", str(bundle_dir),
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert len(metrics["calibrated_here"]) == 6
    assert "calibrated here" in result.output
    assert metrics["length_kendall_tau"] > 0.3
    assert 0.5 < metrics["alpacaeval_small_model_win_auc"] <= 1.0  # strengths calibrated from judgments


def test_bad_data_directories_exit_2(tmp_path):
    result = runner.invoke(app, ["predictor", "eval", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a directory" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["predictor", "train", "--data", str(tmp_path / "empty"), "--out",
                                 str(tmp_path / "b")])
    assert result.exit_code == 2 and "no prompts" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "prompts.jsonl").write_text('{"prompt_id": "a", "text": "hi"}\nnot json\n')
    result = runner.invoke(app, ["predictor", "eval", "--data", str(broken)])
    assert result.exit_code == 2 and "not JSON" in result.output


def test_eval_with_a_missing_bundle_exits_2(trained, tmp_path):
    data, _ = trained
    result = runner.invoke(app, ["predictor", "eval", "--data", str(data), "--bundle", str(tmp_path)])
    assert result.exit_code == 2 and "no predictor bundle" in result.output
