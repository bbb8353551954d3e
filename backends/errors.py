"""Failures a job can meet on its way through the queue and a backend, each with an HTTP status and code."""

from __future__ import annotations


class TamerError(Exception):
    """Base of every error tamer reports to a client; carries an OpenAI-style type, code and HTTP status."""

    status: int = 500
    error_type: str = "server_error"
    code: str = "internal_error"
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class InvalidRequestError(TamerError):
    status, error_type, code = 400, "invalid_request_error", "invalid_request"


class ContextLengthExceededError(TamerError):
    status, error_type, code = 400, "invalid_request_error", "context_length_exceeded"
    param = "messages"


class QueueFullError(TamerError):
    status, error_type, code = 429, "rate_limit_error", "queue_full"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendUnavailableError(TamerError):
    status, error_type, code = 503, "server_error", "backend_unavailable"


class UpstreamError(TamerError):
    status, error_type, code = 502, "server_error", "upstream_error"


class JobTimeoutError(TamerError):
    status, error_type, code = 504, "timeout_error", "timeout"


class InternalError(TamerError):
    status, error_type, code = 500, "server_error", "internal_error"


_BY_CODE: dict[str, type[TamerError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        ContextLengthExceededError,
        QueueFullError,
        BackendUnavailableError,
        UpstreamError,
        JobTimeoutError,
        InternalError,
    )
}


def error_from_code(code: str, message: str, status: int | None = None) -> TamerError:
    """Rebuild an error that crossed a queue as (code, message); unknown codes keep their status."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    err = InternalError(message)
    err.code = code
    if status is not None:
        err.status = status
    return err
