"""The `sim` backend: a timing model of a GPU serving a model, with a deterministic token stream and no text model.

For load tests and capacity planning: thousands of jobs cost no compute, and every answer is known in
advance. Token i of a request is drawn from a generator seeded by the request's content (prompt or
messages, and seed), so the same request always streams the same tokens, and a job resumed after its
worker died continues exactly where the committed tokens stop.

Timing: the first token arrives `ttft_ms + prefill_ms_per_1k_tokens * context_tokens / 1000` after the
job starts (context = prompt + resumed tokens), then one token every `per_token_ms`. The output is
`output_tokens` long (finish "stop"), or `max_tokens` if the request asks for fewer (finish "length").
Prompt tokens are counted as ceil(characters / 4). Stop strings are not modelled.

Settings come from the deployment's url, e.g.
    url = "sim://?ttft_ms=50&per_token_ms=20&output_tokens=128&prefill_ms_per_1k_tokens=30"
(every key optional; the defaults are below).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from dataclasses import dataclass, fields
from typing import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

from backends.deployment import DeploymentSpec
from backends.errors import BackendUnavailableError, ContextLengthExceededError
from backends.events import Event, FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job

WORDS = ("the", "a", "model", "token", "queue", "worker", "cheap", "fast", "GPU", "spot", "cost", "route", "plan",
         "of", "and", "to", "in", "is", "that", "it", "for", "on", "with", "as", "at", "by", "this", "from")
VOCAB_SIZE = 32_000
CHARS_PER_TOKEN = 4
DEFAULT_CONTEXT_WINDOW_TOKENS = 8192


@dataclass(frozen=True)
class SimTiming:
    ttft_ms: float = 20.0
    per_token_ms: float = 10.0
    prefill_ms_per_1k_tokens: float = 0.0
    output_tokens: int = 32

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"sim setting {f.name} must be >= 0, got {getattr(self, f.name)}")

    @classmethod
    def from_url(cls, url: str) -> "SimTiming":
        """Parse "sim://?key=value&..." (an empty url gives the defaults)."""
        if not url:
            return cls()
        parts = urlsplit(url)
        if parts.scheme != "sim":
            raise ValueError(f"a sim deployment's url must look like 'sim://?per_token_ms=10', got {url!r}")
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        for key, raw in parse_qsl(parts.query, keep_blank_values=True):
            if key not in known:
                raise ValueError(f"unknown sim setting {key!r} in {url!r}; known: {sorted(known)}")
            try:
                values[key] = int(raw) if key == "output_tokens" else float(raw)
            except ValueError:
                raise ValueError(f"sim setting {key}={raw!r} in {url!r} is not a number") from None
        return cls(**values)


def request_seed(request: GenerationRequest) -> int:
    """A stable seed from what the request asks (not from which job or worker runs it)."""
    content = json.dumps([request.kind, list(request.messages), request.prompt, request.seed], sort_keys=True)
    return int.from_bytes(hashlib.blake2b(content.encode(), digest_size=8).digest(), "little")


def sim_tokens(request: GenerationRequest, count: int) -> list[int]:
    """The first `count` token ids this request streams."""
    if count <= 0:
        return []
    rng = random.Random(request_seed(request))
    return [rng.randrange(VOCAB_SIZE) for _ in range(count)]


def token_text(token_id: int) -> str:
    return " " + WORDS[token_id % len(WORDS)]


def prompt_tokens(request: GenerationRequest) -> int:
    return max(1, math.ceil(request.prompt_chars() / CHARS_PER_TOKEN))


class SimBackend:
    """Streams sim_tokens(request) on the SimTiming clock; resumes from Job.resume_from."""

    supports_resume = True

    def __init__(self, spec: DeploymentSpec) -> None:
        self.spec = spec
        self.timing = SimTiming.from_url(spec.url)
        self.context_window_tokens = spec.context_window_tokens or DEFAULT_CONTEXT_WINDOW_TOKENS
        self._num_active = 0
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False

    def num_active(self) -> int:
        return self._num_active

    def output_length(self, request: GenerationRequest) -> tuple[int, str]:
        """(tokens, finish reason) of the whole answer."""
        num_prompt = prompt_tokens(request)
        room = self.context_window_tokens - num_prompt
        if room < 1:
            raise ContextLengthExceededError(
                f"this model's context window is {self.context_window_tokens} tokens; the prompt has {num_prompt}")
        limit = min(room, request.max_tokens) if request.max_tokens is not None else room
        if self.timing.output_tokens <= limit:
            return self.timing.output_tokens, "stop"
        return limit, "length"

    async def generate(self, job: Job) -> AsyncIterator[Event]:
        if not self._started:
            raise BackendUnavailableError(f"sim deployment {self.spec.name!r} is not started")
        request = job.request
        total, reason = self.output_length(request)
        num_prompt = prompt_tokens(request)
        done = job.resume_from.num_tokens if job.resume_from is not None else 0
        ids = sim_tokens(request, total)
        t = self.timing
        self._num_active += 1
        try:
            first_ms = t.ttft_ms + t.prefill_ms_per_1k_tokens * (num_prompt + done) / 1000
            for i in range(done, total):
                delay_ms = first_ms if i == done else t.per_token_ms
                await asyncio.sleep(delay_ms / 1000)
                yield TokenEvent(text=token_text(ids[i]), num_tokens=1, token_ids=(ids[i],))
            yield FinishEvent(finish_reason=reason, prompt_tokens=num_prompt, completion_tokens=total)
        finally:
            self._num_active -= 1
