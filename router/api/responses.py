"""OpenAI-shaped response bodies, stream chunks and errors (pure functions over plain values)."""

from __future__ import annotations

import json
from typing import Any

from backends.errors import TamerError


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_completion(response_id: str, created_s: int, model: str, text: str, finish_reason: str,
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": response_id, "object": "chat.completion", "created": created_s, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish_reason}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(response_id: str, created_s: int, model: str, delta: dict[str, Any],
               finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": response_id, "object": "chat.completion.chunk", "created": created_s, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def completion(response_id: str, created_s: int, model: str, text: str, finish_reason: str,
               prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": response_id, "object": "text_completion", "created": created_s, "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_chunk(response_id: str, created_s: int, model: str, text: str,
                     finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": response_id, "object": "text_completion", "created": created_s, "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(response_id: str, created_s: int, model: str, obj: str, prompt_tokens: int,
                completion_tokens: int) -> dict[str, Any]:
    return {"id": response_id, "object": obj, "created": created_s, "model": model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}


def error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body_for(err: TamerError) -> dict[str, Any]:
    return error_body(err.message, err.error_type, err.code, err.param)


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
