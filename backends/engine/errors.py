"""The engine's failures, one class per cause; each message says what to change."""

from __future__ import annotations


class PromptTooLongError(ValueError):
    """The prompt leaves no room for even one output token in the model's context window."""

    def __init__(self, num_prompt_tokens: int, max_model_len: int) -> None:
        super().__init__(
            f"the prompt has {num_prompt_tokens} tokens but this model's context window is {max_model_len} tokens "
            f"and at least one must be left for the output; shorten the prompt to at most {max_model_len - 1} tokens"
        )
        self.num_prompt_tokens = num_prompt_tokens
        self.max_model_len = max_model_len


class DuplicateRequestError(ValueError):
    """A request id that is still running was added again."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request id {request_id!r} is already running; use a fresh id or abort the old one first")
        self.request_id = request_id


class EngineBusyError(RuntimeError):
    """generate() was called while requests added with add_request() are still unfinished."""


class UnsupportedArchitectureError(ValueError):
    """The model directory holds an architecture the engine has no implementation for."""


class ModelNotFoundError(FileNotFoundError):
    """The model name or path does not lead to loadable weights."""


class BundledModelMissingError(ModelNotFoundError):
    """The package that ships the bundled model's GGUF file is not installed."""


class MissingChatTemplateError(ValueError):
    """The model's tokenizer metadata has no chat template to render messages with."""


class InvalidPromptError(ValueError):
    """The prompt token ids are empty or outside the model's vocabulary."""


class ChatTemplateError(ValueError):
    """The chat template rejected the messages (its raise_exception was called) or failed to render."""
