"""A job: one generation request, already routed to a deployment, as it travels through the work queue."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationRequest":
        data = dict(data)
        data["messages"] = tuple(data.get("messages") or ())
        data["stop"] = tuple(data.get("stop") or ())
        return cls(**data)


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Job:
    """A routed request: which deployment runs it, which model name to ask that backend for, and its priority."""

    job_id: str
    deployment: str
    model: str  # the model name the backend is asked for
    request: GenerationRequest
    priority: float = 0.0  # lower runs first; 0 for all gives FCFS
    created_at_s: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["request"] = self.request.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        data = dict(data)
        data["request"] = GenerationRequest.from_dict(data["request"])
        return cls(**data)
