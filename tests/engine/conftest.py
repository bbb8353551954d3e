"""Fixtures for the engine tests: the bundled SmolLM2 engine (loaded once) and tiny random-weight models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.tiny_models import save_tiny_model


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    """The bundled model converted to a Hugging Face directory (converted on the first run, cached after)."""
    from backends.engine.bundled import bundled_model_dir

    started = time.perf_counter()
    path = bundled_model_dir()
    print(f"\nbundled model ready in {time.perf_counter() - started:.1f} s at {path}")
    return path


@pytest.fixture(scope="session")
def bundled_engine(bundled_dir):
    from backends.engine.engine import LLMEngine

    started = time.perf_counter()
    engine = LLMEngine.from_pretrained(None, device="cpu", max_num_seqs=8)
    print(f"\nbundled engine loaded in {time.perf_counter() - started:.1f} s")
    return engine


@pytest.fixture(scope="session")
def tokenizer(bundled_engine):
    return bundled_engine.tokenizer


@pytest.fixture(scope="session")
def make_tiny_model(tmp_path_factory, bundled_dir):
    """make_tiny_model(kind, **config) -> directory of a tiny random-weight transformers model of `kind`."""

    def make(kind: str, **overrides) -> Path:
        return _save_tiny_model(kind, tmp_path_factory.mktemp(f"tiny-{kind}"), bundled_dir, **overrides)

    return make


@pytest.fixture(scope="session")
def load_hf():
    """load_hf(model_dir) -> the same weights in Hugging Face transformers (skips when it is not installed)."""
    return _hf_load


def _save_tiny_model(kind: str, out_dir: Path, bundled_dir: Path, **overrides) -> Path:
    pytest.importorskip("transformers")
    return save_tiny_model(kind, out_dir, bundled_dir, **overrides)


def _hf_load(model_dir: Path):
    transformers = pytest.importorskip("transformers")
    import torch

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    dtype_arg = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in transformers 4.56
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="eager", **{dtype_arg: torch.float32}
    )
    return model.eval()
