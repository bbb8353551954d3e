"""Events a backend emits for a job (text, finish, error); plain values that cross any queue as dicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from backends.errors import TamerError, error_from_code


@dataclass(frozen=True)
class TokenEvent:
    """New text for the client (one or more tokens' worth), and the token ids behind it where the backend
    has them: a worker that takes over the job re-prefills them to resume (backends/job.py Resume)."""

    text: str
    num_tokens: int = 1
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class FinishEvent:
    """The job ended normally; the counts are the backend's own (real tokenizer)."""

    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ErrorEvent:
    """The job failed; code/status map to an OpenAI-shaped error at the proxy."""

    code: str
    message: str
    status: int = 500

    @classmethod
    def from_error(cls, err: TamerError) -> "ErrorEvent":
        return cls(code=err.code, message=err.message, status=err.status)

    def to_error(self) -> TamerError:
        return error_from_code(self.code, self.message, self.status)


Event = Union[TokenEvent, FinishEvent, ErrorEvent]

_KINDS: dict[str, type] = {"token": TokenEvent, "finish": FinishEvent, "error": ErrorEvent}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def event_to_dict(event: Event) -> dict[str, Any]:
    if isinstance(event, TokenEvent):
        return {"type": "token", "text": event.text, "num_tokens": event.num_tokens,
                "token_ids": list(event.token_ids)}
    if isinstance(event, FinishEvent):
        return {"type": "finish", "finish_reason": event.finish_reason, "prompt_tokens": event.prompt_tokens,
                "completion_tokens": event.completion_tokens}
    return {"type": "error", "code": event.code, "message": event.message, "status": event.status}


def event_from_dict(data: dict[str, Any]) -> Event:
    """The inverse of event_to_dict; raises ValueError on anything else (a foreign or damaged entry)."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, got {type(data).__name__}")
    data = dict(data)
    kind = data.pop("type", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown event type {kind!r}; known: {sorted(_KINDS)}")
    if kind == "token":
        data["token_ids"] = tuple(int(t) for t in data.get("token_ids") or ())
    try:
        return _KINDS[kind](**data)
    except TypeError as err:
        raise ValueError(f"malformed {kind} event: {err}") from None


def is_terminal(event: Event) -> bool:
    return isinstance(event, (FinishEvent, ErrorEvent))
