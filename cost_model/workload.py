"""Workloads: request traces (Azure LLM CSV, Mooncake JSONL), synthetic Poisson loads, rescaling, size buckets."""

from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from cost_model.errors import CostModelError, EmptyWorkloadError

INPUT_EDGES = (0, 256, 1024, 2048, 4096, 8192, 16384, 10**9)
OUTPUT_EDGES = (0, 64, 256, 512, 10**9)


@dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival: arrival_s (from 0), input and output token counts, optional quality tier."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    tier: np.ndarray | None = None
    name: str = "workload"

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if n == 0:
            raise EmptyWorkloadError(f"{self.name}: the workload has no requests; give a trace with at least one row "
                                     f"or a --rate above 0")
        if len(self.input_tokens) != n or len(self.output_tokens) != n or (self.tier is not None and len(self.tier) != n):
            raise CostModelError(f"{self.name}: arrival, input, output (and tier) columns differ in length")

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def duration_s(self) -> float:
        """Span of the arrivals (at least 1 s)."""
        return max(1.0, float(self.arrival_s[-1] - self.arrival_s[0]))

    @property
    def rate_req_per_s(self) -> float:
        return len(self) / self.duration_s

    def rescaled(self, rate_req_per_s: float | None = None, factor: float | None = None) -> "Workload":
        """The same requests with arrival times compressed or stretched to a new mean rate (or by a factor)."""
        if rate_req_per_s is not None:
            if rate_req_per_s <= 0:
                raise CostModelError(f"rate must be > 0 req/s, got {rate_req_per_s}")
            factor = rate_req_per_s / self.rate_req_per_s
        if factor is None or factor <= 0:
            raise CostModelError(f"rescale factor must be > 0, got {factor}")
        return Workload(self.arrival_s / factor, self.input_tokens, self.output_tokens, self.tier,
                        f"{self.name} x{factor:.3g}")

    def tiled(self, duration_s: float) -> "Workload":
        """Repeat the arrivals back to back until they span duration_s (a compressed trace keeps its length)."""
        copies = max(1, math.ceil(duration_s / self.duration_s))
        period = self.duration_s + 1.0 / self.rate_req_per_s
        arrival = np.concatenate([self.arrival_s + k * period for k in range(copies)])
        keep = arrival <= duration_s if copies > 1 else np.ones(len(arrival), dtype=bool)
        tier = None if self.tier is None else np.tile(self.tier, copies)[keep]
        return Workload(arrival[keep], np.tile(self.input_tokens, copies)[keep],
                        np.tile(self.output_tokens, copies)[keep], tier, self.name)

    def head(self, num_requests: int) -> "Workload":
        t = None if self.tier is None else self.tier[:num_requests]
        return Workload(self.arrival_s[:num_requests], self.input_tokens[:num_requests],
                        self.output_tokens[:num_requests], t, self.name)

    def peak_factor(self, queue_s: float, quantile: float = 0.99,
                    windows_s: tuple[float, ...] = (1, 3, 10, 30, 60, 180, 600)) -> float:
        """Capacity needed, as a multiple of the mean rate (>= 1), to serve a burst of N(W) arrivals within
        W + queue_s: the largest over windows W of the `quantile` (over start positions) of N(W) / (W + queue_s).
        With queue_s = a share of the TTFT target, bursts shorter than it are absorbed by queueing."""
        if queue_s <= 0:
            raise CostModelError(f"queue_s must be > 0, got {queue_s}")
        best = 0.0
        for w in windows_s:
            if w > self.duration_s:
                break
            counts = np.searchsorted(self.arrival_s, self.arrival_s + w) - np.arange(len(self))
            best = max(best, float(np.quantile(counts, quantile)) / (w + queue_s))
        return max(1.0, best / self.rate_req_per_s)


def _make(arrival, inp, out, name, tier=None) -> Workload:
    arrival = np.asarray(arrival, dtype=float)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - (arrival.min() if len(arrival) else 0.0)
    inp = np.maximum(1, np.asarray(inp, dtype=np.int64)[order])
    out = np.maximum(1, np.asarray(out, dtype=np.int64)[order])
    return Workload(arrival, inp, out, None if tier is None else np.asarray(tier)[order], name)


