"""Logging clients in from a token: the readers, TokenAuthentication, first-message authentication, no token logged."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.authentication import BaseUser, SimpleUser, UnauthenticatedUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.types import Message

from fastapi_channels import add_channel
from fastapi_channels.auth import (
    SUBPROTOCOL_KEY,
    TokenAuthentication,
    UserFunction,
    authenticate_first_message,
    from_cookie,
    from_header,
    from_query,
    from_subprotocol,
)
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import IsAuthenticated
from fastapi_channels.testing import receive_close, receive_json, send_action

SECRET = "s3cr3t-t0ken"
USERS = {SECRET: "ann"}
# Characters a token may carry in each place: URL-escaped in the query, a cookie value, a header, and the
# RFC 7230 token characters that are all a subprotocol may hold.
ODD = "a+b/c=d&e f%g?é"
ODD_COOKIE = "abc/def+ghi=="
ODD_SUBPROTOCOL = "!#$%&'*+-.^_`|~Az09"


def connection(
    *, query: str = "", headers: dict[str, str] | None = None, subprotocols: list[str] | None = None
) -> HTTPConnection:
    """Return a websocket connection as the server sees it at the handshake."""
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    scope = {"type": "websocket", "path": "/ws", "query_string": query.encode(), "headers": raw}
    if subprotocols is not None:
        scope["subprotocols"] = subprotocols
    return HTTPConnection(scope)


class Member(BaseUser):
    """A user object of the app's own, as a user function may return."""

    def __init__(self, name: str, *, active: bool = True) -> None:
        self.name, self.active = name, active

    @property
    def is_authenticated(self) -> bool:
        return self.active

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return f"member:{self.name}"


class Inbox(Channel):
    permission_classes = [IsAuthenticated]

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


def channel_app(backend: TokenAuthentication) -> FastAPI:
    """Return an app that serves an Inbox at /inbox behind AuthenticationMiddleware with ``backend``."""
    app = FastAPI()
    add_channel(app)
    app.add_middleware(AuthenticationMiddleware, backend=backend)
    inbox = Inbox()

    @app.websocket("/inbox")
    async def endpoint(websocket: WebSocket) -> None:
        await inbox.connect(websocket)

    return app


def first_message_app(user: UserFunction = USERS.get, **options: Any) -> tuple[FastAPI, list[BaseUser | None]]:
    """Return an app whose /inbox authenticates from the first message, and the list of what the helper returned."""
    app = FastAPI()
    add_channel(app)
    inbox = Inbox()
    results: list[BaseUser | None] = []

    @app.websocket("/inbox")
    async def endpoint(websocket: WebSocket) -> None:
        found = await authenticate_first_message(websocket, user=user, **options)
        results.append(found)
        if found is not None:
            await inbox.connect(websocket)

    return app, results


# -- readers -----------------------------------------------------------------------------------------------


def test_from_query_named_parameter_returns_it_decoded() -> None:
    assert from_query()(connection(query=f"token={SECRET}")) == SECRET
    escaped = "".join(f"%{byte:02X}" for byte in ODD.encode())
    assert from_query("ticket")(connection(query=f"room=1&ticket={escaped}")) == ODD


@pytest.mark.parametrize("query", ["", "token=", "other=x", "tokens=x"])
def test_from_query_missing_or_empty_parameter_returns_none(query: str) -> None:
    assert from_query()(connection(query=query)) is None


def test_from_cookie_named_cookie_returns_its_value() -> None:
    conn = connection(headers={"cookie": f"theme=dark; session={ODD_COOKIE}; other=1"})
    assert from_cookie("session")(conn) == ODD_COOKIE
    assert from_cookie("missing")(conn) is None
    assert from_cookie("session")(connection(headers={"cookie": "session="})) is None


@pytest.mark.parametrize("value", [f"Bearer {SECRET}", f"bearer {SECRET}", f"BEARER   {SECRET} ", f" Bearer {SECRET}"])
def test_from_header_bearer_scheme_in_any_case_returns_the_token(value: str) -> None:
    assert from_header()(connection(headers={"authorization": value})) == SECRET


def test_from_header_odd_characters_returns_them_verbatim() -> None:
    token = "abc.DEF-ghi_jkl~m+n/o=="
    assert from_header()(connection(headers={"authorization": f"Bearer {token}"})) == token


@pytest.mark.parametrize(
    "value", [None, "", f"Basic {SECRET}", f"Token {SECRET}", "Bearer", "Bearer   ", f"Bearer{SECRET}"]
)
def test_from_header_scheme_mismatch_or_no_token_returns_none(value: str | None) -> None:
    headers = {} if value is None else {"authorization": value}
    assert from_header()(connection(headers=headers)) is None


