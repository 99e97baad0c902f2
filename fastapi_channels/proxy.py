"""A websocket reverse proxy: forward a client's connection to an upstream websocket server, API-gateway style.

``WebSocketProxy`` opens the upstream connection before it accepts the client, so the client takes the
subprotocol the upstream chose, and an upstream that cannot be had refuses the client's handshake (HTTP 502,
504 on a timeout, or the upstream's own 4xx refusal). Then it relays frames both ways (text stays text,
binary stays binary), one at a time per direction: a side that does not read holds up the other side's
sender instead of filling the proxy's memory. When one side closes, the other is closed with the same code
and reason, except for the codes that say no close frame came (they may not be sent):

- the upstream closed without a code (1005): the client gets 1000;
- the upstream connection was lost without a close frame (1006): the client gets 1014, bad gateway;
- the proxy failed the upstream connection: 1009 if the upstream sent a message over ``max_size``, else 1014;
- the client closed without a code or vanished (1005, 1006), or with a code no endpoint may send: the
  upstream gets 1001, going away;
- the client or the upstream stops reading for ``write_timeout`` seconds: the client gets 1013, try again later
  (if it reads at all), and the upstream 1001.

This module needs the websockets library (13 or later), which the ``proxy`` extra installs; the package's
top level never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette import status
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from fastapi_channels.stepping import within

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
    from websockets.typing import Subprotocol
    from websockets.uri import parse_uri
except ImportError as exc:  # pragma: no cover - the test suite runs with websockets installed
    raise ImportError(
        "fastapi_channels.proxy needs the websockets library, 13 or later: pip install 'fastapi-channels[proxy]'"
    ) from exc

__all__ = ["WebSocketProxy", "quote_path", "DEFAULT_FORWARDED_HEADERS", "HOP_BY_HOP_HEADERS"]

logger = logging.getLogger("fastapi_channels.proxy")

DEFAULT_FORWARDED_HEADERS = ("authorization", "cookie", "origin", "user-agent")
"""The client's request headers passed on to the upstream unless ``forward_headers`` says otherwise."""
HOP_BY_HOP_HEADERS = frozenset(
    {"connection", "upgrade", "host", "keep-alive", "te", "trailer", "transfer-encoding", "content-length"}
    | {"proxy-connection", "proxy-authorization", "proxy-authenticate"}
)
"""Headers that belong to one connection and are never passed on (nor any ``sec-websocket-*`` header)."""

_X_FORWARDED = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
# What the URL an upstream function returns keeps as it is: its delimiters and its escapes, so that a URL built
# right is not escaped twice. Anything else (a space, a "#", a non-ASCII letter) is escaped. A decoded path
# parameter's "/", "?" and "%" are therefore kept, with their meaning in a URL: quote_path escapes those.
_URL_CHARACTERS = "!$&'()*+,;=:@/?[]%"
_DOT_SEGMENT = "The path may not have a '.' or '..' segment."
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # RFC 9110: what a subprotocol name may be
_MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, two of them the code
# The options of websockets' connect() that the proxy sets itself, and where to set them instead.
_OPTIONS_OF_OUR_OWN = {
    "subprotocols": "the proxy offers the client's subprotocols",
    "additional_headers": "choose the client's headers to pass on with forward_headers",
    **{name: f"pass WebSocketProxy({name}=...)" for name in ("open_timeout", "max_size", "max_queue", "close_timeout")},
}


@dataclass(frozen=True)
class _Ending:
    """How a relay ended: the close to send to each side that is still open (None: that side is done)."""

    client: tuple[int, str] | None = None
    upstream: tuple[int, str] | None = None
    warning: str | None = None


