"""A local deployment's dtype and KV-cache dtype reach its engine: bf16 on CPU serves the bundled SmolLM2 through
the same kernels (the C++ CPU kernels and oneDNN-packed projections take bf16 as well as fp32)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from backends.deployment import bundled_deployment
from backends.events import FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job
from backends.local import LocalBackend


@pytest.mark.asyncio
async def test_bfloat16_deployment_serves_in_bfloat16():
    spec = dataclasses.replace(bundled_deployment(), device="cpu", dtype="bfloat16", kv_cache_gib=0.25)
    backend = LocalBackend(spec)
    await backend.start()
    try:
        assert backend.engine.dtype == torch.bfloat16 and backend.engine.cache.key.dtype == torch.bfloat16
        request = GenerationRequest(kind="chat", messages=({"role": "user", "content": "What is the capital of France?"},),
                                    temperature=0.0, max_tokens=12)
        job = Job(job_id="bf16", deployment=spec.name, model=spec.model, request=request)
        events = [event async for event in backend.generate(job)]
    finally:
        await backend.close()
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert isinstance(events[-1], FinishEvent)
    assert "Paris" in text, text


@pytest.mark.asyncio
async def test_kv_cache_dtype_reaches_the_engine():
    spec = dataclasses.replace(bundled_deployment(), device="cpu", dtype="float32", kv_cache_dtype="bfloat16",
                               kv_cache_gib=0.25)
    backend = LocalBackend(spec)
    await backend.start()
    try:
        assert backend.engine.dtype == torch.float32 and backend.engine.cache.key.dtype == torch.bfloat16
    finally:
        await backend.close()