def test_from_header_custom_scheme_and_no_scheme() -> None:
    conn = connection(headers={"authorization": f"Token {SECRET}", "x-api-key": f" {SECRET} "})
    assert from_header(scheme="Token")(conn) == SECRET
    assert from_header("x-api-key", scheme=None)(conn) == SECRET
    assert from_header("x-missing", scheme=None)(conn) is None


def test_from_subprotocol_token_is_read_and_the_app_protocol_recorded() -> None:
    conn = connection(subprotocols=["chat.v1", f"access_token.{SECRET}"])
    assert from_subprotocol()(conn) == SECRET
    assert conn.scope[SUBPROTOCOL_KEY] == "chat.v1"


@pytest.mark.parametrize(
    ("protocols", "recorded"), [(None, "chat.v2"), ({"chat.v1"}, "chat.v1"), (["chat.v3", "chat.v1"], "chat.v1")]
)
def test_from_subprotocol_several_subprotocols_records_the_first_acceptable(
    protocols: set[str] | list[str] | None, recorded: str
) -> None:
    conn = connection(subprotocols=["chat.v2", "access_token.", f"access_token.{SECRET}", "chat.v1", "access_token.x"])
    assert from_subprotocol(protocols=protocols)(conn) == SECRET  # the first non-empty token counts
    assert conn.scope[SUBPROTOCOL_KEY] == recorded


@pytest.mark.parametrize(
    "offered",
    [
        [f"access_token.{SECRET}"],
        [f"access_token.{SECRET}", "chat.v2"],
        [f"access_token.{SECRET}", f"access_token.{SECRET}"],
        ["access_token.chat.v1", f"access_token.{SECRET}"],
    ],
)
def test_from_subprotocol_never_records_a_token(offered: list[str]) -> None:
    conn = connection(subprotocols=offered)
    from_subprotocol(protocols={"chat.v1"})(conn)
    assert SUBPROTOCOL_KEY not in conn.scope  # nothing acceptable: accepted without a subprotocol, never the token


def test_from_subprotocol_without_a_token_still_records_the_protocol() -> None:
    conn = connection(subprotocols=["chat.v1"])
    assert from_subprotocol()(conn) is None
    assert conn.scope[SUBPROTOCOL_KEY] == "chat.v1"
    plain = connection(subprotocols=[])
    assert from_subprotocol()(plain) is None and SUBPROTOCOL_KEY not in plain.scope


def test_from_subprotocol_odd_characters_and_own_prefix_return_the_token_verbatim() -> None:
    conn = connection(subprotocols=["chat.v1", f"bearer.{ODD_SUBPROTOCOL}"])
    assert from_subprotocol("bearer.")(conn) == ODD_SUBPROTOCOL
    assert from_subprotocol()(conn) is None


def test_from_subprotocol_http_request_returns_none() -> None:
    conn = HTTPConnection({"type": "http", "path": "/", "query_string": b"", "headers": []})
    assert from_subprotocol()(conn) is None


def test_from_subprotocol_empty_prefix_raises_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r'from_subprotocol\("access_token\."\)'):
        from_subprotocol("")


# -- TokenAuthentication -----------------------------------------------------------------------------------


async def test_token_authentication_sync_user_function_name_becomes_a_simple_user() -> None:
    backend = TokenAuthentication(from_query(), user=USERS.get)
    result = await backend.authenticate(connection(query=f"token={SECRET}"))
    assert result is not None
    credentials, user = result
    assert isinstance(user, SimpleUser) and user.display_name == "ann"
    assert credentials.scopes == ["authenticated"]


async def test_token_authentication_async_user_function_returns_its_own_user_and_scopes() -> None:
    async def lookup(token: str) -> Member | None:
        return Member("ann") if token == SECRET else None

    backend = TokenAuthentication(from_header(), user=lookup, scopes=["authenticated", "chat"])
    result = await backend.authenticate(connection(headers={"authorization": f"Bearer {SECRET}"}))
    assert result is not None
    assert isinstance(result[1], Member) and result[1].identity == "member:ann"
    assert result[0].scopes == ["authenticated", "chat"]


@pytest.mark.parametrize("found", [None, "", UnauthenticatedUser(), Member("gone", active=False)])
async def test_token_authentication_unknown_token_is_anonymous(found: Any) -> None:
    async def lookup(token: str) -> Any:
        return found

    for function in (lookup, lambda token: found):
        backend = TokenAuthentication(from_query(), user=function)
        assert await backend.authenticate(connection(query="token=unknown")) is None