class WebSocketProxy:
    """Forward each websocket connection to an upstream websocket server; an instance is a websocket endpoint.

    Args:
        upstream: The upstream's ``ws://`` or ``wss://`` URL, or a function of the client's websocket that
            returns it (to route by path parameters, say). The client's query string is appended to it.
        forward_headers: Names of the client's request headers to pass on; hop-by-hop headers cannot be.
        x_forwarded: Add ``X-Forwarded-For`` (the client's address), ``-Proto`` and ``-Host``, replacing any the
            client sent.
        open_timeout: Seconds to connect to the upstream and complete its handshake (None: no limit).
        max_size: Largest message in bytes the upstream may send (None: no limit); a larger one closes both
            sides with 1009. What clients may send is your server's limit (uvicorn's ``--ws-max-size``).
        max_queue: Frames from the upstream buffered before the proxy stops reading it (see websockets).
        write_timeout: Seconds one frame may wait for a side that does not read before the proxy gives up on
            it (None: wait forever). The client of a stuck upstream, or a stuck client, gets 1013.
        close_timeout: Seconds the upstream gets to complete the closing handshake before it is aborted.
        connect_options: More keyword arguments for ``websockets.asyncio.client.connect`` (``ssl``,
            ``compression``, ``ping_interval``, ``proxy``...).

    Raises:
        ValueError: ``upstream`` is not a websocket URL, a header cannot be forwarded, or ``connect_options``
            holds an option this class sets itself.
    """

    def __init__(
        self,
        upstream: str | Callable[[WebSocket], str],
        *,
        forward_headers: Iterable[str] = DEFAULT_FORWARDED_HEADERS,
        x_forwarded: bool = True,
        open_timeout: float | None = 10.0,
        max_size: int | None = 2**20,
        max_queue: int | None = 16,
        write_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(upstream, str):
            _check_url(upstream)
        self.upstream = upstream
        if isinstance(forward_headers, str):
            raise ValueError(f"forward_headers takes a list of header names: forward_headers=[{forward_headers!r}].")
        self.forward_headers = frozenset(name.lower() for name in forward_headers)
        for name in sorted(self.forward_headers):
            if name in HOP_BY_HOP_HEADERS or name.startswith("sec-websocket-"):
                raise ValueError(f"The {name!r} header belongs to one connection: remove it from forward_headers.")
            if x_forwarded and name in _X_FORWARDED:
                raise ValueError(f"The proxy sets {name!r} itself: pass x_forwarded=False to forward the client's.")
        self.x_forwarded = x_forwarded
        self.connect_options = dict(connect_options or {})
        for option, fix in _OPTIONS_OF_OUR_OWN.items():
            if option in self.connect_options:
                raise ValueError(f"connect_options cannot set {option}: {fix}.")
        self.connect_options.update(open_timeout=open_timeout, max_size=max_size, max_queue=max_queue)
        self.write_timeout = write_timeout
        self.close_timeout = close_timeout

    async def __call__(self, websocket: WebSocket) -> None:
        """Relay ``websocket`` to the upstream until either side closes, then close the other."""
        url = await self._upstream_url(websocket)
        if url is None:
            return
        upstream = await self._open(websocket, url)
        if upstream is None:
            return
        # Until the relay says otherwise, an error closes both sides with 1011 (the server logs the traceback).
        failed = (status.WS_1011_INTERNAL_ERROR, "The proxy failed.")
        ending = _Ending(client=failed, upstream=failed)
        try:
            try:
                await websocket.accept(subprotocol=upstream.subprotocol)
            except (WebSocketDisconnect, OSError):  # the client gave up while the upstream was answering
                ending = _Ending(upstream=(status.WS_1001_GOING_AWAY, "The client went away."))
                return
            ending = await _relay(websocket, upstream, self.write_timeout)
            if ending.warning is not None:
                logger.warning("Proxy to %s %s", _without_query(url), ending.warning)
        except asyncio.CancelledError:
            going = (status.WS_1001_GOING_AWAY, "The proxy is shutting down.")
            ending = _Ending(client=going, upstream=going)
            raise
        finally:
            await _finish(websocket, upstream, ending, self.close_timeout)

    # Older FastAPI releases read an endpoint object's annotations without resolving them: give them the classes.
    __call__.__annotations__ = {"websocket": WebSocket, "return": None}

    async def _upstream_url(self, websocket: WebSocket) -> str | None:
        """Return the upstream URL for ``websocket``; refuse the client (400) when ``quote_path`` refused its path."""
        try:
            return self.upstream_url(websocket)
        except _DotSegment:
            await _refuse(websocket, 400, _DOT_SEGMENT)
            return None

    def upstream_url(self, websocket: WebSocket) -> str:
        """Return the URL to connect ``websocket`` to: the upstream's, with the client's query string."""
        url = self.upstream if isinstance(self.upstream, str) else self.upstream(websocket)
        query = websocket.scope.get("query_string", b"").decode("latin-1")
        if query:
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        return _check_url(quote(url, safe=_URL_CHARACTERS))

    def upstream_headers(self, websocket: WebSocket) -> list[tuple[str, str]]:
        """Return the request headers to send the upstream: the forwarded ones, then the ``X-Forwarded-*``."""
        headers = []
        for raw_name, raw_value in websocket.scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name in self.forward_headers:
                headers.append((name, raw_value.decode("latin-1")))
        if self.x_forwarded:
            client = websocket.scope.get("client")
            if client:
                headers.append(("x-forwarded-for", str(client[0])))
            headers.append(("x-forwarded-proto", "https" if websocket.url.scheme == "wss" else "http"))
            host = websocket.headers.get("host")
            if host:
                headers.append(("x-forwarded-host", host))
        return headers

    async def _open(self, websocket: WebSocket, url: str) -> ClientConnection | None:
        """Connect to the upstream with the client's subprotocols; on failure refuse the client, return None."""
        offered = [Subprotocol(name) for name in websocket.scope.get("subprotocols", []) if name]
        invalid = [name for name in offered if not _TOKEN.fullmatch(name)]
        if invalid:
            await _refuse(websocket, 400, f"Invalid subprotocol name: {invalid[0][:64]!r}.")
            return None
        headers = self.upstream_headers(websocket)
        options = dict(self.connect_options)
        # The client's User-Agent goes as websockets' own: some releases add theirs beside one in the headers.
        for name, value in headers:
            if name == "user-agent":
                options["user_agent_header"] = value
        try:
            return await connect(
                url,
                subprotocols=offered or None,
                additional_headers=[(name, value) for name, value in headers if name != "user-agent"],
                close_timeout=self.close_timeout,
                **options,
            )
        except asyncio.TimeoutError:
            status_code, detail = 504, "The upstream server did not answer in time."
        except InvalidStatus as exc:
            refused = exc.response.status_code
            # The upstream's own refusals of the client (401, 403, 404, 429...) reach the client as they are.
            status_code = refused if 400 <= refused < 500 else 502
            detail = f"The upstream server refused the connection with HTTP {refused}."
        except (OSError, InvalidHandshake) as exc:
            status_code, detail = 502, f"The upstream server could not be reached: {exc}"
        logger.warning("Proxy to %s refused a client: %s", _without_query(url), detail)
        await _refuse(websocket, status_code, detail)
        return None


async def _relay(websocket: WebSocket, upstream: ClientConnection, write_timeout: float | None) -> _Ending:
    """Pump frames both ways until one side ends; return how to close the other."""
    pumps = [
        asyncio.ensure_future(_client_to_upstream(websocket, upstream, write_timeout)),
        asyncio.ensure_future(_upstream_to_client(upstream, websocket, write_timeout)),
    ]
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        # Both receives are safe to cancel, and a cancelled send is followed by a close anyway.
        await asyncio.wait(pumps)
    for error in [pump.exception() for pump in pumps if not pump.cancelled()]:
        if error is not None:
            raise error
    return next(pump for pump in pumps if pump in done).result()


async def _client_to_upstream(websocket: WebSocket, upstream: ClientConnection, write_timeout: float | None) -> _Ending:
    """Send the client's frames upstream, one at a time: the next is read once the upstream took this one."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return _Ending(upstream=_for_upstream(message.get("code", 1000), message.get("reason") or ""))
            text = message.get("text")
            await within(write_timeout, upstream.send(text if text is not None else message.get("bytes") or b""))
    except ConnectionClosed as closed:
        return _Ending(client=_for_client(closed))
    except TimeoutError:
        return _Ending(
            warning="gave up on an upstream that stopped reading",
            client=(status.WS_1013_TRY_AGAIN_LATER, "The upstream server stopped reading."),
            upstream=(status.WS_1001_GOING_AWAY, "You stopped reading."),
        )


async def _upstream_to_client(upstream: ClientConnection, websocket: WebSocket, write_timeout: float | None) -> _Ending:
    """Send the upstream's frames to the client, one at a time: the next is read once the client took this one."""
    try:
        while True:
            data = await upstream.recv()
            if isinstance(data, str):
                sending = websocket.send({"type": "websocket.send", "text": data})
            else:
                sending = websocket.send({"type": "websocket.send", "bytes": data})
            await within(write_timeout, sending)
    except ConnectionClosed as closed:
        return _Ending(client=_for_client(closed))
    except TimeoutError:  # before OSError, of which it is a subclass
        return _Ending(
            warning="gave up on a client that stopped reading",
            client=(status.WS_1013_TRY_AGAIN_LATER, "The client stopped reading."),
            upstream=(status.WS_1001_GOING_AWAY, "The client stopped reading."),
        )
    except (WebSocketDisconnect, OSError):  # the client went away mid-send
        return _Ending(upstream=(status.WS_1001_GOING_AWAY, "The client went away."))


def _for_client(closed: ConnectionClosed) -> tuple[int, str]:
    """Return the close to send the client once the upstream connection has ended as ``closed`` says."""
    if closed.rcvd is not None and closed.rcvd_then_sent is not False:
        # The upstream closed: its code, except 1005 (no code), which is not sent.
        code = closed.rcvd.code
        return (status.WS_1000_NORMAL_CLOSURE if code == status.WS_1005_NO_STATUS_RCVD else code), closed.rcvd.reason
    if closed.sent is not None:
        # The proxy failed the upstream connection: a message over max_size, or a protocol error of the upstream.
        code = closed.sent.code
        reason = _short(f"Upstream: {closed.sent.reason}")
        return (code if code == status.WS_1009_MESSAGE_TOO_BIG else status.WS_1014_BAD_GATEWAY), reason
    return status.WS_1014_BAD_GATEWAY, "The upstream connection was lost."


def _for_upstream(code: int, reason: str) -> tuple[int, str]:
    """Return the close to send the upstream once the client has closed with ``code`` and ``reason``."""
    if code in _SENDABLE or 3000 <= code < 5000:
        return code, _short(reason)
    # 1005 and 1006: uvicorn reports both a close frame without a code and a lost connection as 1005.
    return status.WS_1001_GOING_AWAY, "The client went away."


_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def _short(reason: str) -> str:
    """Return ``reason`` cut to what a close frame holds, on a character boundary."""
    return reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


async def _finish(websocket: WebSocket, upstream: ClientConnection, ending: _Ending, close_timeout: float) -> None:
    """Close the sides the relay left open: the client first (that never waits long), then the upstream."""
    try:
        if ending.client is not None:
            await _close_client(websocket, *ending.client)
        if ending.upstream is not None:
            await _close_upstream(upstream, *ending.upstream, timeout=close_timeout)
    finally:
        # Cancelled before the upstream was closed (an ASGI server or test client may cancel the endpoint):
        # drop its connection rather than leave it open. Once it is closed, this does nothing.
        upstream.transport.abort()


async def _close_upstream(upstream: ClientConnection, code: int, reason: str, *, timeout: float) -> None:
    """Close the upstream, discarding what it still sends; abort it if the handshake takes over ``timeout``."""

    async def discard() -> None:
        # An upstream still sending would otherwise queue its close frame behind frames nobody reads.
        with contextlib.suppress(ConnectionClosed):
            while True:
                await upstream.recv()

    discarding = asyncio.ensure_future(discard())
    try:
        await within(timeout, upstream.close(code, reason))
    except TimeoutError:
        upstream.transport.abort()  # the upstream does not even read its close frame
    finally:
        discarding.cancel()


async def _close_client(websocket: WebSocket, code: int, reason: str) -> None:
    """Close the client's websocket, unless it is gone; give up on one that does not take the close frame."""
    # RuntimeError: Starlette's answer to a close of a websocket that is already closed.
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
        await within(1.0, websocket.close(code, reason))


async def _refuse(websocket: WebSocket, status_code: int, detail: str) -> None:
    """Refuse the client's handshake with an HTTP response, or close 1014 where the server cannot send one."""
    with contextlib.suppress(OSError):  # the client gave up waiting
        # Starlette before 0.37 cannot send one either.
        if "websocket.http.response" in websocket.scope.get("extensions", {}) and hasattr(
            websocket, "send_denial_response"
        ):
            await websocket.send_denial_response(PlainTextResponse(detail, status_code=status_code))
        else:
            await websocket.close(status.WS_1014_BAD_GATEWAY, _short(detail))


def _without_query(url: str) -> str:
    """Return ``url`` without its query string, which may hold a token, for the logs."""
    return url.split("?", 1)[0]


class _DotSegment(ValueError):
    """A path given to ``quote_path`` has a ``.`` or ``..`` segment."""


def quote_path(path: str) -> str:
    """Escape a decoded path parameter for the path of an upstream URL: each ``/``-separated segment whole.

    Every character but letters, digits and ``-._~`` is escaped: ``lobby?admin=1`` stays one segment
    (``lobby%3Fadmin%3D1``) instead of starting a query, and ``%2525`` is not decoded twice. The proxy refuses
    (HTTP 400) a path with a ``.`` or ``..`` segment, which the upstream would resolve outside the path you gave.

    Raises:
        ValueError: ``path`` has a ``.`` or ``..`` segment.
    """
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise _DotSegment(_DOT_SEGMENT)
    return "/".join(quote(segment, safe="") for segment in segments)


def _check_url(url: str) -> str:
    """Return ``url`` if it is a websocket URL, else raise a ValueError that says what is wrong."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"The upstream must be a ws:// or wss:// URL: {exc}") from None
    return url
