"""Errors are values with a type: each carries its HTTP status, an error type and the bad parameter.

Each wire dialect formats these into its own error body (edge/api/*). Nothing derives a status from
an exception's message text.
"""

from __future__ import annotations


class EdgeError(Exception):
    status: int = 500
    error_type: str = "server_error"
    code: str | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After
    # where Anthropic's API answers the same condition differently (edge/api/errors.py applies these)
    anthropic_status: int | None = None
    anthropic_type: str | None = None

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


class RequestTimeoutError(EdgeError):
    """The client took longer than the header/body timeouts allow to send its request."""

    status = 408
    error_type = "invalid_request_error"
    code = "request_timeout"


class OverloadedError(EdgeError):
    """Every slot is busy and the queue is full: refused before any work, with a time to retry after.

    Anthropic's API says this with 529 ``overloaded_error``; OpenAI's with 429."""

    status = 429
    error_type = "server_overloaded"
    code = "server_overloaded"
    anthropic_status = 529
    anthropic_type = "overloaded_error"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDownError(EdgeError):
    """The server is draining for shutdown: a new or unfinished request ends with this."""

    status = 503
    error_type = "server_error"
    code = "server_shutting_down"

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class GenerationTimeoutError(EdgeError):
    """The request ran past ``--request-timeout``; its generation was stopped."""

    status = 504
    error_type = "server_error"
    code = "request_timeout"
    anthropic_type = "timeout_error"
