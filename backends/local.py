"""The `local` backend: tamer's own engine (backends/engine) running a model in this process.

Resume: a job taken over from a worker that died comes with `resume_from`, the token ids the first
attempt already streamed. The engine is given prompt + those ids as its prompt (one prefill) and the
remaining token budget; this backend replays the committed ids through its own detokenizer, exactly as
the engine did the first time (same context, same stop strings), so text held back at the cut (a
partial character, a possible stop-string start) comes out once, and a stop string that spans the cut
is still found. With greedy decoding the final text equals an uninterrupted run. A seeded sampled
request resumes with a fresh generator, so its tail differs from the run that died.

Priority: a job's priority (the router's predicted output tokens) is its priority in the engine's
scheduler, so requests waiting for a batch slot start shortest-predicted first, with the scheduler's
aging; equal priorities start in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from backends.deployment import BUNDLED_MODEL, DeploymentSpec
from backends.engine_thread import EngineThread
from backends.errors import BackendUnavailableError, ContextLengthExceededError, InternalError, InvalidRequestError
from backends.events import Event, FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job

log = logging.getLogger("tamer.local")

_LARGE_PROMPT_CHARS = 20_000  # tokenize off the event loop above this size


class LocalBackend:
    supports_resume = True

    def __init__(self, spec: DeploymentSpec) -> None:
        self.spec = spec
        self.engine = None
        self._thread: EngineThread | None = None

    async def start(self) -> None:
        from backends.engine.engine import LLMEngine

        source = self.spec.path or (None if self.spec.model == BUNDLED_MODEL else self.spec.model)
        self.engine = await asyncio.to_thread(
            LLMEngine.from_pretrained, source, device=self.spec.device or None, dtype=self.spec.dtype or None,
            max_num_seqs=self.spec.max_concurrency, kv_cache_gib=self.spec.kv_cache_gib or None,
            kv_cache_dtype=self.spec.kv_cache_dtype or None,
        )
        self._thread = EngineThread(self.engine)
        self._thread.start()
        log.info("local deployment %s ready: %s, context %d tokens", self.spec.name, self.engine.model_name,
                 self.engine.max_model_len)

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.stop)
            self._thread = None

    @property
    def context_window_tokens(self) -> int:
        return self.engine.max_model_len if self.engine is not None else 0

    def num_active(self) -> int:
        return self._thread.num_active() if self._thread is not None else 0

    def encode(self, request: GenerationRequest) -> list[int]:
        tokenizer = self.engine.tokenizer
        if request.kind == "chat":
            try:
                text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True)
            except Exception as err:
                raise InvalidRequestError(f"messages do not fit this model's chat template: {err}",
                                          param="messages") from err
            return tokenizer.encode(text, add_special_tokens=False)
        return tokenizer.encode(request.prompt, add_special_tokens=False)

    def sampling_for(self, request: GenerationRequest, num_prompt_tokens: int):
        from backends.engine.sampling_params import SamplingParams

        max_model_len = self.engine.max_model_len
        room = max_model_len - num_prompt_tokens
        if room < 1:
            raise ContextLengthExceededError(
                f"this model's context window is {max_model_len} tokens; the prompt has {num_prompt_tokens}",
            )
        max_tokens = room if request.max_tokens is None else request.max_tokens
        if max_tokens > room:
            raise ContextLengthExceededError(
                f"this model's context window is {max_model_len} tokens; the prompt has {num_prompt_tokens} "
                f"and max_tokens asks for {max_tokens} more. Lower max_tokens to at most {room}.",
                param="max_tokens",
            )
        default_temperature, default_top_p = self.spec.sampling_defaults
        temperature = default_temperature if request.temperature is None else request.temperature
        top_p = default_top_p if request.top_p is None else request.top_p
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              seed=request.seed, stop=request.stop)

    async def generate(self, job: Job) -> AsyncIterator[Event]:
        if self._thread is None:
            raise BackendUnavailableError(f"local deployment {self.spec.name!r} is not started")
        request = job.request
        if request.prompt_chars() > _LARGE_PROMPT_CHARS:
            prompt_ids = await asyncio.to_thread(self.encode, request)
        else:
            prompt_ids = self.encode(request)
        sampling = self.sampling_for(request, len(prompt_ids))
        if job.resume_from is not None and job.resume_from.num_tokens > 0:
            async for event in self._resume(job, prompt_ids, sampling):
                yield event
            return
        sink = self._thread.submit(job.job_id, prompt_ids, sampling, priority=engine_priority(job))
        finished = False
        try:
            while True:
                out = await _next_output(sink)
                if out.new_text or out.new_token_ids:
                    yield TokenEvent(text=out.new_text, num_tokens=len(out.new_token_ids),
                                     token_ids=tuple(out.new_token_ids))
                if out.finished:
                    finished = True
                    yield FinishEvent(finish_reason=out.finish_reason or "stop",
                                      prompt_tokens=out.num_prompt_tokens,
                                      completion_tokens=out.num_output_tokens)
                    return
        finally:
            if not finished:
                self._thread.abort(job.job_id)

    async def _resume(self, job: Job, prompt_ids: list[int], sampling) -> AsyncIterator[Event]:
        """Continue a job after the tokens an earlier attempt committed (see the module docstring)."""
        import dataclasses

        from backends.engine.detokenizer import IncrementalDetokenizer

        resume = job.resume_from
        committed = [int(t) for t in resume.token_ids]
        if len(committed) != resume.num_tokens:
            raise InternalError(f"job {job.job_id}: cannot resume, {resume.num_tokens} tokens were committed but "
                                f"only {len(committed)} token ids were recorded")
        stop_ids = set(sampling.stop_token_ids) | set(self.engine.tokenizer.eos_token_ids)
        max_output = min(sampling.max_tokens, self.engine.max_model_len - len(prompt_ids))
        detok = IncrementalDetokenizer(self.engine.tokenizer.decode, stop=sampling.stop, context_ids=prompt_ids)
        state = _Continuation(detok, frozenset(stop_ids), max_output)
        replayed = "".join(state.add(t) for t in committed if state.reason is None)
        if not replayed.startswith(resume.text):
            log.warning("job %s: the committed text does not match its token ids; continuing after the ids",
                        job.job_id)
        pending = replayed[len(resume.text):] if replayed.startswith(resume.text) else ""
        if pending:
            yield TokenEvent(text=pending, num_tokens=0)
        if state.reason is not None:
            yield FinishEvent(finish_reason=state.reason, prompt_tokens=len(prompt_ids),
                              completion_tokens=state.num_tokens)
            return
        rest = dataclasses.replace(sampling, max_tokens=max_output - state.num_tokens, stop=())
        request_id = f"{job.job_id}#{job.attempt}"
        sink = self._thread.submit(request_id, prompt_ids + committed, rest, priority=engine_priority(job))
        finished = False
        try:
            while True:
                out = await _next_output(sink)
                for token_id in out.new_token_ids:
                    text = state.add(token_id)
                    yield TokenEvent(text=text, num_tokens=1, token_ids=(token_id,))
                    if state.reason is not None:
                        finished = True
                        yield FinishEvent(finish_reason=state.reason, prompt_tokens=len(prompt_ids),
                                          completion_tokens=state.num_tokens)
                        return
                if out.finished:  # the engine's budget and stop ids are the same as ours: not reached
                    finished = True
                    yield FinishEvent(finish_reason=out.finish_reason or "stop", prompt_tokens=len(prompt_ids),
                                      completion_tokens=state.num_tokens)
                    return
        finally:
            if not finished:
                self._thread.abort(request_id)


def engine_priority(job: Job) -> float:
    """The engine's priority for a job: its queue priority (predicted output tokens, lower first), >= 0."""
    return max(float(job.priority), 0.0)


async def _next_output(sink: asyncio.Queue):
    """The engine thread's next StepOutput for a request; its errors become the client's errors."""
    out = await sink.get()
    if isinstance(out, ValueError):
        raise InvalidRequestError(str(out))
    if isinstance(out, Exception):
        raise BackendUnavailableError(f"local engine failed: {out}")
    return out


class _Continuation:
    """The engine's per-token end-of-generation rule (stop ids, stop strings, length), over our detokenizer."""

    def __init__(self, detok, stop_ids: frozenset[int], max_output: int) -> None:
        self.detok = detok
        self.stop_ids = stop_ids
        self.max_output = max_output
        self.num_tokens = 0
        self.reason: str | None = None

    def add(self, token_id: int) -> str:
        self.num_tokens += 1
        if token_id in self.stop_ids:
            self.reason = "stop"
            return self.detok.flush()
        text = self.detok.add(token_id)
        if self.detok.stop_string is not None:
            self.reason = "stop"
        elif self.num_tokens >= self.max_output:
            self.reason = "length"
            text += self.detok.flush()
        return text
