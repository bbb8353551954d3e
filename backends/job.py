"""A job: one generation request, already routed to a deployment, as it travels through the work queue."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

RequestKind = Literal["chat", "completion"]


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, independent of which backend runs it (OpenAI's fields, validated)."""

    kind: RequestKind
    messages: tuple[dict[str, Any], ...] = ()  # chat: ({"role": ..., "content": str}, ...)
    prompt: str = ""  # completion
    max_tokens: int | None = None  # None: up to the model's context window
    temperature: float | None = None  # None: the deployment's default
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("chat", "completion"):
            raise ValueError(f"kind must be 'chat' or 'completion', got {self.kind!r}")
        if self.kind == "chat" and not self.messages:
            raise ValueError("a chat request needs at least one message")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def prompt_chars(self) -> int:
        """Characters of input text: a cheap size measure the router uses before any tokenizer runs."""
        if self.kind == "completion":
            return len(self.prompt)
        return sum(len(str(m.get("content") or "")) for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "messages": [dict(m) for m in self.messages], "prompt": self.prompt,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "stop": list(self.stop), "stream": self.stream}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationRequest":
        data = dict(data)
        data["messages"] = tuple(data.get("messages") or ())
        data["stop"] = tuple(data.get("stop") or ())
        return cls(**data)


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Resume:
    """Output an earlier attempt of the job already committed toward its client (a worker died mid-stream).

    The next attempt re-prefills the prompt plus `token_ids` and generates on, emitting only what comes
    after `text`; `num_tokens` counts the committed completion tokens (equal to len(token_ids) where the
    backend reports ids).
    """

    text: str = ""
    token_ids: tuple[int, ...] = ()
    num_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Resume":
        return cls(text=str(data.get("text", "")), token_ids=tuple(int(t) for t in data.get("token_ids") or ()),
                   num_tokens=int(data.get("num_tokens", 0)))


@dataclass(frozen=True)
class Job:
    """A routed request: which deployment runs it, which model name to ask that backend for, and its priority."""

    job_id: str
    deployment: str
    model: str  # the model name the backend is asked for
    request: GenerationRequest
    priority: float = 0.0  # lower runs first (the router gives predicted output tokens); 0 for all gives FCFS
    created_at_s: float = field(default_factory=time.time)
    est_tokens: int = 0  # predicted prompt + output tokens, counted in the deployment's in-flight tokens
    deadline_at_s: float = 0.0  # wall-clock time after which nobody waits for the answer; 0: none
    attempt: int = 1  # 1 for the first worker to run it, +1 each time another worker takes it over
    resume_from: Resume | None = None  # what earlier attempts committed (None: start from the prompt)

    def to_dict(self) -> dict[str, Any]:
        r = self.resume_from
        return {"job_id": self.job_id, "deployment": self.deployment, "model": self.model,
                "request": self.request.to_dict(), "priority": self.priority, "created_at_s": self.created_at_s,
                "est_tokens": self.est_tokens, "deadline_at_s": self.deadline_at_s, "attempt": self.attempt,
                "resume_from": None if r is None else {"text": r.text, "token_ids": list(r.token_ids),
                                                      "num_tokens": r.num_tokens}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        """The inverse of to_dict; raises ValueError on a foreign or damaged entry."""
        if not isinstance(data, dict) or not isinstance(data.get("request"), dict):
            raise ValueError("a job is a JSON object with a 'request' object")
        data = dict(data)
        try:
            data["request"] = GenerationRequest.from_dict(data["request"])
            if data.get("resume_from") is not None:
                data["resume_from"] = Resume.from_dict(data["resume_from"])
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"malformed job: {err}") from None
