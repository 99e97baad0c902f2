"""Client-caused outcomes: each carries a close code, a readable message and whether to close."""

from __future__ import annotations

from typing import Any

from starlette import status
from starlette.exceptions import WebSocketException as StarletteWebSocketException

__all__ = [
    "WebSocketException",
    "PermissionDenied",
    "RateLimitExceeded",
    "ActionNotExist",
    "ActionIsDeprecated",
    "ParseError",
    "ValidationFailed",
    "NotFound",
    "MethodNotAllowed",
    "ConnectionLimitExceeded",
    "BackendUnavailable",
]


class WebSocketException(StarletteWebSocketException):
    """Send an error frame to the client and, if ``close`` is true, close the socket with ``code``.

    Raise it (or a subclass) in an action, a join handler or a permission to answer the client.
    Subclasses set ``default_code``, ``default_error_msg`` and ``default_close``.

    Args:
        code: RFC 6455 close code used when the socket is closed.
        reason: Close reason sent in the close frame (kept short: the protocol allows 123 bytes).
        close: Close the socket after sending the error frame.
        status: The ``status`` field of the error frame (``"bad"`` by default).
        error_msg: The readable ``errors`` field of the error frame.
        data: Extra JSON-serialisable payload, sent as the frame's ``data`` field.
        request_id: Echoed to the client; filled from the request frame when left out.
        **extra: More top-level fields of the error frame.
    """

    default_code: int = status.WS_1008_POLICY_VIOLATION
    default_error_msg: str = "The request could not be handled."
    default_close: bool = True
    http_status: int = status.HTTP_400_BAD_REQUEST
    """The HTTP status of the answer when the exception is raised in an HTTP route instead of a websocket."""

    def __init__(
        self,
        code: int | None = None,
        reason: str | None = None,
        *,
        close: bool | None = None,
        status: str | None = None,
        error_msg: str | None = None,
        data: Any = None,
        request_id: int | str | None = None,
        **extra: Any,
    ) -> None:
        self.error_msg = error_msg or reason or self.default_error_msg
        super().__init__(code or self.default_code, _fit_close_reason(reason if reason is not None else self.error_msg))
        self.close = self.default_close if close is None else close
        self.status = status or "bad"
        self.data = data
        self.request_id = request_id
        self.action: str | None = extra.pop("action", None)
        self.extra = extra

    def __str__(self) -> str:
        return self.error_msg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, error_msg={self.error_msg!r}, close={self.close!r})"


def _fit_close_reason(reason: str) -> str:
    # RFC 6455 leaves 123 bytes for the close reason; cut on a character boundary.
    encoded = reason.encode()
    if len(encoded) <= 123:
        return reason
    return encoded[:120].decode(errors="ignore") + "..."


class PermissionDenied(WebSocketException):
    """The client may not connect to this channel or run this action."""

    http_status = status.HTTP_403_FORBIDDEN
    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "You do not have permission to perform this action."


class RateLimitExceeded(WebSocketException):
    """The client sent more requests than the action's rate limit allows; the socket stays open.

    ``retry_after`` (seconds) says when the client may try again; it is sent in the error frame.
    """

    http_status = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = status.WS_1013_TRY_AGAIN_LATER
    default_error_msg = "Too many requests."
    default_close = False

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        if retry_after is not None:
            kwargs.setdefault("retry_after", round(retry_after, 3))
            kwargs.setdefault("error_msg", f"Too many requests. Retry in {retry_after:.1f} seconds.")
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ActionNotExist(WebSocketException):
    """The frame names an action this channel does not have; the socket stays open."""

    http_status = status.HTTP_404_NOT_FOUND
    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "This action does not exist."
    default_close = False


class ActionIsDeprecated(WebSocketException):
    """The action is deprecated and is no longer run; the socket stays open."""

    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "This action is deprecated."
    default_close = False


class ParseError(WebSocketException):
    """The frame is not a JSON object with an ``action`` field; the socket stays open."""

    default_code = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    default_error_msg = "The message could not be parsed."
    default_close = False


class ValidationFailed(WebSocketException):
    """The frame's payload does not fit the action's typed parameters; the socket stays open.

    ``detail`` lists what is wrong, one ``{"loc": [...], "msg": ..., "type": ...}`` per field, as FastAPI's
    422 body does; each ``loc`` starts with ``"payload"``. It is sent as the error frame's ``detail`` field.
    """

    http_status = 422
    default_code = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    default_error_msg = "The payload is not valid."
    default_close = False

    def __init__(self, *args: Any, detail: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        self.detail = detail if detail is not None else []
        kwargs.setdefault("detail", self.detail)
        super().__init__(*args, **kwargs)


class NotFound(WebSocketException):
    """What the client asked for does not exist."""

    http_status = status.HTTP_404_NOT_FOUND
    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "Not found."


class MethodNotAllowed(WebSocketException):
    """The client may not use this kind of request here."""

    http_status = status.HTTP_405_METHOD_NOT_ALLOWED
    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "Method not allowed."


class ConnectionLimitExceeded(WebSocketException):
    """The channel already holds ``max_connection`` connections; the new one is closed."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = status.WS_1013_TRY_AGAIN_LATER
    default_error_msg = "This channel is full. Try again later."


class BackendUnavailable(WebSocketException):
    """The broadcast, presence or rate-limit store (Redis, PostgreSQL...) cannot be reached right now.

    Inside an action the socket stays open and the client may try again; a connection that cannot be
    admitted because of it is closed with 1013 (try again later).
    """

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = status.WS_1013_TRY_AGAIN_LATER
    default_error_msg = "The channel backend cannot be reached. Try again later."
    default_close = False
