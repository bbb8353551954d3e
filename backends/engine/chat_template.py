"""Rendering a model's Jinja chat template the way Hugging Face does, inside a sandbox."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from backends.engine.errors import ChatTemplateError


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(f"the chat template rejected the messages: {message}")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


def render_chat_template(
    template: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True,
    bos_token: str | None = None, eos_token: str | None = None, **extra: Any,
) -> str:
    """The prompt text for messages, with the assistant's opening tag when add_generation_prompt is set."""
    from jinja2 import TemplateError

    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ChatTemplateError(f"messages must be a list of dicts like {{'role': 'user', 'content': 'hi'}}, "
                                f"got {type(messages).__name__}")
    try:
        return _compile(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=bos_token or "", eos_token=eos_token or "", **extra,
        )
    except ChatTemplateError:
        raise
    except (TemplateError, TypeError, KeyError, AttributeError) as err:
        raise ChatTemplateError(f"the chat template failed on these messages: {err}") from err
