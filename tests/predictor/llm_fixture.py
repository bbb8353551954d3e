"""A small data directory in the routing-data format, written by code: prompts whose answer length and
difficulty follow their wording, six models of different verbosity and strength."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

LONG_TASKS = ["Write a detailed essay about {}", "Write a long story about {}", "Explain in detail how {} works",
              "Give me ten tips about {}"]
SHORT_TASKS = ["In one word, what colour is {}?", "Answer yes or no: is {} real?", "Classify {} as good or bad.",
               "Translate '{}' into French."]
TOPICS = ["the ocean", "a red bicycle", "quantum computers", "bread baking", "the moon", "jazz music",
          "city parks", "old maps", "mountain goats", "tea", "electric cars", "chess", "volcanoes", "paper"]
MODELS = {"tiny-1b": (0.6, 0.05), "small-7b": (1.0, 0.2), "mid-13b": (1.3, 0.35), "big-70b": (1.6, 0.5),
          "verbose-7b": (2.2, 0.25), "terse-7b": (0.4, 0.1)}


def _write(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def write_fixture(directory: Path, n_prompts: int = 160, seed: int = 0) -> Path:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    prompts, responses, judgments, correctness = [], [], [], []
    for i in range(n_prompts):
        long = i % 2 == 0
        text = rng.choice(LONG_TASKS if long else SHORT_TASKS).format(rng.choice(TOPICS)) + f" (case {i})"
        pid = f"fixture-{i:04d}"
        prompts.append({"prompt_id": pid, "dataset": "fixture", "text": text, "category": None})
        for model, (verbosity, strength) in MODELS.items():
            base = 300 if long else 20
            tokens = max(1, int(base * verbosity * rng.uniform(0.6, 1.6)))
            responses.append({"prompt_id": pid, "dataset": "fixture", "prompt": text, "model": model,
                              "output_tokens": tokens, "output_empty": False, "likely_truncated": False})
            win = min(1.0, max(0.0, strength + (0.3 if not long else -0.1) + rng.uniform(-0.1, 0.1)))
            judgments.append({"prompt_id": pid, "model": model, "reference_model": "gpt4_1106_preview",
                              "judge": "weighted_alpaca_eval_gpt4_turbo", "win": win,
                              "model_params_b": float(model.split("-")[1].rstrip("b"))})
        weak = 1.0 if (not long or rng.random() < 0.3) else 0.0
        for model, score in (("Mixtral-8x7B-Instruct-v0.1", weak), ("gpt-4-1106-preview", 1.0)):
            correctness.append({"prompt_id": pid, "dataset": "routellm_mmlu", "model": model, "turn": 1,
                                "score_norm": score})
    _write(directory / "prompts.jsonl.gz", prompts)
    _write(directory / "responses.jsonl.gz", responses)
    _write(directory / "judgments.jsonl.gz", judgments)
    _write(directory / "correctness.jsonl.gz", correctness)
    return directory
