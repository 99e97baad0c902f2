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
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI
from starlette import status
from starlette.websockets import WebSocket, WebSocketState

from fastapi_channels.actions import PreparedAction, PreparedChannel, prepare_action, prepare_throttles
from fastapi_channels.config import STATE_KEY, FastAPIChannel, get_channel_config
from fastapi_channels.decorators import RETURN_ANNOTATION, RegisteredAction, get_action_spec
from fastapi_channels.decorators import action as declare_action
from fastapi_channels.dependencies import Dependency, read_dependencies
from fastapi_channels.exceptions import (
    ActionIsDeprecated,
    ActionNotExist,
    BackendUnavailable,
    ParseError,
    PermissionDenied,
)
from fastapi_channels.lifespan import ChannelEvents, EventHandler, Lifespan
from fastapi_channels.origin import check_allowed_origins
from fastapi_channels.outbox import CONNECTION_KEY, Connection
from fastapi_channels.permission import PermissionLike, allows_everyone, check_permission_like, has_permission
from fastapi_channels.presence import Member, PresenceUnavailable
from fastapi_channels.protocol import MAX_NAME_LENGTH, Frame, action_of, encode, parse_frame, request_id_of
from fastapi_channels.session import FrameHandler, Session, current_config, session_of
from fastapi_channels.throttling import RateSpec, check_throttle_like, get_limits

__all__ = ["BaseChannel", "Channel"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CHANNEL = "default_channel"


class BaseChannel:
    """Relay every text frame a client sends to everyone in its channel.

    Configure with class attributes or constructor keywords of the same name (the keyword wins).
    ``permission_classes`` and ``throttle_classes`` left as None take the defaults given to ``add_channel``.
    ``allowed_origins`` replaces ``add_channel``'s list of other sites whose pages may connect.
    ``group`` names the space the channel names of this object live in: objects of one class share it by
    default, so a ``lobby`` of one class and a ``lobby`` of another are separate rooms. Give objects of
    several classes the same ``group`` to let them share their rooms.
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
        # Channels of objects in different groups never meet: "lobby" of a relay and of a chat are two topics.
        self._topic_prefix = f"{len(self.group)}:{self.group}:"
        self.endpoint = _endpoint_name(f"{type(self).__module__}.{type(self).__qualname__}:{self.channel}")
        """Names the connections this object serves, the same in every process running the app's code."""
        # Hooks left as they are run inline, without a coroutine per frame.
        self._plain_encode = self.encode_json is BaseChannel.encode_json
        self._plain_decode = self.decode_json is BaseChannel.decode_json
        self._prepared: weakref.WeakKeyDictionary[FastAPIChannel, PreparedChannel] = weakref.WeakKeyDictionary()

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

    async def broadcast_to_channel(self, channel: str, message: Any) -> None:
        """Send ``message`` to every connection of ``channel``, on every process sharing the backend.

        Raises:
            BackendUnavailable: The backend cannot be reached (inside an action: an error frame, socket open).
        """
        text = message if isinstance(message, str) else await self.to_text(message)
        await self._running_config().layer.publish(self._topic_prefix + channel, text)

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
        return Session(self, websocket, channel, self.get_config(websocket)).run()

    def frame_handler(self, session: Session) -> FrameHandler:
        """Return what handles each text frame of ``session``: ``on_receive``, or an inlined relay."""
        websocket, channel = session.websocket, session.channel
        if type(self).on_receive is not BaseChannel.on_receive or _overrides(self, "check_throttles"):
            on_receive = self.on_receive

            async def receive(text: str) -> None:
                await on_receive(websocket, channel, text)

            return receive
        throttles, layer = self._prepared_for(session.config).throttles, session.config.layer
        everything, topic = f"{channel}:*", self.topic(channel)

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
        return PreparedChannel(config.generation, self._version, actions, throttles)


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

    def action(
        self,
        name: str | None = None,
        *,
        permission: PermissionLike = None,
        deprecated: bool = False,
        summary: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        response_model: Any = RETURN_ANNOTATION,
        response_model_exclude_none: bool = False,
        response_model_exclude_unset: bool = False,
        response_model_exclude_defaults: bool = False,
        response_model_by_alias: bool = True,
        dependencies: Sequence[Any] | None = None,
    ) -> Callable[[F], F]:
        """Register a plain function as an action of this channel object only (the arguments of ``@action``)."""
        declare = declare_action(
            name,
            permission=permission,
            deprecated=deprecated,
            summary=summary,
            description=description,
            tags=tags,
            response_model=response_model,
            response_model_exclude_none=response_model_exclude_none,
            response_model_exclude_unset=response_model_exclude_unset,
            response_model_exclude_defaults=response_model_exclude_defaults,
            response_model_by_alias=response_model_by_alias,
            dependencies=dependencies,
        )

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

        async def dispatch(text: str) -> None:
            nonlocal prepared
            data = parse_frame(text) if self._plain_decode else await self.decode(text)
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
                if name == "pong":
                    return  # the answer to a heartbeat ping: the frame itself showed the client is there
                raise ActionNotExist(error_msg=f"The action {name!r} does not exist.")
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
        entry = self.get_action(name)
        if entry.spec.deprecated:
            raise ActionIsDeprecated(error_msg=f"The action {name!r} is deprecated.")
        await self.check_permissions(websocket, name, channel, entry.spec.permission)
        await self.check_throttles(websocket, channel, name, get_limits(entry.function(self)))
        # Prepared, as in the inlined dispatch: with the channel's dependencies as well as the action's own.
        prepared = self._prepared_for(self._config_of(websocket)).actions[name]
        result = await prepared.run(websocket, channel, data, request_id)
        if result is not None:
            await self.broadcast_to_personal(websocket, prepared.reply(request_id, result))

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


def _check_channel_name(channel: Any) -> str:
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"A channel name must be a non-empty string, not {channel!r}.")
    return channel
