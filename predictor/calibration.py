"""The fixed calibration prompts a new model is measured on (`tamer predictor calibrate`).

48 AlpacaEval instructions (CC BY-NC 4.0, tatsu-lab/alpaca_eval) from the training split, chosen by a
fixed hash of their ids; the shipped model cards were measured on exactly these prompts, so a calibrated
model's card is comparable with theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CALIBRATION_FILE = Path(__file__).parent / "artifacts" / "calibration_prompts.jsonl"


@dataclass(frozen=True)
class CalibrationPrompt:
    prompt_id: str
    text: str


def load_calibration_prompts(path: Path = CALIBRATION_FILE, limit: int | None = None) -> list[CalibrationPrompt]:
    with path.open() as fh:
        prompts = [CalibrationPrompt(**json.loads(line)) for line in fh if line.strip()]
    return prompts[:limit] if limit is not None else prompts
