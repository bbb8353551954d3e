"""Errors the proxy raises itself (bad requests, unknown models, auth); queue/backend errors live in backends.errors."""

from __future__ import annotations

from backends.errors import InvalidRequestError, TamerError

__all__ = ["InvalidRequestError", "ModelNotFoundError", "RequestTooLargeError", "AuthenticationError",
           "TamerError"]


class ModelNotFoundError(TamerError):
    status, error_type, code, param = 404, "invalid_request_error", "model_not_found", "model"


class DeploymentNotFoundError(TamerError):
    status, error_type, code, param = 404, "invalid_request_error", "deployment_not_found", "deployment"


class RequestTooLargeError(TamerError):
    status, error_type, code = 413, "invalid_request_error", "request_too_large"


class AuthenticationError(TamerError):
    status, error_type, code = 401, "invalid_request_error", "invalid_api_key"
