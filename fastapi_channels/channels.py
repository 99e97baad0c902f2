"""Channels: ``BaseChannel`` runs one connection's life; ``Channel`` dispatches JSON frames to actions.

A connection is accepted, checked against the channel permission and ``max_connection``, joins the channel
(subscription, join handlers, lifespan), then handles its frames one at a time until it ends, and always
leaves exactly once. Each frame has one error boundary: a ``WebSocketException`` becomes an error frame
(and a close if it asks for one); anything else is logged and closes the socket with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI
from starlette import status
from starlette.websockets import WebSocket, WebSocketState

from fastapi_channels.api import STATE_KEY, FastAPIChannel, get_channel_config
from fastapi_channels.decorators import RegisteredAction, get_action_spec
from fastapi_channels.decorators import action as declare_action
from fastapi_channels.exceptions import (
    ActionIsDeprecated,
    ActionNotExist,
    BackendUnavailable,
    ConnectionLimitExceeded,
    ParseError,
    PermissionDenied,
    WebSocketException,
)
from fastapi_channels.handlers import lookup_exception_handler
from fastapi_channels.identity import user_of
from fastapi_channels.layers import ChannelLayer, Connection
from fastapi_channels.lifespan import ChannelEvents, EventHandler, Lifespan
from fastapi_channels.permission import PermissionLike, check_permission_like, has_permission
from fastapi_channels.presence import Member, PresenceUnavailable
from fastapi_channels.protocol import Frame, action_of, internal_error_payload, parse_frame, render, request_id_of
from fastapi_channels.throttling import LimitHandled, RateSpec, call_fastapi_limiter, check_throttle_like, get_limits

__all__ = ["BaseChannel", "Channel"]

logger = logging.getLogger("fastapi_channels.channels")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CHANNEL = "default_channel"
# How long a closing connection may take to flush its queued frames to a slow client.
SENDER_FLUSH_TIMEOUT = 5.0


@dataclass
class _Request:
    """What the error boundary needs to know about the frame being handled."""

    action: str | None = None
    request_id: int | str | None = None


_current_request: contextvars.ContextVar[_Request] = contextvars.ContextVar("fastapi_channels_request")
# The configuration of the connection being served, so broadcasts from its handlers reach its own app.
_current_config: contextvars.ContextVar[FastAPIChannel] = contextvars.ContextVar("fastapi_channels_config")


class BaseChannel:
    """Relay every text frame a client sends to everyone in its channel.

    Configure with class attributes or constructor keywords of the same name (the keyword wins).
    ``permission_classes`` and ``throttle_classes`` left as None take the defaults given to ``add_channel``.
    """

    channel: str = DEFAULT_CHANNEL
    max_connection: int | None = None
    permission_classes: PermissionLike = None
    throttle_classes: Sequence[Any] | None = None
    on_join: Sequence[EventHandler] | None = None
    on_leave: Sequence[EventHandler] | None = None
    lifespan: Lifespan | None = None

    def __init__(
        self,
        *,
        channel: str | None = None,
        max_connection: int | None = None,
        permission_classes: PermissionLike = None,
        throttle_classes: Sequence[Any] | None = None,
        on_join: Sequence[EventHandler] | None = None,
        on_leave: Sequence[EventHandler] | None = None,
        lifespan: Lifespan | None = None,
        app: FastAPI | None = None,
    ) -> None:
        self.channel = _check_channel_name(channel if channel is not None else self.channel)
        self.max_connection = max_connection if max_connection is not None else self.max_connection
        if self.max_connection is not None and (not isinstance(self.max_connection, int) or self.max_connection < 1):
            raise ValueError(f"max_connection must be a positive integer or None, not {self.max_connection!r}.")
        if permission_classes is not None:
            self.permission_classes = permission_classes
        check_permission_like(self.permission_classes)
        if throttle_classes is not None:
            self.throttle_classes = throttle_classes
        check_throttle_like(self.throttle_classes)
        self.app = app
        self.events = ChannelEvents(
            on_join=on_join if on_join is not None else self.on_join,
            on_leave=on_leave if on_leave is not None else self.on_leave,
            lifespan=lifespan if lifespan is not None else self.lifespan,
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        channel_class = globals().get("Channel")
        if channel_class is not None and issubclass(cls, channel_class):
            return
        for attribute, value in vars(cls).items():
            if get_action_spec(value) is not None:
                raise TypeError(
                    f"{cls.__name__}.{attribute} is an @action, but {cls.__name__} is a BaseChannel, which relays "
                    "text and has no actions: subclass Channel instead."
                )

    # -- configuration ---------------------------------------------------------------------------------

    @property
    def actions(self) -> list[str]:
        """Return the names of the actions clients can call (none: this channel relays text)."""
        return []

    def get_config(self, websocket: WebSocket | None = None) -> FastAPIChannel:
        """Return the app configuration that ``add_channel`` created for this channel's app."""
        if websocket is None and self.app is not None:
            config = getattr(self.app.state, STATE_KEY, None)
            if isinstance(config, FastAPIChannel):
                return config
            raise RuntimeError("The app given to this channel has no channels: call add_channel(app).")
        if websocket is None:
            current = _current_config.get(None)
            if current is not None and current.started:
                return current
        return get_channel_config(websocket)

    def get_permissions(self, config: FastAPIChannel) -> PermissionLike:
        """Return the channel-level permission: this channel's own, else the app default."""
        return self.permission_classes if self.permission_classes is not None else config.permission_classes

    def get_throttles(self, config: FastAPIChannel) -> tuple[Any, ...]:
        """Return the channel-wide limits: this channel's own, else the app default."""
        return tuple(self.throttle_classes) if self.throttle_classes is not None else config.throttle_classes

    # -- events ----------------------------------------------------------------------------------------

    def add_event_handler(self, event_type: str, func: EventHandler) -> None:
        """Call ``func(websocket, channel)`` when a client joins (``"join"``) or leaves (``"leave"``)."""
        self.events.add_event_handler(event_type, func)

    def on_event(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        """Register the decorated function as a ``"join"`` or ``"leave"`` handler."""
        return self.events.on_event(event_type)

    # -- sending ---------------------------------------------------------------------------------------

    @staticmethod
    async def encode_json(data: Any) -> str:
        """Encode a message as JSON text; override to shape every outgoing message."""
        return json.dumps(data, ensure_ascii=False)

    @staticmethod
    async def decode_json(message: str) -> Frame:
        """Decode an incoming text frame into a JSON object; raises ``ParseError`` otherwise."""
        return parse_frame(message)

    async def encode(self, data: Any) -> str:
        """Return ``data`` as text through ``encode_json``."""
        encoded: Any = self.encode_json(data)
        if inspect.isawaitable(encoded):
            encoded = await encoded
        if isinstance(encoded, bytes):
            encoded = encoded.decode()
        if not isinstance(encoded, str):
            raise TypeError(f"{type(self).__name__}.encode_json must return str, not {type(encoded).__name__}.")
        return encoded

    async def decode(self, message: str) -> Frame:
        """Return the incoming text frame as a JSON object through ``decode_json``."""
        decoded: Any = self.decode_json(message)
        if inspect.isawaitable(decoded):
            decoded = await decoded
        if not isinstance(decoded, dict):
            raise ParseError(error_msg='The message must be a JSON object such as {"action": "..."}.')
        return decoded

    async def to_text(self, message: Any) -> str:
        """Return ``message`` as it goes on the wire: a ``str`` as it is, anything else encoded once."""
        if inspect.isawaitable(message):
            message = await message
        if isinstance(message, str):
            return message
        return await self.encode(message)

    async def broadcast_to_channel(self, channel: str, message: Any) -> None:
        """Send ``message`` to every connection of ``channel``, on every process sharing the backend.

        Raises:
            BackendUnavailable: The backend cannot be reached (inside an action: an error frame, socket open).
        """
        text = await self.to_text(message)
        await self._running_layer().publish(channel, text)

    async def send_to_connection(self, connection_id: str, message: Any) -> None:
        """Send ``message`` to the one connection ``connection_id``, whichever process holds it.

        A connection that has gone (or never existed) is skipped silently. Ids come from ``get_connection_id``
        and ``get_members``.
        """
        text = await self.to_text(message)
        await self._running_layer().send_direct(text, connection_id=connection_id)

    async def send_to_user(self, user: str, message: Any, *, channel: str | None = None) -> None:
        """Send ``message`` to every connection of the authenticated ``user``, on every process.

        ``user`` is the name ``fastapi_channels.identity.user_of`` reads from ``scope["user"]``. With
        ``channel``, only the user's connections to that channel receive it.
        """
        text = await self.to_text(message)
        await self._running_layer().send_direct(text, user=user, channel=channel)

    def _running_layer(self) -> ChannelLayer:
        config = self.get_config()
        if not config.started:
            # Otherwise the broadcaster fails with an AttributeError that says nothing useful.
            raise RuntimeError(
                "The channel layer is not running: broadcast while the app runs (after its startup; in tests, "
                "inside `with TestClient(app) as client:`)."
            )
        return config.layer

    async def broadcast_to_personal(self, websocket: WebSocket, message: Any) -> None:
        """Send ``message`` to one socket; a no-op when it has already closed."""
        text = await self.to_text(message)
        connection = self.get_config(websocket).layer.connection_for(websocket)
        if connection is not None:
            # Waits until written, so a reply sent just before the handler closes the socket is not lost.
            await connection.deliver(text)
            return
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.send_text(text)

    async def get_connection_count(self, channel: str | None = None) -> int:
        """Return how many live connections ``channel`` (this channel by default) has.

        With presence shared through Redis (``add_channel(url="redis://...")``) this counts every process.
        """
        with _presence_errors():
            return await self.get_config().presence.count(channel or self.channel)

    async def get_members(self, channel: str | None = None) -> list[Member]:
        """Return who is connected to ``channel`` (this channel by default), oldest first, on every process.

        Each ``Member`` has the ``connection_id`` (for ``send_to_connection``), the authenticated ``user``
        (None for an anonymous client), the ``node`` (process) holding it and ``joined_at`` (a Unix time).
        """
        with _presence_errors():
            return await self.get_config().presence.members(channel or self.channel)

    def get_connection_id(self, websocket: WebSocket) -> str | None:
        """Return the id of ``websocket``'s connection, or None once it has left its channel."""
        connection = self.get_config(websocket).layer.connection_for(websocket)
        return connection.id if connection is not None else None

    async def close(self, websocket: WebSocket, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close ``websocket`` after the frames already queued for it have been sent."""
        connection = self.get_config(websocket).layer.connection_for(websocket)
        if connection is not None:
            connection.close(code, reason)
        elif websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code, reason)

    # -- permissions and limits ------------------------------------------------------------------------

    async def check_permissions(
        self,
        websocket: WebSocket,
        action: str | None,
        channel: str,
        permission: PermissionLike = None,
    ) -> None:
        """Raise ``PermissionDenied`` unless the channel permission and ``permission`` both allow."""
        config = self.get_config(websocket)
        close = action is None
        for required in (self.get_permissions(config), permission):
            if not await has_permission(required, websocket, action, channel=channel):
                raise PermissionDenied(close=close)

    async def check_throttles(
        self,
        websocket: WebSocket,
        channel: str,
        action: str | None = None,
        limits: tuple[RateSpec, ...] = (),
    ) -> None:
        """Spend one request of the channel-wide limits and of the action's own limits."""
        config = self.get_config(websocket)
        # Entries were checked when the channel (or add_channel) was configured: limiter(...) or fastapi-limiter.
        for throttle in self.get_throttles(config):
            if isinstance(throttle, RateSpec):
                for built in config.limiters.limiter_for((self, "*"), (throttle,)):
                    await built(websocket, context_key=f"{channel}:*")
            else:
                await call_fastapi_limiter(throttle, websocket, f"{channel}:*")
        if action is not None and limits:
            for built in config.limiters.limiter_for((self, action), limits):
                await built(websocket, context_key=f"{channel}:{action}")

    # -- the connection --------------------------------------------------------------------------------

    async def connect(self, websocket: WebSocket, channel: str | None = None) -> None:
        """Serve ``websocket`` in ``channel`` (this channel's name by default) until the connection ends."""
        channel = _check_channel_name(channel) if channel is not None else self.channel
        config = self.get_config(websocket)
        connection = Connection(websocket, channel, send_queue_size=config.layer.send_queue_size)
        config.layer.track(connection)
        token = _current_config.set(config)
        sender: asyncio.Task[None] | None = None
        admitted = session_started = False
        try:
            # Join the channel before the handshake completes: a client that sees the socket open misses nothing.
            admitted = await self._admit(connection, config)
            if websocket.application_state == WebSocketState.CONNECTING:
                await websocket.accept()
            sender = asyncio.create_task(connection.run_sender(), name=f"fastapi-channels-send:{connection.id}")
            if admitted:
                session_started = True
                await self._run_session(connection, config)
        finally:
            _current_config.reset(token)
            try:
                if admitted and not session_started:
                    await asyncio.shield(asyncio.ensure_future(config.layer.discard(connection)))
                connection.close()
                if sender is not None:
                    if connection.closed:
                        # The socket is already gone: nothing is left to flush and nothing would wake the sender.
                        sender.cancel()
                    await _finish(sender)
            finally:
                config.layer.untrack(connection)

    async def _admit(self, connection: Connection, config: FastAPIChannel) -> bool:
        websocket, channel = connection.websocket, connection.channel
        try:
            await self.check_permissions(websocket, None, channel)
            if not await config.layer.add(connection, max_connections=self.max_connection):
                raise ConnectionLimitExceeded()
        except Exception as exc:
            if isinstance(exc, WebSocketException):
                # A connection that may not join never stays open.
                exc.close = True
            if websocket.application_state == WebSocketState.CONNECTING:
                # Accepted so that the client reads why, rather than a bare handshake failure.
                await websocket.accept()
            await self.handle_exception(connection, exc)
            return False
        return True

    async def _run_session(self, connection: Connection, config: FastAPIChannel) -> None:
        websocket, channel = connection.websocket, connection.channel
        stack = contextlib.AsyncExitStack()
        joined = False
        try:
            try:
                await stack.enter_async_context(self.events.open_lifespan(self, websocket, channel))
                await self.events.run_join(websocket, channel)
            except Exception as exc:
                await self.handle_exception(connection, exc)
                if connection.closing or connection.closed:
                    return
            joined = True
            await config.layer.set_user(connection, user_of(websocket))
            await self._receive_loop(connection, config.layer)
        finally:
            # Leaving runs to the end even when this task is cancelled (server shutdown, a test client exiting).
            await asyncio.shield(asyncio.ensure_future(self._leave(connection, config, stack, joined=joined)))

    async def _leave(
        self, connection: Connection, config: FastAPIChannel, stack: contextlib.AsyncExitStack, *, joined: bool
    ) -> None:
        websocket, channel = connection.websocket, connection.channel
        try:
            # Leave the fan-out first, so the leave handlers' broadcasts reach only those who stay.
            await config.layer.discard(connection)
            if joined:
                await self.events.run_leave(websocket, channel)
        finally:
            try:
                await stack.aclose()
            except Exception:
                logger.exception("The lifespan of a connection to %r failed on exit", channel)

    async def _receive_loop(self, connection: Connection, layer: ChannelLayer) -> None:
        websocket = connection.websocket
        while not (connection.closing or connection.closed):
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                connection.closed = True
                return
            text = message.get("text")
            token = _current_request.set(_Request())
            try:
                if text is None:
                    raise ParseError(
                        status.WS_1003_UNSUPPORTED_DATA,
                        error_msg="Binary frames are not supported: send JSON text.",
                    )
                await self.on_receive(websocket, connection.channel, text)
            except LimitHandled:
                pass
            except Exception as exc:
                await self.handle_exception(connection, exc)
            finally:
                _current_request.reset(token)
            # The action may have logged the client in or out (scope["user"]): address it by its new name.
            await layer.set_user(connection, user_of(websocket))
            if websocket.application_state != WebSocketState.CONNECTED:
                # The handler closed the socket itself.
                connection.closed = True
                return

    async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
        """Handle one text frame: relay it to the channel, within the channel-wide limits."""
        await self.check_throttles(websocket, channel)
        await self.broadcast_to_channel(channel, message)

    async def handle_exception(self, connection: Connection, exc: Exception) -> None:
        """Answer a failed frame: through the app's handler for a ``WebSocketException``, else with 1011."""
        websocket = connection.websocket
        request = _current_request.get(None)
        if isinstance(exc, WebSocketException):
            if request is not None:
                exc.action = exc.action if exc.action is not None else request.action
                exc.request_id = exc.request_id if exc.request_id is not None else request.request_id
            handler = lookup_exception_handler(websocket, exc)
            try:
                result = handler(websocket, exc)
                if inspect.isawaitable(result):
                    await result
                return
            except Exception as handler_exc:
                exc = handler_exc
        logger.error("Error while handling a message on channel %r", connection.channel, exc_info=exc)
        connection.send(
            render(
                internal_error_payload(
                    action=request.action if request else None,
                    request_id=request.request_id if request else None,
                )
            )
        )
        connection.close(status.WS_1011_INTERNAL_ERROR, "Internal error")


class Channel(BaseChannel):
    """Dispatch JSON frames ``{"action": name, ...}`` to the actions declared with ``@action`` or ``.action()``."""

    _class_actions: ClassVar[dict[str, RegisteredAction]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, RegisteredAction] = {}
        for attribute, value in vars(cls).items():
            spec = get_action_spec(value)
            if spec is None:
                continue
            if spec.name in declared:
                raise TypeError(
                    f"{cls.__name__} declares the action {spec.name!r} twice "
                    f"({declared[spec.name].target!r} and {attribute!r}): give each a unique name."
                )
            declared[spec.name] = RegisteredAction.for_method(spec, attribute, value)
        inherited = {name: entry for name, entry in cls._class_actions.items() if entry.target not in vars(cls)}
        cls._class_actions = {**inherited, **declared}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._instance_actions: dict[str, RegisteredAction] = {}

    @property
    def actions(self) -> list[str]:
        """Return the names of the actions clients can call."""
        return [*self._class_actions, *self._instance_actions]

    def action(
        self, name: str | None = None, *, permission: PermissionLike = None, deprecated: bool = False
    ) -> Callable[[F], F]:
        """Register a plain function as an action of this channel object only."""
        check_permission_like(permission)

        def decorator(func: F) -> F:
            declare_action(name, permission=permission, deprecated=deprecated)(func)
            spec = get_action_spec(func)
            assert spec is not None
            if spec.name in self._class_actions or spec.name in self._instance_actions:
                raise ValueError(f"{type(self).__name__} already has an action named {spec.name!r}.")
            self._instance_actions[spec.name] = RegisteredAction.for_function(spec, func)
            return func

        return decorator

    def get_action(self, name: str) -> RegisteredAction:
        """Return the registered action ``name``, raising ``ActionNotExist`` when there is none."""
        entry = self._instance_actions.get(name) or self._class_actions.get(name)
        if entry is None:
            raise ActionNotExist(error_msg=f"The action {name!r} does not exist.")
        return entry

    async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
        """Decode the frame, then check and run its action."""
        request = _current_request.get(None)
        data = await self.decode(message)
        request_id = request_id_of(data)
        if request is not None:
            request.request_id = request_id
        name = action_of(data)
        if request is not None:
            request.action = name
        entry = self.get_action(name)
        if entry.spec.deprecated:
            raise ActionIsDeprecated(error_msg=f"The action {name!r} is deprecated.")
        await self.check_permissions(websocket, name, channel, entry.spec.permission)
        await self.check_throttles(websocket, channel, name, get_limits(entry.function(self)))
        await entry.call(self, websocket=websocket, channel=channel, data=data, action=name, request_id=request_id)


@contextlib.contextmanager
def _presence_errors() -> Iterator[None]:
    try:
        yield
    except PresenceUnavailable as exc:
        raise BackendUnavailable(error_msg="Who is connected cannot be read right now. Try again later.") from exc


def _check_channel_name(channel: Any) -> str:
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"A channel name must be a non-empty string, not {channel!r}.")
    return channel


async def _finish(sender: asyncio.Task[None]) -> None:
    """Let the sender flush what is queued, for a bounded time; it never outlives the connection."""
    try:
        await asyncio.wait({sender}, timeout=SENDER_FLUSH_TIMEOUT)
    finally:
        if not sender.done():
            sender.cancel()
