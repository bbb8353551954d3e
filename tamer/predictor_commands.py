"""`tamer predictor train | eval | calibrate`: build, score and extend the learned predictor.

train and eval read a data directory in the format of the project's LLM routing data (any subset of
prompts / responses / judgments / correctness / models). Training reads the bundled SmolLM2's tokenizer and
input embeddings (the text heads' token features) from the converted bundled model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Train, evaluate and calibrate the output-length and difficulty predictor.",
                  no_args_is_help=True, add_completion=False)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _load_data(data_dir: Path):
    from predictor.dataset import load_llm_data

    try:
        data = load_llm_data(data_dir)
    except (FileNotFoundError, ValueError, KeyError) as err:
        _fail(f"cannot read {data_dir}: {err}")
    if not data.prompts:
        _fail(f"{data_dir} holds no prompts (expected prompts.jsonl.gz or responses.jsonl.gz)")
    return data


def token_embeddings():
    """(tokenizer, input-embedding matrix) of the bundled model."""
    import numpy as np
    from safetensors import safe_open
    from tokenizers import Tokenizer

    from backends.engine.bundled import bundled_model_dir

    model_dir = bundled_model_dir()
    with safe_open(str(model_dir / "model.safetensors"), "np") as fh:
        embeddings = fh.get_tensor("model.embed_tokens.weight").astype(np.float32)
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")), embeddings


@app.command()
def train(
    data_dir: Path = typer.Option(..., "--data", help="Data directory (prompts/responses/judgments/correctness)."),
    out: Path = typer.Option(Path("predictor/artifacts/v1"), "--out", help="Bundle directory to write."),
) -> None:
    """Train the length and difficulty models and write a bundle."""
    from tqdm import tqdm

    from predictor.training import TRAINING_STEPS, train_bundle

    data = _load_data(data_dir)
    tokenizer, embeddings = token_embeddings()
    steps = tqdm(total=TRAINING_STEPS, desc="training", unit="step", file=sys.stderr)

    def progress(message: str) -> None:
        steps.set_postfix_str(message[:60])
        steps.update(1)

    try:
        bundle = train_bundle(data, tokenizer, embeddings, progress=progress)
    except ValueError as err:
        steps.close()
        _fail(str(err))
    steps.close()
    bundle.manifest["data_dir"] = data_dir.name
    bundle.manifest["created"] = time.strftime("%Y-%m-%d")
    bundle.save(out)
    typer.echo(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB)")


METRIC_ROWS = [
    ("length_kendall_tau", "length: Kendall tau per model, mean"),
    ("length_mae_log2", "length: MAE of log2 length"),
    ("length_p10_p90_coverage", "length: share inside [p10, p90]"),
    ("length_interval_width_log2", "length: mean log2(p90 / p10)"),
    ("cpt50_mmlu", "difficulty: CPT(50%) MMLU"),
    ("apgr_mmlu", "difficulty: APGR MMLU"),
    ("cpt50_gsm8k", "difficulty: CPT(50%) GSM8K"),
    ("apgr_gsm8k", "difficulty: APGR GSM8K"),
    ("apgr_mt_bench", "difficulty: APGR MT-Bench"),
    ("alpacaeval_small_model_win_auc", "difficulty: AUC small-model wins (AlpacaEval)"),
    ("predict_p50_ms", "latency: predict() p50, ms"),
    ("predict_p99_ms", "latency: predict() p99, ms"),
]


def print_report(result: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"predictor on {result.get('test_prompts', 0):,} test prompts")
    table.add_column("metric")
    table.add_column("tamer", justify="right")
    table.add_column("baselines", justify="left")
    baselines = result.get("baselines", {})
    routellm = result.get("routellm", {})
    for key, label in METRIC_ROWS:
        if key not in result:
            continue
        extra = ""
        if key == "length_kendall_tau":
            extra = ", ".join(f"{name} {b['length_kendall_tau']:.3f}" for name, b in baselines.items())
        elif key == "length_mae_log2":
            extra = ", ".join(f"{name} {b['length_mae_log2']:.3f}" for name, b in baselines.items()
                              if "length_mae_log2" in b)
        elif key.startswith(("cpt50_", "apgr_")):
            kind, ds = key.split("_", 1)
            r = routellm.get(ds, {})
            extra = f"random {r.get(f'random_{kind}', 0):.3f}, oracle {r.get(f'oracle_{kind}', 0):.3f}"
        table.add_row(escape(label), f"{result[key]:.3f}", extra)
    Console().print(table)
    if result.get("calibrated_here"):
        typer.echo(f"calibrated here on a fixed 10% of their prompts (left out of their scores): "
                   f"{', '.join(result['calibrated_here'])}")


@app.command("eval")
def evaluate(
    data_dir: Path = typer.Option(..., "--data", help="Data directory in the routing-data format."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    bundle_dir: Optional[Path] = typer.Option(None, "--bundle", help="Bundle directory (default: the shipped one)."),
) -> None:
    """Score the predictor on DIR's test split (prompts held out by a fixed hash) and print the metrics."""
    from predictor.bundle import PredictorBundle
    from predictor.evaluate import evaluate_bundle
    from predictor.learned import DEFAULT_BUNDLE_DIR

    data = _load_data(data_dir)
    try:
        bundle = PredictorBundle.load(bundle_dir or DEFAULT_BUNDLE_DIR)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    result = evaluate_bundle(bundle, data)
    print_report(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


from tamer.predictor_calibrate import calibrate as _calibrate  # noqa: E402

app.command("calibrate")(_calibrate)
