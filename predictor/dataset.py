"""Reading a data directory in the format of the project's LLM routing data, and splitting it by prompt.

DIR may hold any subset of: prompts.jsonl.gz, responses.jsonl.gz, judgments.jsonl.gz,
correctness.jsonl.gz, models.jsonl (plain .jsonl works too). Rows are cleaned as the data's README asks:
adversarial models (`variant` adversarial-null or gamed) and ensembles are dropped, as are empty outputs and
judgments with no verdict. The split is by prompt id through a fixed hash, so one prompt's rows never sit on
both sides, whatever subset of the data a directory holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

TEST_SHARE = 0.2
SPLIT_SALT = "tamer-split-v1:"
CALIBRATION_SALT = "tamer-calibration-v1:"
EXCLUDED_VARIANTS = {"adversarial-null", "gamed"}
# The strongest reference in the judgments (AlpacaEval 2.0's judge and reference)
STRONG_REFERENCE = "gpt4_1106_preview"
ROUTELLM_WEAK = "Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"


def _hash_share(salt: str, key: str) -> float:
    return int(hashlib.sha256((salt + key).encode()).hexdigest()[:12], 16) % 10000 / 10000


def is_test_prompt(prompt_id: str) -> bool:
    return _hash_share(SPLIT_SALT, prompt_id) < TEST_SHARE


def calibration_rank(prompt_id: str) -> float:
    """A fixed pseudo-random order of prompts; the first ones are a model's calibration prompts."""
    return _hash_share(CALIBRATION_SALT, prompt_id)


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    dataset: str
    text: str
    category: str | None


@dataclass(frozen=True)
class LengthRow:
    prompt_id: str
    model: str
    output_tokens: int
    truncated: bool


@dataclass(frozen=True)
class JudgmentRow:
    prompt_id: str
    model: str
    win: float  # probability the model's answer beats the strong reference's, in [0, 1]
    model_params_b: float | None


@dataclass(frozen=True)
class CorrectnessPair:
    """RouteLLM's labels for one prompt: the weak and the strong model's scores in [0, 1]."""

    prompt_id: str
    dataset: str
    weak_score: float
    strong_score: float


@dataclass
class LLMData:
    prompts: dict[str, Prompt] = field(default_factory=dict)
    lengths: list[LengthRow] = field(default_factory=list)
    judgments: list[JudgmentRow] = field(default_factory=list)
    correctness: list[CorrectnessPair] = field(default_factory=list)
    model_meta: dict[str, dict] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{len(self.prompts):,} prompts, {len(self.lengths):,} output lengths of "
                f"{len({r.model for r in self.lengths})} models, {len(self.judgments):,} judgments, "
                f"{len(self.correctness):,} correctness pairs")


def _read_jsonl(directory: Path, stem: str) -> Iterator[dict]:
    for name in (f"{stem}.jsonl.gz", f"{stem}.jsonl"):
        path = directory / name
        if path.exists():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as err:
                            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
            return


def load_llm_data(directory: Path) -> LLMData:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    data = LLMData()
    data.model_meta = {m["model"]: m for m in _read_jsonl(directory, "models")}

    def excluded(model: str, row: dict) -> bool:
        meta = data.model_meta.get(model, row)
        return meta.get("variant") in EXCLUDED_VARIANTS or bool(meta.get("is_ensemble"))

    for row in _read_jsonl(directory, "prompts"):
        data.prompts[row["prompt_id"]] = Prompt(row["prompt_id"], row.get("dataset", ""), row["text"],
                                                row.get("category"))
    for row in _read_jsonl(directory, "responses"):
        if row.get("output_empty") or excluded(row["model"], row):
            continue
        if row["prompt_id"] not in data.prompts and row.get("prompt"):
            data.prompts[row["prompt_id"]] = Prompt(row["prompt_id"], row.get("dataset", ""), row["prompt"], None)
        if row["prompt_id"] in data.prompts:
            data.lengths.append(LengthRow(row["prompt_id"], row["model"], int(row["output_tokens"]),
                                          bool(row.get("likely_truncated"))))
    judgments = [r for r in _read_jsonl(directory, "judgments")
                 if r.get("win") is not None and not excluded(r["model"], r) and r["prompt_id"] in data.prompts]
    strong_ref = [r for r in judgments if r.get("reference_model") == STRONG_REFERENCE
                  and r.get("judge") == "weighted_alpaca_eval_gpt4_turbo"]
    for row in strong_ref or judgments:
        data.judgments.append(JudgmentRow(row["prompt_id"], row["model"], float(row["win"]), row.get("model_params_b")))
    scores: dict[tuple[str, str], list[float]] = {}
    dataset_of: dict[str, str] = {}
    for row in _read_jsonl(directory, "correctness"):
        if row["model"] in (ROUTELLM_WEAK, ROUTELLM_STRONG) and row["prompt_id"] in data.prompts:
            scores.setdefault((row["prompt_id"], row["model"]), []).append(float(row["score_norm"]))
            dataset_of[row["prompt_id"]] = row.get("dataset") or data.prompts[row["prompt_id"]].dataset
    for pid in sorted({pid for pid, _ in scores}):
        weak, strong = scores.get((pid, ROUTELLM_WEAK)), scores.get((pid, ROUTELLM_STRONG))
        if weak and strong:
            data.correctness.append(CorrectnessPair(pid, dataset_of[pid], sum(weak) / len(weak),
                                                    sum(strong) / len(strong)))
    return data