async def test_token_authentication_no_token_never_calls_the_user_function() -> None:
    calls: list[str] = []

    def lookup(token: str) -> str:
        calls.append(token)
        return "ann"

    backend = TokenAuthentication(from_query(), from_cookie("session"), user=lookup)
    assert await backend.authenticate(connection(query="token=")) is None
    assert calls == []


async def test_token_authentication_first_reader_with_a_token_wins_and_every_reader_runs() -> None:
    seen: list[str] = []

    def lookup(token: str) -> str:
        seen.append(token)
        return token

    backend = TokenAuthentication(from_cookie("session"), from_subprotocol(), from_query(), user=lookup)
    conn = connection(
        query="token=from-query", headers={"cookie": "session=from-cookie"}, subprotocols=["chat.v1", "access_token.x"]
    )
    result = await backend.authenticate(conn)
    assert result is not None and result[1].display_name == "from-cookie"
    assert seen == ["from-cookie"]  # one lookup: a bad first token does not fall back to the others
    assert conn.scope[SUBPROTOCOL_KEY] == "chat.v1"  # recorded although the cookie won
    no_cookie = await backend.authenticate(connection(query="token=from-query", subprotocols=["access_token.sub"]))
    assert no_cookie is not None and no_cookie[1].display_name == "sub"


async def test_token_authentication_wrong_return_type_raises_without_the_token() -> None:
    backend = TokenAuthentication(from_query(), user=lambda token: {"name": token})  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="returned a dict") as raised:
        await backend.authenticate(connection(query=f"token={SECRET}"))
    assert SECRET not in str(raised.value)


def test_token_authentication_without_readers_raises_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"TokenAuthentication\(from_cookie"):
        TokenAuthentication(user=USERS.get)


@pytest.mark.parametrize(
    ("path", "headers", "cookies", "subprotocols"),
    [
        (f"/inbox?token={SECRET}", {}, {}, None),
        ("/inbox", {"authorization": f"Bearer {SECRET}"}, {}, None),
        ("/inbox", {}, {"session": SECRET}, None),
        ("/inbox", {}, {}, ["chat.v1", f"access_token.{SECRET}"]),
    ],
)
def test_token_authentication_each_reader_logs_a_channel_client_in(
    path: str, headers: dict[str, str], cookies: dict[str, str], subprotocols: list[str] | None
) -> None:
    readers = (from_query(), from_header(), from_cookie("session"), from_subprotocol())
    with TestClient(channel_app(TokenAuthentication(*readers, user=USERS.get)), cookies=cookies) as client:
        with client.websocket_connect(path, headers=headers, subprotocols=subprotocols) as websocket:
            send_action(websocket, "whoami")
            assert receive_json(websocket) == {"user": "ann"}
            assert websocket.accepted_subprotocol != f"access_token.{SECRET}"


def test_token_authentication_unknown_token_is_refused_by_the_channel_permission() -> None:
    backend = TokenAuthentication(from_query(), user=USERS.get)
    with TestClient(channel_app(backend)) as client, client.websocket_connect("/inbox?token=guess") as websocket:
        frame = receive_json(websocket)
        assert (frame["status"], frame["action"], frame["code"], frame["close"]) == ("bad", None, 1008, True)
        assert receive_close(websocket)[0] == 1008


def test_subprotocol_accepted_with_the_recorded_protocol_never_the_token() -> None:
    # What the core does with SUBPROTOCOL_KEY, done by hand: accept with the recorded subprotocol.
    app = FastAPI()
    app.add_middleware(
        AuthenticationMiddleware, backend=TokenAuthentication(from_subprotocol(protocols={"chat.v1"}), user=USERS.get)
    )

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=websocket.scope.get(SUBPROTOCOL_KEY))
        await websocket.send_json({"user": websocket.user.display_name})
        await websocket.close()

    with TestClient(app) as client:
        offered = [f"access_token.{SECRET}", "chat.v2", "chat.v1"]
        with client.websocket_connect("/ws", subprotocols=offered) as websocket:
            assert websocket.accepted_subprotocol == "chat.v1"
            assert SECRET not in json.dumps(websocket.extra_headers or [], default=str)
            assert receive_json(websocket) == {"user": "ann"}
        with client.websocket_connect("/ws", subprotocols=[f"access_token.{ODD_SUBPROTOCOL}", "chat.v1"]) as websocket:
            assert websocket.accepted_subprotocol == "chat.v1"
            assert receive_json(websocket) == {"user": ""}  # anonymous: the odd token is nobody's


