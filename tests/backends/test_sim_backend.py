"""The `sim` backend: a deterministic token stream on a timing model, resumable after any token."""

from __future__ import annotations

import time

import pytest

from backends.deployment import DeploymentSpec
from backends.events import FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job, Resume
from backends.sim import SimBackend, SimTiming, sim_tokens, token_text


def sim(url: str = "sim://?ttft_ms=0&per_token_ms=0&output_tokens=12") -> SimBackend:
    return SimBackend(DeploymentSpec(name="s", backend="sim", model="m", url=url))


async def run(backend: SimBackend, job: Job) -> list:
    await backend.start()
    return [e async for e in backend.generate(job)]


def job(prompt: str = "hello", **request) -> Job:
    return Job(job_id="j", deployment="s", model="m", request=GenerationRequest(kind="completion", prompt=prompt,
                                                                                **request))


async def test_same_request_same_tokens_and_finish():
    first, again = await run(sim(), job()), await run(sim(), job())
    assert first == again
    tokens = [e for e in first if isinstance(e, TokenEvent)]
    assert len(tokens) == 12 and first[-1] == FinishEvent("stop", prompt_tokens=2, completion_tokens=12)
    assert [t.token_ids[0] for t in tokens] == sim_tokens(job().request, 12)
    assert "".join(t.text for t in tokens) == "".join(token_text(i) for i in sim_tokens(job().request, 12))
    assert await run(sim(), job("other")) != first


async def test_max_tokens_cuts_with_length():
    events = await run(sim(), job(max_tokens=5))
    assert len(events) == 6 and events[-1].finish_reason == "length" and events[-1].completion_tokens == 5


@pytest.mark.parametrize("cut", [0, 1, 7, 11, 12])
async def test_resume_after_any_token_equals_the_uninterrupted_stream(cut):
    whole = await run(sim(), job())
    tokens = [e for e in whole if isinstance(e, TokenEvent)][:cut]
    resumed = Job(job_id="j", deployment="s", model="m", request=job().request, attempt=2,
                  resume_from=Resume(text="".join(t.text for t in tokens),
                                     token_ids=tuple(i for t in tokens for i in t.token_ids), num_tokens=cut))
    assert tokens + await run(sim(), resumed) == whole


async def test_timing_model_delays_tokens():
    backend = sim("sim://?ttft_ms=30&per_token_ms=10&output_tokens=3")
    started = time.perf_counter()
    await run(backend, job())
    assert time.perf_counter() - started >= 0.05  # 30 + 2 * 10 ms at least


def test_settings_come_from_the_url_with_clear_errors():
    assert SimTiming.from_url("") == SimTiming()
    assert SimTiming.from_url("sim://?per_token_ms=5&output_tokens=7") == SimTiming(per_token_ms=5, output_tokens=7)
    with pytest.raises(ValueError, match="unknown sim setting 'speed'.*known"):
        SimTiming.from_url("sim://?speed=3")
    with pytest.raises(ValueError, match="not a number"):
        SimTiming.from_url("sim://?per_token_ms=fast")
    with pytest.raises(ValueError, match="must look like"):
        SimTiming.from_url("http://x")
