"""The `local` backend: tamer's own engine (backends/engine) running a model in this process."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from backends.deployment import BUNDLED_MODEL, DeploymentSpec
from backends.engine_thread import EngineThread
from backends.errors import BackendUnavailableError, ContextLengthExceededError, InvalidRequestError
from backends.events import Event, FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job

log = logging.getLogger("tamer.local")

_LARGE_PROMPT_CHARS = 20_000  # tokenize off the event loop above this size


class LocalBackend:
    def __init__(self, spec: DeploymentSpec) -> None:
        self.spec = spec
        self.engine = None
        self._thread: EngineThread | None = None

    async def start(self) -> None:
        from backends.engine.engine import LLMEngine

        source = self.spec.path or (None if self.spec.model == BUNDLED_MODEL else self.spec.model)
        self.engine = await asyncio.to_thread(
            LLMEngine.from_pretrained, source, device=self.spec.device or None,
            max_num_seqs=self.spec.max_concurrency, kv_cache_gib=self.spec.kv_cache_gib or None,
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
        temperature = self.spec.default_temperature if request.temperature is None else request.temperature
        top_p = self.spec.default_top_p if request.top_p is None else request.top_p
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
        sink = self._thread.submit(job.job_id, prompt_ids, sampling)
        finished = False
        try:
            while True:
                out = await sink.get()
                if isinstance(out, ValueError):
                    raise InvalidRequestError(str(out))
                if isinstance(out, Exception):
                    raise BackendUnavailableError(f"local engine failed: {out}")
                if out.new_text or out.new_token_ids:
                    yield TokenEvent(text=out.new_text, num_tokens=len(out.new_token_ids))
                if out.finished:
                    finished = True
                    yield FinishEvent(finish_reason=out.finish_reason or "stop",
                                      prompt_tokens=out.num_prompt_tokens,
                                      completion_tokens=out.num_output_tokens)
                    return
        finally:
            if not finished:
                self._thread.abort(job.job_id)