# -- authenticate_first_message ----------------------------------------------------------------------------


def test_authenticate_first_message_valid_token_logs_in_before_joining() -> None:
    app, results = first_message_app()
    with TestClient(app) as client, client.websocket_connect("/inbox") as websocket:
        websocket.send_json({"token": SECRET})
        send_action(websocket, "whoami")
        assert receive_json(websocket) == {"user": "ann"}
    assert [user.display_name for user in results if user is not None] == ["ann"]


def test_authenticate_first_message_async_user_function_and_own_field() -> None:
    async def lookup(token: str) -> Member | None:
        return Member("bob") if token == ODD else None

    app, results = first_message_app(lookup, field="access_token")
    with TestClient(app) as client, client.websocket_connect("/inbox") as websocket:
        websocket.send_json({"action": "authenticate", "access_token": ODD})
        send_action(websocket, "whoami")
        assert receive_json(websocket) == {"user": "bob"}
    assert isinstance(results[0], Member)


def test_authenticate_first_message_unknown_token_closes_with_1008() -> None:
    app, results = first_message_app()
    with TestClient(app) as client, client.websocket_connect("/inbox") as websocket:
        websocket.send_json({"token": "guess"})
        assert receive_close(websocket) == (1008, "Invalid token.")
    assert results == [None]


@pytest.mark.parametrize("frame", ["not json", '["token"]', '{"token": 5}', '{"token": ""}', '{"user": "ann"}', b"x"])
def test_authenticate_first_message_frame_without_a_token_closes_with_1008(frame: str | bytes) -> None:
    app, results = first_message_app()
    with TestClient(app) as client, client.websocket_connect("/inbox") as websocket:
        if isinstance(frame, bytes):
            websocket.send_bytes(frame)
        else:
            websocket.send_text(frame)
        assert receive_close(websocket) == (1008, "Authenticate first.")
    assert results == [None]


def test_authenticate_first_message_silent_client_is_closed_after_the_timeout() -> None:
    app, results = first_message_app(timeout=0.05)
    with TestClient(app) as client, client.websocket_connect("/inbox") as websocket:
        assert receive_close(websocket) == (1008, "Authenticate first.")
    assert results == [None]


def test_authenticate_first_message_client_leaving_first_returns_none() -> None:
    app, results = first_message_app()
    with TestClient(app) as client:
        with client.websocket_connect("/inbox"):
            pass
    assert results == [None]


def test_authenticate_first_message_accepts_with_the_recorded_subprotocol() -> None:
    app, _ = first_message_app()
    app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_subprotocol(), user=USERS.get))
    with TestClient(app) as client, client.websocket_connect("/inbox", subprotocols=["chat.v1"]) as websocket:
        assert websocket.accepted_subprotocol == "chat.v1"
        websocket.send_json({"token": SECRET})
        send_action(websocket, "whoami")
        assert receive_json(websocket) == {"user": "ann"}


# -- tokens stay out of the logs ---------------------------------------------------------------------------


def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    backend = TokenAuthentication(from_query(), from_subprotocol(), user=USERS.get)
    first, _ = first_message_app()
    with caplog.at_level(logging.DEBUG):
        with TestClient(channel_app(backend)) as client:
            with client.websocket_connect(f"/inbox?token={SECRET}") as websocket:
                send_action(websocket, "whoami")
                assert receive_json(websocket) == {"user": "ann"}
            with client.websocket_connect("/inbox", subprotocols=["chat.v1", "access_token.nobody-s"]) as websocket:
                assert receive_json(websocket)["code"] == 1008
        with TestClient(first) as client:
            with client.websocket_connect("/inbox") as websocket:
                websocket.send_json({"token": SECRET})
                send_action(websocket, "whoami")
                assert receive_json(websocket) == {"user": "ann"}
            with client.websocket_connect("/inbox") as websocket:
                websocket.send_json({"token": "nobody-s"})
                assert receive_close(websocket)[0] == 1008
    assert caplog.records  # the capture saw what was logged meanwhile
    assert SECRET not in caplog.text and "nobody-s" not in caplog.text


async def test_authenticate_first_message_client_gone_before_the_close_returns_none() -> None:
    # The token arrives, then the connection drops before the server's close goes out.
    incoming: list[Message] = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": '{"token": "x"}'}]
    sent: list[str] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "websocket.close":
            raise OSError("connection reset")

    websocket = WebSocket({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert await authenticate_first_message(websocket, user=USERS.get) is None
    assert sent == ["websocket.accept", "websocket.close"]
