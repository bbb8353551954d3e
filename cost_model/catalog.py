"""The shipped catalog: GPU instance offerings (prices, spot, interruption), GPU specs and model specs."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from cost_model.errors import UnknownNameError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator: usable memory, HBM bandwidth and dense tensor throughput. A measured device (a CPU) that
    runs every model in one dtype names it in `dtype`; its bf16_dense_tflops is then its matmul rate in that dtype."""

    name: str
    memory_gib: float
    mem_bandwidth_gb_per_s: float
    bf16_dense_tflops: float
    fp8_dense_tflops: float | None = None
    dtype: str | None = None  # None: models run in their own dtype

    def __post_init__(self) -> None:
        if self.memory_gib <= 0 or self.mem_bandwidth_gb_per_s <= 0 or self.bf16_dense_tflops <= 0:
            raise ValueError(f"GPU {self.name!r}: memory, bandwidth and TFLOP/s must be > 0")


@dataclass(frozen=True)
class ModelSpec:
    """One model's architecture, enough for FLOPs, weight bytes and KV-cache bytes."""

    name: str
    hf_repo: str
    num_params_b: float
    num_active_params_b: float
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    num_experts: int = 1
    num_experts_per_token: int = 1
    dtype: str = "bf16"
    max_context_tokens: int = 32768

    def __post_init__(self) -> None:
        if self.num_params_b <= 0 or self.num_layers <= 0 or self.num_kv_heads <= 0:
            raise ValueError(f"model {self.name!r}: parameters, layers and KV heads must be > 0")
        if self.dtype not in BYTES_PER_PARAM:
            raise ValueError(f"model {self.name!r}: dtype {self.dtype!r} is not one of {sorted(BYTES_PER_PARAM)}")

    @property
    def bytes_per_param(self) -> float:
        return BYTES_PER_PARAM[self.dtype]

    @property
    def weight_bytes(self) -> float:
        return self.num_params_b * 1e9 * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.bytes_per_param


BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


@dataclass(frozen=True)
class Offering:
    """One instance type in one region: GPUs, on-demand price, spot price (median over the region's zones that
    offer spot below on-demand; the cheapest zone beside it) and the spot interruption bucket (0..4)."""

    instance_type: str
    gpu: str
    num_gpus: int
    region: str
    ondemand_usd_per_hour: float
    spot_usd_per_hour: float | None = None
    spot_min_usd_per_hour: float | None = None
    spot_min_zone: str = ""
    interruption_bucket: int = 4
    vcpus: int = 0

    def __post_init__(self) -> None:
        if self.num_gpus < 1 or self.ondemand_usd_per_hour <= 0:
            raise ValueError(f"offering {self.instance_type} in {self.region}: needs >= 1 GPU and a price > 0")
        if not 0 <= self.interruption_bucket <= 4:
            raise ValueError(f"interruption_bucket must be 0..4, got {self.interruption_bucket}")

    def price_usd_per_hour(self, market: str) -> float | None:
        if market == "ondemand":
            return self.ondemand_usd_per_hour
        if market == "spot":
            return self.spot_usd_per_hour
        raise UnknownNameError(f"market {market!r} is not one of ['ondemand', 'spot']")


def _float_or_none(text: str) -> float | None:
    return float(text) if text else None


@functools.cache
def load_gpus(path: Path | None = None) -> dict[str, GpuSpec]:
    """GPU specs by short name (H100, A10G, L4, ...)."""
    with open(path or DATA_DIR / "gpus.csv") as f:
        return {r["gpu"]: GpuSpec(r["gpu"], float(r["memory_gib"]), float(r["mem_bandwidth_gb_per_s"]),
                                  float(r["bf16_dense_tflops"]), _float_or_none(r["fp8_dense_tflops"]))
                for r in csv.DictReader(f)}


@functools.cache
def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    """Model specs by name (qwen2.5-7b, llama-3.1-70b, ...)."""
    ints = {"num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size", "vocab_size",
            "num_experts", "num_experts_per_token", "max_context_tokens"}
    floats = {"num_params_b", "num_active_params_b"}
    with open(path or DATA_DIR / "models.csv") as f:
        out = {}
        for r in csv.DictReader(f):
            kw = {k: int(v) if k in ints else float(v) if k in floats else v for k, v in r.items()}
            out[r["name"]] = ModelSpec(**kw)
        return out


@functools.cache
def load_offerings(path: Path | None = None) -> tuple[Offering, ...]:
    """Every (instance type, region) with its prices."""
    with open(path or DATA_DIR / "offerings.csv") as f:
        return tuple(Offering(r["instance_type"], r["gpu"], int(r["num_gpus"]), r["region"],
                              float(r["ondemand_usd_per_hour"]), _float_or_none(r["spot_usd_per_hour"]),
                              _float_or_none(r["spot_min_usd_per_hour"]), r["spot_min_zone"],
                              int(r["interruption_bucket"] or 4), int(r["vcpus"] or 0))
                     for r in csv.DictReader(f))


def get_model(name: str) -> ModelSpec:
    models = load_models()
    if name not in models:
        raise UnknownNameError(f"unknown model {name!r}; known models: {', '.join(sorted(models))}")
    return models[name]


def get_gpu(name: str) -> GpuSpec:
    """A GPU of gpus.csv, or a device measured by `tamer profile` (data/<name>_profile.json, e.g. "cpu")."""
    gpus = load_gpus()
    if name in gpus:
        return gpus[name]
    from cost_model.device_profile import find_device_profile, profiled_devices

    profile = find_device_profile(name)
    if profile is None:
        raise UnknownNameError(f"unknown GPU {name!r}; known GPUs: {', '.join(sorted(gpus))}; profiled devices: "
                               f"{', '.join(profiled_devices()) or 'none (measure one with `tamer profile`)'}")
    return profile.spec


def find_offerings(regions: tuple[str, ...] | None = None, instance_types: tuple[str, ...] | None = None
                   ) -> tuple[Offering, ...]:
    """Offerings in the given regions / of the given instance types (None: all); unknown names raise."""
    offerings = load_offerings()
    if regions is not None:
        known = {o.region for o in offerings}
        bad = [r for r in regions if r not in known]
        if bad:
            raise UnknownNameError(f"unknown region(s) {bad}; known regions: {', '.join(sorted(known))}")
        offerings = tuple(o for o in offerings if o.region in regions)
    if instance_types is not None:
        known = {o.instance_type for o in load_offerings()}
        bad = [t for t in instance_types if t not in known]
        if bad:
            raise UnknownNameError(f"unknown instance type(s) {bad}; known: {', '.join(sorted(known))}")
        offerings = tuple(o for o in offerings if o.instance_type in instance_types)
    return offerings
