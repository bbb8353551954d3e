"""Measured device profiles: a machine that is not in gpus.csv (this CPU) described by measured peaks and
efficiencies fitted to the step times of a real engine, so that the performance model and the simulator
can stand for it.

A profile holds the device's measured peak memory bandwidth and matmul throughput (in the dtype it runs
models in), the KV-cache size the engine had, and the step samples it was fitted to: each sample is one
engine step (prefill tokens, their sum of causal squares, decoding sequences, their total context) and its
wall time. fit_efficiency chooses compute_frac, bandwidth_frac in (0, 1], overhead_s_per_layer >= 0 and
overhead_s_per_seq >= 0 minimising a robust (soft L1) loss on log(step time), as bench/perf_model_fit.py does
for GPUs; then fit_token_factors records, per step size, the median of what the fitted roofline still misses
(a CPU's matmul library runs some shapes faster or slower than the one shape its peak was measured at: on
the shipped profile, steps of 64-512 tokens at about 0.6 of the fitted time). Profiles are found by name:
cost_model/data/<name>_profile.json.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cost_model.catalog import DATA_DIR, GpuSpec, ModelSpec, get_model
from cost_model.errors import CostModelError
from cost_model.perf import ACTIVATION_RESERVE_GIB_PER_GPU, MEMORY_UTILIZATION, Efficiency, PerfModel

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class StepSample:
    """One measured engine step."""

    prefill_tokens: int
    prefill_sq_tokens: int
    decode_seqs: int
    decode_ctx_tokens: int
    step_s: float

    def __post_init__(self) -> None:
        if self.prefill_tokens + self.decode_seqs <= 0 or self.step_s <= 0:
            raise ValueError(f"a step sample needs tokens and a time > 0, got {self}")


@dataclass(frozen=True)
class DeviceProfile:
    """A measured device: its spec (as the perf model reads a GPU's), fitted efficiency and the evidence."""

    name: str
    model: str  # the catalog model the steps were measured with
    spec: GpuSpec
    efficiency: Efficiency
    kv_capacity_tokens: int
    samples: tuple[StepSample, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)  # machine, load, summary tables, fit error

    def perf(self, model: str | None = None) -> PerfModel:
        return PerfModel(get_model(model or self.model), self.spec, 1, self.efficiency)

    def to_json(self) -> dict:
        spec = dataclasses.asdict(self.spec)
        return {"device": self.name, "model": self.model, "spec": spec,
                "efficiency": dataclasses.asdict(self.efficiency), "kv_capacity_tokens": self.kv_capacity_tokens,
                **self.extra, "samples": [dataclasses.astuple(s) for s in self.samples],
                "sample_columns": [f.name for f in dataclasses.fields(StepSample)]}

    def to_text(self) -> str:
        """The profile as JSON text, one step sample a line."""
        doc = self.to_json()
        rows = ",\n  ".join(json.dumps(list(s)) for s in doc.pop("samples"))
        return json.dumps(doc, indent=1)[:-2] + f',\n "samples": [\n  {rows}\n ]\n}}\n'

    @classmethod
    def from_json(cls, doc: dict) -> "DeviceProfile":
        try:
            known = {"device", "model", "spec", "efficiency", "kv_capacity_tokens", "samples", "sample_columns"}
            return cls(doc["device"], doc["model"], GpuSpec(**doc["spec"]), Efficiency(**doc["efficiency"]),
                       int(doc["kv_capacity_tokens"]), tuple(StepSample(*s) for s in doc.get("samples", [])),
                       {k: v for k, v in doc.items() if k not in known})
        except (KeyError, TypeError) as err:
            raise CostModelError(f"not a device profile ({err}); write one with `tamer profile`") from err


def profile_path(name: str) -> Path:
    return DATA_DIR / f"{name}_profile.json"


def find_device_profile(name: str) -> DeviceProfile | None:
    """The shipped profile of device `name` (cost_model/data/<name>_profile.json), or None."""
    if not PROFILE_NAME.match(name):
        return None
    path = profile_path(name)
    return read_device_profile(path) if path.is_file() else None


def profiled_devices() -> list[str]:
    return sorted(p.name.removesuffix("_profile.json") for p in DATA_DIR.glob("*_profile.json"))


def read_device_profile(path: str | Path) -> DeviceProfile:
    path = Path(path)
    if not path.is_file():
        raise CostModelError(f"device profile {path} does not exist; measure one with `tamer profile --out {path}`")
    return DeviceProfile.from_json(json.loads(path.read_text()))


def memory_gib_for_kv(model: ModelSpec, kv_capacity_tokens: int) -> float:
    """Device memory that gives the perf model a KV cache of kv_capacity_tokens beside the weights (inverse of
    PerfModel.kv_capacity_tokens)."""
    need_bytes = model.weight_bytes + (kv_capacity_tokens + 0.5) * model.kv_bytes_per_token
    return (need_bytes / 2**30 + ACTIVATION_RESERVE_GIB_PER_GPU) / MEMORY_UTILIZATION


def predict_step_s(perf: PerfModel, samples: tuple[StepSample, ...] | list[StepSample],
                   efficiency: Efficiency | None = None) -> np.ndarray:
    return np.array([perf.step_s(s.prefill_tokens, s.prefill_sq_tokens, s.decode_seqs, s.decode_ctx_tokens,
                                 efficiency) for s in samples])


def fit_efficiency(perf: PerfModel, samples: list[StepSample]) -> Efficiency:
    """compute_frac, bandwidth_frac (<= 1), overhead_s_per_layer and overhead_s_per_seq (>= 0) that best explain
    the measured steps (robust least squares on log time); step_scale stays 1."""
    from scipy.optimize import least_squares

    if len(samples) < 3:
        raise CostModelError(f"fitting needs at least 3 step samples, got {len(samples)}")
    measured = np.log([s.step_s for s in samples])

    def efficiency(x: np.ndarray) -> Efficiency:
        return Efficiency(float(x[0]), float(x[1]), float(x[2]) * 1e-6, 1.0, float(x[3]) * 1e-6)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(predict_step_s(perf, samples, efficiency(x))) - measured

    sol = least_squares(residuals, x0=[0.5, 0.5, 100.0, 100.0], bounds=([1e-3, 1e-3, 0.0, 0.0], [1.0, 1.0, 1e6, 1e6]),
                        loss="soft_l1", f_scale=0.2)  # a step slowed by another process weighs less
    return efficiency(sol.x)


ANCHOR_TOKENS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)


