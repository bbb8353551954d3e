"""Resume on the real bundled SmolLM2 (greedy): a job continued from any committed token, by a fresh
request that re-prefills prompt + committed tokens, streams exactly the text the uninterrupted run did."""

from __future__ import annotations

import dataclasses

import pytest
import pytest_asyncio

from backends.deployment import bundled_deployment
from backends.events import FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job, Resume
from backends.local import LocalBackend


def chat(content: str, **sampling) -> GenerationRequest:
    return GenerationRequest(kind="chat", messages=({"role": "user", "content": content},), temperature=0.0,
                             **sampling)


async def run(backend: LocalBackend, job: Job) -> list:
    return [e async for e in backend.generate(job)]


def resumed(job: Job, whole: list, cut: int) -> Job:
    tokens = [e for e in whole if isinstance(e, TokenEvent)][:cut]
    return dataclasses.replace(job, job_id=f"{job.job_id}-cut{cut}", attempt=2, resume_from=Resume(
        text="".join(t.text for t in tokens), token_ids=tuple(i for t in tokens for i in t.token_ids),
        num_tokens=sum(t.num_tokens for t in tokens)))


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend():
    b = LocalBackend(dataclasses.replace(bundled_deployment(), max_concurrency=4, device="cpu"))
    await b.start()
    yield b
    await b.close()


async def check_resumes(backend: LocalBackend, job: Job, cuts) -> list:
    """Run `job` whole, then resumed after each cut (counted from the end if negative); compare."""
    whole = await run(backend, job)
    finish = whole[-1]
    assert isinstance(finish, FinishEvent)
    num_tokens = sum(1 for e in whole if isinstance(e, TokenEvent))
    for cut in cuts:
        cut = max(1, min(num_tokens + cut if cut < 0 else cut, num_tokens))
        job2 = resumed(job, whole, cut)
        rest = await run(backend, job2)
        assert job2.resume_from.text + text_of(rest) == text_of(whole), f"cut after {cut} tokens"
        assert rest[-1] == finish, f"cut after {cut} tokens"
    return whole


@pytest.mark.asyncio(loop_scope="module")
async def test_greedy_resume_equals_an_uninterrupted_run(backend):
    job = Job(job_id="story", deployment="local-smollm2", model="m",
              request=chat("Write two sentences about a dragon.", max_tokens=16))
    whole = await check_resumes(backend, job, cuts=[1, 8, 15])
    assert whole[-1].finish_reason == "length" and whole[-1].completion_tokens == 16


@pytest.mark.asyncio(loop_scope="module")
async def test_resume_across_a_stop_string_and_at_the_eos(backend):
    probe = Job(job_id="probe", deployment="local-smollm2", model="m",
                request=chat("What is the capital of France? Answer in one short sentence.", max_tokens=24))
    text = text_of(await run(backend, probe))
    words = text.split()
    assert len(words) >= 4, text
    stop = " " + words[len(words) // 2]  # a stop string inside the answer: text before it is held back
    stopped = dataclasses.replace(probe, job_id="stopped", request=dataclasses.replace(probe.request, stop=(stop,)))
    whole = await check_resumes(backend, stopped, cuts=[-3, -2, -1, 10_000])
    assert whole[-1].finish_reason == "stop" and stop not in text_of(whole) and text.startswith(text_of(whole))
    # every token committed (the EOS among them) but not the finish: the resumed attempt only finishes
    whole = await check_resumes(backend, dataclasses.replace(probe, job_id="eos"), cuts=[10_000])
    assert whole[-1].finish_reason == "stop", "the probe should end with EOS inside its max_tokens"
