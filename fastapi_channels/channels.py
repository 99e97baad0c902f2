"""Channels: ``BaseChannel`` relays text within a channel; ``Channel`` dispatches JSON frames to actions.

A channel object holds configuration and the hooks users override; ``connect`` hands each websocket to a
``Session`` (one object per connection, see ``session``), which runs the connection's life and calls back
into these hooks. What does not change between frames (the app configuration, the resolved permissions
and limits, each action's bound handler) is resolved when a connection opens, not on every frame.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI
from starlette import status
from starlette.websockets import WebSocket, WebSocketState
from typing_extensions import Unpack

from fastapi_channels.actions import PreparedAction, PreparedChannel, prepare_action, prepare_throttles
from fastapi_channels.codecs import JSON_TEXT, Codec, frame_decoder, resolve_codecs
from fastapi_channels.config import STATE_KEY, FastAPIChannel, get_channel_config
from fastapi_channels.decorators import ActionOptions, RegisteredAction, check_action_name, get_action_spec
from fastapi_channels.decorators import action as declare_action
from fastapi_channels.dependencies import Dependency, read_dependencies
from fastapi_channels.exceptions import (
    ActionIsDeprecated,
    ActionNotExist,
    BackendUnavailable,
    ParseError,
    PermissionDenied,
)
from fastapi_channels.history import HistoryPage, Position, Retention
from fastapi_channels.lifespan import ChannelEvents, EventHandler, Lifespan
from fastapi_channels.memberships import DEFAULT_MAX_CHANNELS_PER_CONNECTION, check_max_channels
from fastapi_channels.messages import check_sends
from fastapi_channels.origin import check_allowed_origins
from fastapi_channels.outbox import CONNECTION_KEY, Connection
from fastapi_channels.permission import PermissionLike, allows_everyone, check_permission_like, has_permission
from fastapi_channels.presence import Member, PresenceUnavailable
from fastapi_channels.protocol import (
    MAX_NAME_LENGTH,
    Frame,
    action_of,
    encode,
    is_json_text,
    parse_frame,
    request_id_of,
)
from fastapi_channels.routing import ActionRouter, IncludeRouter, include_actions
from fastapi_channels.session import FrameHandler, Session, current_config, session_of
from fastapi_channels.throttling import RateSpec, check_throttle_like
from fastapi_channels.topics import DEFAULT_TOPIC_QUEUE_SIZE, TopicPattern, TopicSubscription

__all__ = ["BaseChannel", "Channel", "SERVES_ATTR"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CHANNEL = "default_channel"

# The built-in frames that join and leave channels, for channel objects with client_subscriptions.
_SUBSCRIPTION_FRAMES = ("subscribe", "unsubscribe")

SERVES_ATTR = "__fastapi_channels_serves__"
"""The attribute ``BaseChannel.serves`` sets on a websocket route function: the channel object it serves."""


def _retention(size: Any, ttl: Any) -> Retention | None:
    """Return the history a channel keeps, checking its settings, or None when it keeps none."""
    if size is None:
        if ttl is not None:
            raise ValueError("history_ttl needs a history_size too: history is bounded by a number of publications.")
        return None
    return Retention(size, ttl)


def _check_client_subscriptions(owner: type[BaseChannel], value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"client_subscriptions must be True or False, not {value!r}.")
    if value and not owner.speaks_json:
        raise TypeError(
            f"{owner.__name__} is a BaseChannel, which relays text and reads no subscribe frames: subclass Channel to "
            "let clients join channels themselves, or join them from server code with join()."
        )


class BaseChannel:
    """Relay every text frame a client sends to everyone in its channel.

    Configure with class attributes or constructor keywords of the same name (the keyword wins).
    ``permission_classes`` and ``throttle_classes`` left as None take the defaults given to ``add_channel``.
    ``allowed_origins`` replaces ``add_channel``'s list of other sites whose pages may connect.
    ``group`` names the space the channel names of this object live in: objects of one class share it by
    default, so a ``lobby`` of one class and a ``lobby`` of another are separate rooms. Give objects of
    several classes the same ``group`` to let them share their rooms.
    ``codecs`` are how clients may encode their frames (see ``fastapi_channels.codecs``); a relay speaks JSON text.
    ``sends`` declares the messages the server sends besides replies and error frames, ``{name: type}``, for the
    AsyncAPI document.
    ``history_size`` (and optionally ``history_ttl``, in seconds) keeps the channel's last broadcasts, so that a
    client that reconnects with the position of the last one it received is sent what it missed (see the
    History and resume guide); each broadcast then reaches clients as a publication frame.
    """

    channel: str = DEFAULT_CHANNEL
    max_connection: int | None = None
    permission_classes: PermissionLike = None
    throttle_classes: Sequence[Any] | None = None
    on_join: Sequence[EventHandler] | None = None
    on_leave: Sequence[EventHandler] | None = None
    lifespan: Lifespan | None = None
    group: str | None = None
    allowed_origins: Sequence[str] | None = None
    codecs: Sequence[Codec] = (JSON_TEXT,)
    """The codecs clients may speak, the server's preferred first: the first is for clients that offer none."""
    sends: Mapping[str, Any] | None = None
    history_size: int | None = None
    history_ttl: float | None = None
    join_permission: PermissionLike = None
    max_channels_per_connection: int = DEFAULT_MAX_CHANNELS_PER_CONNECTION
    client_subscriptions: bool = False
    speaks_json: ClassVar[bool] = False
    """Whether clients speak JSON frames (``Channel``), and so get heartbeat pings; a relay passes raw text."""

    # Bumped when an action is registered on the object, so that what was prepared for it is prepared again.
    _version: int = 0
    # The channel-wide dependencies, read (``Channel`` has them; a relay has no actions to run them before).
    _dependencies: tuple[Dependency, ...] = ()

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
        group: str | None = None,
        allowed_origins: Sequence[str] | None = None,
        codecs: Sequence[Codec] | None = None,
        sends: Mapping[str, Any] | None = None,
        history_size: int | None = None,
        history_ttl: float | None = None,
        join_permission: PermissionLike = None,
        max_channels_per_connection: int | None = None,
        client_subscriptions: bool | None = None,
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
        self.codecs = self._check_codecs(codecs if codecs is not None else self.codecs)
        self.allowed_origins = check_allowed_origins(
            allowed_origins if allowed_origins is not None else self.allowed_origins
        )
        self.events = ChannelEvents(
            on_join=on_join if on_join is not None else self.on_join,
            on_leave=on_leave if on_leave is not None else self.on_leave,
            lifespan=lifespan if lifespan is not None else self.lifespan,
        )
        group = group if group is not None else self.group
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"group must be a non-empty string or None, not {group!r}.")
        self.group = group or f"{type(self).__module__}.{type(self).__qualname__}"
        if sends is not None:  # the class attribute was checked when the class was created
            self.sends = check_sends(sends, where=type(self).__name__)
        # Channels of objects in different groups never meet: "lobby" of a relay and of a chat are two topics.
        self._topic_prefix = f"{len(self.group)}:{self.group}:"
        self.history_size = history_size if history_size is not None else self.history_size
        self.history_ttl = history_ttl if history_ttl is not None else self.history_ttl
        self.retention = _retention(self.history_size, self.history_ttl)
        """How much history the channel keeps, or None when it keeps none."""
        # Read from the class as it is written there: a plain function would otherwise become a bound method.
        self.join_permission = join_permission if join_permission is not None else _static(self, "join_permission")
        check_permission_like(self.join_permission)
        self.max_channels_per_connection = check_max_channels(
            max_channels_per_connection if max_channels_per_connection is not None else self.max_channels_per_connection
        )
        if client_subscriptions is not None:
            self.client_subscriptions = client_subscriptions
        _check_client_subscriptions(type(self), self.client_subscriptions)
        self.endpoint = _endpoint_name(f"{type(self).__module__}.{type(self).__qualname__}:{self.channel}")
        """Names the connections this object serves, the same in every process running the app's code."""
        # Hooks left as they are run inline, without a coroutine per frame.
        self._plain_encode = self.encode_json is BaseChannel.encode_json
        self._plain_decode = self.decode_json is BaseChannel.decode_json
        self._prepared: weakref.WeakKeyDictionary[FastAPIChannel, PreparedChannel] = weakref.WeakKeyDictionary()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if vars(cls).get("sends") is not None:
            check_sends(cls.sends, where=cls.__name__)
        _retention(cls.history_size, cls.history_ttl)  # a bad setting fails here, not at the first connection
        check_max_channels(cls.max_channels_per_connection)
        _check_client_subscriptions(cls, cls.client_subscriptions)
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

    def _check_codecs(self, codecs: Sequence[Codec]) -> tuple[Codec, ...]:
        resolved = resolve_codecs(codecs, owner=type(self).__name__)
        if not self.speaks_json:
            for codec in resolved:
                if not codec.passes_json_text:
                    raise TypeError(
                        f"{type(self).__name__} is a BaseChannel, which relays text frames unchanged: it cannot speak "
                        f"{codec.name}. Subclass Channel to let clients speak it."
                    )
        return resolved

    def get_config(self, websocket: WebSocket | None = None) -> FastAPIChannel:
        """Return the app configuration that ``add_channel`` created for this channel's app."""
        if websocket is None and self.app is not None:
            config = getattr(self.app.state, STATE_KEY, None)
            if isinstance(config, FastAPIChannel):
                return config
            raise RuntimeError("The app given to this channel has no channels: call add_channel(app).")
        if websocket is None:
            current = current_config.get(None)
            if current is not None and current.started:
                return current
        return get_channel_config(websocket)

    def topic(self, channel: str) -> str:
        """Return what the channel layer and presence file ``channel`` of this object's group under."""
        return self._topic_prefix + channel

    def backend_channel(self, channel: str | None = None) -> str:
        """Return the name broadcasts to ``channel`` (this channel by default) travel under in the backend.

        For code that publishes through the same ``Broadcast`` (or Redis) directly: the name carries the
        app's namespace and this object's group, so publish encoded text to exactly this name.
        """
        return self.get_config().layer.prefix + self.topic(channel or self.channel)

    def get_permissions(self, config: FastAPIChannel) -> PermissionLike:
        """Return the channel-level permission: this channel's own, else the app default."""
        return self.permission_classes if self.permission_classes is not None else config.permission_classes

    def get_throttles(self, config: FastAPIChannel) -> tuple[Any, ...]:
        """Return the channel-wide limits: this channel's own, else the app default."""
        return tuple(self.throttle_classes) if self.throttle_classes is not None else config.throttle_classes

    def serves(self, endpoint: F) -> F:
        """Mark ``endpoint``, a websocket route function, as the one serving this object (for the AsyncAPI document).

        Raises:
            ValueError: ``endpoint`` already serves another channel object.
        """
        if not inspect.isfunction(endpoint):
            raise TypeError(f"@{type(self).__name__}.serves marks websocket route functions, not {endpoint!r}.")
        served = getattr(endpoint, SERVES_ATTR, self)
        if served is not self:
            raise ValueError(f"{endpoint.__qualname__} already serves {served!r}: give each channel object its route.")
        setattr(endpoint, SERVES_ATTR, self)
        return endpoint

    # -- events ----------------------------------------------------------------------------------------

    def add_event_handler(self, event_type: str, func: EventHandler) -> None:
        """Call ``func(websocket, channel)`` when a client joins (``"join"``) or leaves (``"leave"``)."""
        self.events.add_event_handler(event_type, func)

    def on_event(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        """Register the decorated function as a ``"join"`` or ``"leave"`` handler."""
        return self.events.on_event(event_type)

    # -- encoding --------------------------------------------------------------------------------------

    @staticmethod
    async def encode_json(data: Any) -> str:
        """Encode a message as JSON text; override to shape every outgoing message."""
        return encode(data)

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
        if self._plain_decode:
            return parse_frame(message)
        decoded: Any = self.decode_json(message)
        if inspect.isawaitable(decoded):
            decoded = await decoded
        if not isinstance(decoded, dict):
            raise ParseError(error_msg='The message must be a JSON object such as {"action": "..."}.')
        return decoded

    async def to_text(self, message: Any) -> str:
        """Return ``message`` as it goes on the wire: a ``str`` as it is, anything else encoded once."""
        if isinstance(message, str):
            return message
        if inspect.isawaitable(message):
            message = await message
            if isinstance(message, str):
                return message
        if self._plain_encode:
            return encode(message)
        return await self.encode(message)

    # -- sending ---------------------------------------------------------------------------------------

    async def broadcast_to_channel(self, channel: str, message: Any) -> Position | None:
        """Send ``message`` to every connection of ``channel``, on every process sharing the backend.

        On a channel with history, the message is kept there too and goes out as a publication frame; its
        position (offset and epoch) is returned. Otherwise None is.

        Raises:
            BackendUnavailable: The backend cannot be reached (inside an action: an error frame, socket open).
        """
        if self.retention is not None:
            return await self._publish_to_history(channel, message, self.retention)
        text = message if isinstance(message, str) else await self.to_text(message)
        await self._running_config().layer.publish(self._topic_prefix + channel, text)
        return None

    async def _publish_to_history(self, channel: str, message: Any, retention: Retention) -> Position:
        # A message we encoded is JSON; text given as it is (or from an encode_json override) is checked.
        encoded = not isinstance(message, str) and self._plain_encode and not inspect.isawaitable(message)
        text = await self.to_text(message)
        layer = self._running_config().layer
        return await layer.publish_to_history(
            self._topic_prefix + channel, channel, text, is_json=encoded or is_json_text(text), retention=retention
        )

    async def history(
        self, channel: str | None = None, *, limit: int | None = None, since: int | None = None
    ) -> HistoryPage:
        """Return the publications ``channel`` (this channel by default) keeps, oldest first.

        With ``since``, those after that offset (the first ``limit`` of them); otherwise the last ``limit``
        (all by default). The page also says where the stream stands (its last offset and its epoch: offsets of
        another epoch do not compare) and, with ``since``, whether any publication after it is gone.

        Raises:
            RuntimeError: The channel keeps no history (give it a ``history_size``).
            BackendUnavailable: The history store cannot be reached.
        """
        if self.retention is None:
            raise RuntimeError(f"{type(self).__name__} keeps no history: give it a history_size.")
        for name, value, lowest in (("limit", limit, 1), ("since", since, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lowest):
                raise ValueError(f"{name} must be an integer of at least {lowest}, or None, not {value!r}.")
        layer = self._running_config().layer
        return await layer.read_history(self.topic(channel or self.channel), self.retention, since, limit)

    async def send_to_connection(self, connection_id: str, message: Any) -> None:
        """Send ``message`` to the one connection ``connection_id``, whichever process holds it.

        A connection that has gone (or never existed) is skipped silently. Ids come from ``get_connection_id``
        and ``get_members``.
        """
        text = await self.to_text(message)
        await self._running_config().layer.send_direct(text, connection_id=connection_id)

    async def send_to_user(self, user: str, message: Any, *, channel: str | None = None) -> None:
        """Send ``message`` to the authenticated ``user``'s connections served by this channel object.

        It reaches them in every channel (room) this object serves, on every process; with ``channel``, only
        in that channel. ``user`` is the name ``fastapi_channels.identity.user_of`` reads from
        ``scope["user"]``. To reach the user in every channel of the app, use ``fastapi_channels.send_to_user``.
        """
        text = await self.to_text(message)
        await self._running_config().layer.send_direct(text, user=user, channel=channel, endpoint=self.endpoint)

    def _running_config(self) -> FastAPIChannel:
        config = self.get_config()
        if not config.started:
            # Otherwise the broadcaster fails with an AttributeError that says nothing useful.
            raise RuntimeError(
                "The channel layer is not running: broadcast while the app runs (after its startup; in tests, "
                "inside `with TestClient(app) as client:`)."
            )
        return config

    async def broadcast_to_personal(self, websocket: WebSocket, message: Any) -> None:
        """Send ``message`` to one socket; a no-op when it has already closed."""
        if type(message) is str:
            text = message
        elif self._plain_encode and type(message) is dict:  # the common case, without a coroutine
            text = encode(message)
        else:
            text = await self.to_text(message)
        connection = websocket.scope.get(CONNECTION_KEY)
        if type(connection) is Connection:
            # Waits until written, so a reply sent just before the handler closes the socket is not lost.
            written = connection.write(text)
            if written is not None:
                await written
        elif websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.send_text(text)

    async def get_connection_count(self, channel: str | None = None) -> int:
        """Return how many live connections ``channel`` (this channel by default) has.

        With presence shared through Redis (``add_channel(url="redis://...")``) this counts every process.
        """
        with _presence_errors():
            return await self.get_config().presence.count(self.topic(channel or self.channel))

    async def get_members(self, channel: str | None = None) -> list[Member]:
        """Return who is connected to ``channel`` (this channel by default), oldest first, on every process.

        Each ``Member`` has the ``connection_id`` (for ``send_to_connection``), the authenticated ``user``
        (None for an anonymous client), the ``node`` (process) holding it and ``joined_at`` (a Unix time).
        """
        with _presence_errors():
            return await self.get_config().presence.members(self.topic(channel or self.channel))

    def get_connection_id(self, websocket: WebSocket) -> str | None:
        """Return the id of ``websocket``'s connection, or None once it has left its channel."""
        connection = websocket.scope.get(CONNECTION_KEY)
        return connection.id if isinstance(connection, Connection) else None

    async def close(self, websocket: WebSocket, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close ``websocket`` after the frames already queued for it have been sent."""
        connection = websocket.scope.get(CONNECTION_KEY)
        if isinstance(connection, Connection):
            connection.close(code, reason)
        elif websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code, reason)

    # -- several channels per connection ---------------------------------------------------------------

    async def join(self, websocket: WebSocket, channel: str, *, since: Position | None = None) -> bool:
        """Add ``websocket``'s connection to ``channel`` of this object, besides the channels it is in already.

        The join is checked as connecting is (``permission_classes`` or your ``check_permissions``, asked about
        the action ``"join"``, and ``join_permission``) and admitted under this object's ``max_connection``; then
        its lifespan enters and its join handlers run. On a channel with history the client is sent the resume
        frame, after what it missed since ``since`` when given. Returns False, doing nothing, when the connection
        is in the channel already. From the first join on, the connection's broadcasts come in broadcast frames.

        Raises:
            RuntimeError: ``websocket`` is not served by ``connect`` on this process.
            ParseError: ``channel`` is not a name (a non-empty string of at most 256 characters).
            WebSocketException: The connection is closing, in ``max_channels_per_connection`` channels already, or
                in another channel of the same name.
            PermissionDenied: A permission refuses.
            ConnectionLimitExceeded: The channel holds ``max_connection`` connections.
            BackendUnavailable: Presence or history cannot be reached.

        Each is answered with an error frame inside an action, and the socket stays open.
        """
        session = session_of(websocket)
        if session is None:
            raise RuntimeError(
                "join() takes the websocket of a connection that connect() serves on this process, while it is open."
            )
        self._prepared_for(session.config)  # this object may serve no connection of its own: checked here then
        return await session.memberships().join(self, channel, since=since)

    async def leave(self, websocket: WebSocket, channel: str) -> bool:
        """Take ``websocket``'s connection out of ``channel`` of this object, which it joined; run the leave handlers.

        Returns False, doing nothing, when the connection is not in the channel (or has ended).

        Raises:
            ParseError: ``channel`` is not a name.
            ValueError: ``channel`` is the connection's own: close the connection instead.
        """
        session = session_of(websocket)
        if session is None:
            return False
        return await session.memberships().leave(self, channel)

    def get_channels(self, websocket: WebSocket) -> list[str]:
        """Return the channels ``websocket``'s connection is in: its own, then those it joined, in join order."""
        session = session_of(websocket)
        return session.channels() if session is not None else []

    def listen(
        self, pattern: str, *, queue_size: int = DEFAULT_TOPIC_QUEUE_SIZE
    ) -> AbstractAsyncContextManager[TopicSubscription]:
        """Hear every channel of this object whose name matches the topic ``pattern``, on every process.

        ``+`` stands for one dot-separated segment, ``#`` (only as the last segment) for the rest:
        ``async with room.listen("sensors.+.temp") as messages: async for channel, message in messages: ...``.
        At most ``queue_size`` messages wait for the reader; a slower reader loses the oldest (counted in
        ``messages.dropped``).

        Raises:
            ValueError: The pattern or ``queue_size`` is malformed.
            RuntimeError: The app is not running, or its backend cannot subscribe to patterns.
        """
        topic_pattern = TopicPattern(pattern)
        layer = self._running_config().layer
        return layer.subscribe_pattern(
            topic_pattern,
            topic_prefix=self._topic_prefix,
            queue_size=queue_size,
            publications=self.retention is not None,
        )

    # -- permissions and limits ------------------------------------------------------------------------

    async def check_permissions(
        self,
        websocket: WebSocket,
        action: str | None,
        channel: str,
        permission: PermissionLike = None,
    ) -> None:
        """Raise ``PermissionDenied`` unless the channel permission and ``permission`` both allow."""
        config = self._config_of(websocket)
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
        config = self._config_of(websocket)
        for throttle in self._prepared_for(config).throttles:
            await throttle(websocket, f"{channel}:*")
        if action is not None and limits:
            for built in config.limiters.limiter_for((self, action), limits):
                await built(websocket, f"{channel}:{action}")

    def _config_of(self, websocket: WebSocket) -> FastAPIChannel:
        session = session_of(websocket)
        return session.config if session is not None else self.get_config(websocket)

    # -- the connection --------------------------------------------------------------------------------

    def connect(self, websocket: WebSocket, channel: str | None = None) -> Coroutine[Any, Any, None]:
        """Serve ``websocket`` in ``channel`` (this channel's name by default) until the connection ends.

        Await it: ``await room.connect(websocket)``. It returns the session's coroutine rather than awaiting it,
        which keeps one coroutine frame fewer between the server and every frame the client sends.
        """
        channel = _check_channel_name(channel) if channel is not None else self.channel
        config = self.get_config(websocket)
        self._prepared_for(config)  # prepared before the connection is admitted: a mistake in it refuses it
        return Session(self, websocket, channel, config).run()

    def frame_handler(self, session: Session) -> FrameHandler:
        """Return what handles each frame of ``session``: ``on_receive``, or an inlined relay."""
        websocket, channel = session.websocket, session.channel
        if type(self).on_receive is not BaseChannel.on_receive or _overrides(self, "check_throttles"):
            on_receive = self.on_receive
            if any(codec.binary for codec in self.codecs):
                decode = frame_decoder(session.codec, self.codecs)

                async def receive_any(frame: str | bytes) -> None:
                    # on_receive reads text: a binary frame reaches it as the JSON text of what it holds.
                    await on_receive(websocket, channel, frame if type(frame) is str else encode(decode(frame)))

                return receive_any

            async def receive(text: str) -> None:
                await on_receive(websocket, channel, text)

            return receive
        throttles, layer = self._prepared_for(session.config).throttles, session.config.layer
        everything, topic = f"{channel}:*", self.topic(channel)
        retention = self.retention
        if retention is not None:

            async def relay_to_history(text: str) -> None:
                for throttle in throttles:
                    await throttle(websocket, everything)
                await layer.publish_to_history(topic, channel, text, is_json=is_json_text(text), retention=retention)

            return relay_to_history

        async def relay(text: str) -> None:
            for throttle in throttles:
                await throttle(websocket, everything)
            await layer.publish(topic, text)

        return relay

    async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
        """Handle one text frame: relay it to the channel, within the channel-wide limits."""
        await self.check_throttles(websocket, channel)
        await self.broadcast_to_channel(channel, message)

    async def handle_exception(self, connection: Connection, exc: Exception) -> None:
        """Answer a failed frame: through the app's handler for a ``WebSocketException``, else with 1011."""
        session = session_of(connection.websocket)
        if session is not None:
            await session.answer(exc)

    def _registry(self) -> dict[str, RegisteredAction]:
        return {}

    def _prepared_for(self, config: FastAPIChannel) -> PreparedChannel:
        """Return this object's actions and limits prepared for ``config``'s current run."""
        prepared = self._prepared.get(config)
        if prepared is None or prepared.generation != config.generation or prepared.version != self._version:
            prepared = self._prepare(config)
            self._prepared[config] = prepared
        return prepared

    def _prepare(self, config: FastAPIChannel) -> PreparedChannel:
        channel_open = allows_everyone(self.get_permissions(config)) and not _overrides(self, "check_permissions")
        actions = {
            name: prepare_action(
                self,
                entry,
                config.limiters,
                channel_allows_everyone=channel_open,
                action_allows_everyone=allows_everyone(entry.spec.permission),
                dependencies=self._dependencies,
            )
            for name, entry in self._registry().items()
        }
        throttles = prepare_throttles(self, self.get_throttles(config), config.limiters)
        # Once per run: objects sharing channels must agree on their history before any connection is admitted.
        config.layer.claim_group(str(self.group), self.retention, f"{type(self).__name__}(channel={self.channel!r})")
        return PreparedChannel(config.generation, self._version, actions, throttles)


class _IncludeRouter:
    """The ``include_router`` of channels: on a class, for every object of it; on an object, for that object."""

    def __get__(self, obj: Channel | None, owner: type[Channel]) -> IncludeRouter:
        def include_router(router: ActionRouter, *, prefix: str = "") -> None:
            if obj is None:
                owner._include_router_in_class(router, prefix)
            else:
                obj._include_router_in_object(router, prefix)

        return include_router


class Channel(BaseChannel):
    """Dispatch JSON frames ``{"action": name, ...}`` to the actions declared with ``@action`` or ``.action()``.

    ``dependencies`` lists FastAPI ``Depends(...)`` to run before every action of the channel object (after its
    permission and rate limit checks), their values unused.
    """

    dependencies: Sequence[Any] | None = None
    _class_actions: ClassVar[dict[str, RegisteredAction]] = {}
    speaks_json: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, RegisteredAction] = {}
        # Where the handlers' string annotations are evaluated, besides their module: the class body.
        namespace = {**vars(cls), cls.__name__: cls}
        for attribute, value in vars(cls).items():
            spec = get_action_spec(value)
            if spec is None:
                continue
            if spec.name in declared:
                raise TypeError(
                    f"{cls.__name__} declares the action {spec.name!r} twice "
                    f"({declared[spec.name].target!r} and {attribute!r}): give each a unique name."
                )
            declared[spec.name] = RegisteredAction.for_method(
                spec, attribute, value, owner=cls.__name__, namespace=namespace
            )
        inherited = {name: entry for name, entry in cls._class_actions.items() if entry.target not in vars(cls)}
        cls._class_actions = {**inherited, **declared}

    def __init__(self, *, dependencies: Sequence[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if dependencies is not None:
            self.dependencies = dependencies
        self._dependencies = read_dependencies(self.dependencies, f"{type(self).__name__}.dependencies")
        self._instance_actions: dict[str, RegisteredAction] = {}

    @property
    def actions(self) -> list[str]:
        """Return the names of the actions clients can call."""
        return [*self._class_actions, *self._instance_actions]

    def action(self, name: str | None = None, **options: Unpack[ActionOptions]) -> Callable[[F], F]:
        """Register a plain function as an action of this channel object only (the arguments of ``@action``)."""
        if name is not None:
            check_action_name(name)
        declare = declare_action(name, **options)

        def decorator(func: F) -> F:
            declare(func)
            spec = get_action_spec(func)
            if spec is None:  # pragma: no cover - declare_action always attaches one
                raise TypeError(f"{func!r} could not be declared as an action.")
            if spec.name in self._class_actions or spec.name in self._instance_actions:
                raise ValueError(f"{type(self).__name__} already has an action named {spec.name!r}.")
            self._instance_actions[spec.name] = RegisteredAction.for_function(spec, func)
            self._version += 1
            return func

        return decorator

    include_router = _IncludeRouter()
    """Add an ``ActionRouter``'s actions: ``ChatChannel.include_router(router)`` to every object of the class,
    ``room.include_router(router)`` to that object only; ``prefix=`` is put before their names.

    Raises ``ValueError`` when an action name is taken (the router included twice, too).
    """

    @classmethod
    def _include_router_in_class(cls, router: ActionRouter, prefix: str) -> None:
        subclasses = [sub.__name__ for sub in cls.__subclasses__()]
        if subclasses:
            # Their registries were copied from this class when they were created.
            named = ", ".join(subclasses[:3]) + (", ..." if len(subclasses) > 3 else "")
            raise TypeError(
                f"{cls.__name__} already has subclasses ({named}): include routers into {cls.__name__} right after "
                "defining it, before subclassing it, or into each subclass."
            )
        added = include_actions(
            router, cls._class_actions, owner=cls, channel_base=BaseChannel, into=cls.__name__, prefix=prefix
        )
        cls._class_actions = {**cls._class_actions, **added}

    def _include_router_in_object(self, router: ActionRouter, prefix: str) -> None:
        into = f"the {type(self).__name__} object of channel {self.channel!r}"
        registry = self._registry()
        added = include_actions(router, registry, owner=type(self), channel_base=BaseChannel, into=into, prefix=prefix)
        self._instance_actions.update(added)
        self._version += 1

    def get_action(self, name: str) -> RegisteredAction:
        """Return the registered action ``name``, raising ``ActionNotExist`` when there is none."""
        entry = self._instance_actions.get(name) or self._class_actions.get(name)
        if entry is None:
            raise ActionNotExist(error_msg=f"The action {name!r} does not exist.")
        return entry

    def frame_handler(self, session: Session) -> FrameHandler:
        """Return what handles each frame of ``session``: ``on_receive`` if overridden, else an inlined dispatch."""
        if type(self).on_receive is not Channel.on_receive:
            return super().frame_handler(session)
        websocket, channel, config, connection = session.websocket, session.channel, session.config, session.connection
        prepared = self._prepared_for(config)
        own_throttles = _overrides(self, "check_throttles")
        everything = f"{channel}:*"
        built_in = self._answer_built_in
        # Frames are decoded by the connection's codec; decode_json, when overridden, reads the text frames.
        decode, plain_decode = frame_decoder(session.codec, self.codecs), self._plain_decode

        async def dispatch(text: str | bytes) -> None:
            nonlocal prepared
            data = decode(text) if plain_decode or type(text) is not str else await self.decode(text)
            # The common frame, an action name and no request_id, is read without a call; the rest is checked.
            request_id = data.get("request_id")
            if request_id is not None:
                request_id = request_id_of(data)
            session.request_id = request_id  # echoed by the error frame, even when the action name is bad
            name = data.get("action")
            if type(name) is not str or not 0 < len(name) <= MAX_NAME_LENGTH:
                name = action_of(data)
            session.action = name
            if prepared.version != self._version:
                prepared = self._prepared_for(config)
            action = prepared.actions.get(name)
            if action is None:
                await built_in(session, name, data, request_id)
                return
            if action.checked or own_throttles or prepared.throttles:
                await check(action, name)
            result = action.invoke(websocket, channel, data, request_id)
            if action.is_async or inspect.isawaitable(result):
                result = await result
            if result is not None:
                # Through the outbox, as broadcast_to_personal: the reply keeps its place among the frames sent.
                written = connection.write(action.reply(request_id, result))
                if written is not None:
                    await written

        async def check(action: PreparedAction, name: str) -> None:
            if action.deprecated:
                raise ActionIsDeprecated(error_msg=f"The action {name!r} is deprecated.")
            if action.check_permission:
                await self.check_permissions(websocket, name, channel, action.permission)
            if own_throttles:
                await self.check_throttles(websocket, channel, name, action.limits)
            else:
                for throttle in prepared.throttles:
                    await throttle(websocket, everything)
                for throttle in action.throttles:
                    await throttle(websocket, f"{channel}:{name}")

        return dispatch

    async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
        """Decode the frame, then check and run its action."""
        data = await self.decode(message)
        session = session_of(websocket)
        request_id = request_id_of(data)
        name = action_of(data)
        if session is not None:
            session.request_id, session.action = request_id, name
        # Prepared, as in the inlined dispatch: with the channel's dependencies as well as the action's own.
        prepared = self._prepared_for(self._config_of(websocket)).actions.get(name)
        if prepared is None:
            if session is None:
                raise ActionNotExist(error_msg=f"The action {name!r} does not exist.")
            await self._answer_built_in(session, name, data, request_id)
            return
        if prepared.deprecated:
            raise ActionIsDeprecated(error_msg=f"The action {name!r} is deprecated.")
        await self.check_permissions(websocket, name, channel, prepared.permission)
        await self.check_throttles(websocket, channel, name, prepared.limits)
        result = await prepared.run(websocket, channel, data, request_id)
        if result is not None:
            await self.broadcast_to_personal(websocket, prepared.reply(request_id, result))

    async def _answer_built_in(self, session: Session, name: str, data: Frame, request_id: int | str | None) -> None:
        """Answer a frame no action is named for: ``pong``, ``resume``, ``subscribe``/``unsubscribe``, or refuse it.

        Both the inlined dispatch and ``on_receive`` end here, so that overriding ``on_receive`` keeps them.
        """
        if name == "pong":
            return  # the answer to a heartbeat ping: the frame itself showed the client is there
        if name == "resume":
            resumption = session.resumption_for(data)
            if resumption is not None:
                # Reading history costs the backend work: the channel-wide limits apply as to any action.
                await self.check_throttles(session.websocket, session.channel, name)
                await resumption.request(data)  # a channel with history: send what the client missed
                return
        elif self.client_subscriptions and name in _SUBSCRIPTION_FRAMES:
            # Joining costs the backend work too.
            await self.check_throttles(session.websocket, session.channel, name)
            memberships = session.memberships()
            if name == "subscribe":
                await memberships.subscribe(self, data, request_id)
            else:
                await memberships.unsubscribe(self, data, request_id)
            return
        raise ActionNotExist(error_msg=f"The action {name!r} does not exist.")

    def _registry(self) -> dict[str, RegisteredAction]:
        return {**self._class_actions, **self._instance_actions}


def _overrides(owner: BaseChannel, hook: str) -> bool:
    """Whether ``owner``'s class replaces ``BaseChannel``'s ``hook``, so that it must be called on every frame."""
    return getattr(type(owner), hook) is not getattr(BaseChannel, hook)


@contextlib.contextmanager
def _presence_errors() -> Iterator[None]:
    try:
        yield
    except PresenceUnavailable as exc:
        raise BackendUnavailable(error_msg="Who is connected cannot be read right now. Try again later.") from exc


# How many channel objects of each class and channel name this process has created.
_endpoints_created: dict[str, int] = {}


def _endpoint_name(base: str) -> str:
    """Name a new channel object; objects alike in class and channel are told apart by creation order."""
    # Every process of an app runs the same code, so the n-th such object gets the same name everywhere.
    count = _endpoints_created.get(base, 0)
    _endpoints_created[base] = count + 1
    return base if count == 0 else f"{base}#{count}"


def _static(owner: BaseChannel, attribute: str) -> Any:
    """Return ``owner``'s ``attribute`` as its class (or the object itself) holds it, unbound."""
    value = inspect.getattr_static(owner, attribute)
    return value.__func__ if isinstance(value, staticmethod) else value


def _check_channel_name(channel: Any) -> str:
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"A channel name must be a non-empty string, not {channel!r}.")
    return channel
