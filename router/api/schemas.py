"""Request bodies of the OpenAI API that tamer accepts, validated, and their mapping to a GenerationRequest.

Unknown fields are accepted and ignored (clients send many); fields tamer cannot honour (n > 1,
tools or functions to call, multimodal content) are rejected with a message naming the field, so a client
never gets a plain-text answer where it asked for a tool call.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.job import GenerationRequest

MAX_STOP_SEQUENCES = 4


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)  # None: the deployment's default
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="tamer returns one choice per request")
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if len(v) > MAX_STOP_SEQUENCES:
                raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(v)}")
            if any(not s for s in v):
                raise ValueError("stop sequences must be non-empty strings")
        elif v == "":
            raise ValueError("stop must be a non-empty string")
        return v

    def stop_tuple(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


NO_TOOLS = "tamer does not run tool or function calls; send the request without them"


def _reject_tool_calls(value: Any) -> Any:
    if value:
        raise ValueError(NO_TOOLS)
    return value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]  # "tool" results answer tool calls: none here
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None  # an assistant's tool calls in the history: rejected
    function_call: Any = None

    _no_tool_calls = field_validator("tool_calls", "function_call")(_reject_tool_calls)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None  # rejected unless empty
    functions: list[Any] | None = None  # the older name of tools: the same
    tool_choice: Any = None  # "none" and "auto" (with no tools: a plain answer) pass
    function_call: Any = None

    _no_tools = field_validator("tools", "functions")(_reject_tool_calls)

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, v: Any) -> Any:
        if v not in (None, "none", "auto"):
            raise ValueError(NO_TOOLS)
        return v

    def to_generation_request(self) -> GenerationRequest:
        messages = tuple(
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages
        )
        return GenerationRequest(
            kind="chat", messages=messages, max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=self.stop_tuple(),
            stream=self.stream,
        )


class CompletionRequest(_Common):
    prompt: str | list[str] = Field(...)
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: Any) -> Any:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError(f"exactly one prompt per request is supported, got a list of {len(v)}")
        return v

    def to_generation_request(self) -> GenerationRequest:
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return GenerationRequest(
            kind="completion", prompt=prompt, max_tokens=self.max_tokens, temperature=self.temperature,
            top_p=self.top_p, seed=self.seed, stop=self.stop_tuple(), stream=self.stream,
        )