def read_azure_csv(path: Path) -> Workload:
    """Azure LLM inference trace 2023: TIMESTAMP, ContextTokens, GeneratedTokens."""
    arrival, inp, out = [], [], []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        for row in csv.DictReader(f):
            stamp = row["TIMESTAMP"]
            base, _, frac = stamp.partition(".")
            t = datetime.fromisoformat(base).timestamp() + (float("0." + frac) if frac else 0.0)
            arrival.append(t)
            inp.append(int(row["ContextTokens"]))
            out.append(int(row["GeneratedTokens"]))
    return _make(arrival, inp, out, Path(path).stem)


def read_mooncake_jsonl(path: Path) -> Workload:
    """Mooncake trace: one JSON object per line with timestamp (ms), input_length, output_length."""
    arrival, inp, out = [], [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                arrival.append(r["timestamp"] / 1e3)
                inp.append(r["input_length"])
                out.append(r["output_length"])
    return _make(arrival, inp, out, Path(path).stem)


def read_trace(path: str | Path) -> Workload:
    """Read a trace, choosing the reader by extension (.csv/.csv.gz: Azure; .jsonl: Mooncake)."""
    path = Path(path)
    if not path.exists():
        raise CostModelError(f"trace file {path} does not exist")
    if path.name.endswith((".csv", ".csv.gz")):
        return read_azure_csv(path)
    if path.name.endswith(".jsonl"):
        return read_mooncake_jsonl(path)
    raise CostModelError(f"trace {path}: unknown format; use an Azure LLM CSV (.csv) or a Mooncake JSONL (.jsonl)")


def synthetic(rate_req_per_s: float, input_tokens_mean: float, output_tokens_mean: float, duration_s: float = 600.0,
              seed: int = 0) -> Workload:
    """Poisson arrivals at rate_req_per_s with log-normal input and output lengths (sigma 0.8) of the given means."""
    if rate_req_per_s <= 0 or input_tokens_mean <= 0 or output_tokens_mean <= 0:
        raise CostModelError("rate, input_tokens_mean and output_tokens_mean must all be > 0")
    rng = np.random.default_rng(seed)
    n = max(1, int(rng.poisson(rate_req_per_s * duration_s)))
    arrival = np.sort(rng.uniform(0, duration_s, n))
    sigma = 0.8

    def lengths(mean: float) -> np.ndarray:
        return np.maximum(1, rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, n)).astype(np.int64)

    return _make(arrival, lengths(input_tokens_mean), lengths(output_tokens_mean), f"poisson {rate_req_per_s:g}/s")


@dataclass(frozen=True)
class Bucket:
    """Requests of one size class (and tier): their rate and the sizes the planner sizes capacity with."""

    index: int
    rate_req_per_s: float
    input_tokens_mean: float
    input_tokens_p99: float
    output_tokens_mean: float
    output_tokens_p99: float
    input_range: tuple[int, int] = (0, 10**9)
    output_range: tuple[int, int] = (0, 10**9)
    tier: str = ""
    num_requests: int = 0
    extra: dict = field(default_factory=dict, compare=False)


def bucket_index(input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
    """Size-bucket id of each request: input bin * number of output bins + output bin."""
    i = np.searchsorted(INPUT_EDGES, input_tokens, side="right") - 1
    o = np.searchsorted(OUTPUT_EDGES, output_tokens, side="right") - 1
    return i * (len(OUTPUT_EDGES) - 1) + o


def bucketize(workload: Workload, rate_scale: float = 1.0) -> list[Bucket]:
    """Group requests into size buckets; each bucket's rate is its share of the mean rate times rate_scale."""
    ids = bucket_index(workload.input_tokens, workload.output_tokens)
    tiers = workload.tier if workload.tier is not None else np.full(len(workload), "")
    out = []
    num_out = len(OUTPUT_EDGES) - 1
    for key in sorted(set(zip(ids.tolist(), tiers.tolist()))):
        mask = (ids == key[0]) & (tiers == key[1])
        inp, outp = workload.input_tokens[mask], workload.output_tokens[mask]
        i, o = divmod(key[0], num_out)
        out.append(Bucket(len(out), float(mask.sum()) / workload.duration_s * rate_scale, float(inp.mean()),
                          float(np.quantile(inp, 0.99)), float(outp.mean()), float(np.quantile(outp, 0.99)),
                          (INPUT_EDGES[i], INPUT_EDGES[i + 1]), (OUTPUT_EDGES[o], OUTPUT_EDGES[o + 1]), str(key[1]),
                          int(mask.sum())))
    return out