def fit_token_factors(perf: PerfModel, samples: list[StepSample]) -> tuple[tuple[int, float], ...]:
    """Median measured / predicted step time of the samples nearest (in log tokens) to each anchor token count:
    what the roofline misses that depends on a step's size (slow matmul shapes of a CPU's BLAS)."""
    tokens = np.array([s.prefill_tokens + s.decode_seqs for s in samples], dtype=float)
    ratio = np.array([s.step_s for s in samples]) / predict_step_s(perf, samples)
    anchors = np.array(ANCHOR_TOKENS, dtype=float)
    nearest = np.abs(np.log(tokens)[:, None] - np.log(anchors)[None, :]).argmin(axis=1)
    return tuple((int(anchors[k]), float(np.median(ratio[nearest == k]))) for k in sorted(set(nearest.tolist())))


def step_mape_pct(perf: PerfModel, samples: list[StepSample]) -> float:
    measured = np.array([s.step_s for s in samples])
    return float(np.mean(np.abs(predict_step_s(perf, samples) - measured) / measured) * 100)


def fit_device_profile(name: str, model: str, dtype: str, mem_bandwidth_gb_per_s: float, matmul_tflops: float,
                       kv_capacity_tokens: int, samples: list[StepSample], extra: dict | None = None
                       ) -> DeviceProfile:
    """A profile from measured peaks, the engine's KV capacity and its step samples (efficiencies fitted)."""
    if not PROFILE_NAME.match(name):
        raise CostModelError(f"device name {name!r} must be lower-case letters, digits, '-' or '_'")
    spec_model = dataclasses.replace(get_model(model), dtype=dtype)
    spec = GpuSpec(name, memory_gib_for_kv(spec_model, kv_capacity_tokens), mem_bandwidth_gb_per_s, matmul_tflops,
                   None, dtype)
    perf = PerfModel(spec_model, spec, 1)
    roofline_fit = dataclasses.replace(perf, efficiency=fit_efficiency(perf, samples))
    efficiency = dataclasses.replace(roofline_fit.efficiency,
                                     token_factors=fit_token_factors(roofline_fit, samples))
    fitted = dataclasses.replace(perf, efficiency=efficiency)
    info = {"fit": {"num_steps": len(samples), "step_mape_pct": step_mape_pct(fitted, samples),
                    "step_mape_pct_without_token_factors": step_mape_pct(roofline_fit, samples)}, **(extra or {})}
    return DeviceProfile(name, model, spec, efficiency, kv_capacity_tokens, tuple(samples), info)
