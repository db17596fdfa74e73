"""Errors are values with a type: each carries its HTTP status, an error type and the bad parameter.

Each wire dialect formats these into its own error body (edge/api/*). Nothing derives a status from
an exception's message text.
"""

from __future__ import annotations


class EdgeError(Exception):
    status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequestError(EdgeError):
    """The client sent something we cannot accept; ``param`` names it."""

    status = 400
    error_type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    code = "context_length_exceeded"


class UnsupportedFeatureError(InvalidRequestError):
    """A valid request asking for something this model or server does not do (e.g. tools on Gemma 3)."""

    code = "unsupported_parameter"


class AuthenticationError(EdgeError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFoundError(EdgeError):
    status = 404
    error_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    error_type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowedError(EdgeError):
    status = 405
    error_type = "invalid_request_error"


class PayloadTooLargeError(EdgeError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class EngineError(EdgeError):
    """llama.cpp failed while generating: our fault or the machine's, never the client's."""

    status = 500
    error_type = "server_error"
