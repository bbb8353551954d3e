"""tamer's local inference engine: a Llama-family model, its tokenizer, and a generation loop over requests."""

from __future__ import annotations

from typing import Any

# Loaded on first access, so `import backends.engine` stays free of torch.
_LAZY = {
    "LLMEngine": "backends.engine.engine",
    "StepOutput": "backends.engine.engine",
    "SamplingParams": "backends.engine.sampling_params",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'backends.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
