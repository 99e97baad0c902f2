"""The AsyncAPI document: what it says about channels, actions and frames, that it is valid AsyncAPI 3.0
(checked against the official JSON Schema, vendored in tests/asyncapi/), how it is served, and the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, create_model
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from typing_extensions import TypedDict

from example.app import create_app
from fastapi_channels import add_channel, exceptions
from fastapi_channels.__main__ import import_app, main
from fastapi_channels.asyncapi import ASYNCAPI_VERSION, asyncapi_document, describe_permission, served_routes
from fastapi_channels.asyncapi_page import render_page
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.codecs import JSON_BINARY, JSON_TEXT, MSGPACK
from fastapi_channels.decorators import action
from fastapi_channels.permission import AllowAny, DenyAll, IsAuthenticated
from fastapi_channels.testing import receive_json, send_action
from fastapi_channels.throttling import limiter
from fastapi_channels.timeouts import IDLE_CLOSE_CODE
from tests.asyncapi.validate import assert_valid, problems
from tests.conftest import ROOT
from tests.docs.samples import SRC, load

# -- a channel that declares everything the document shows --------------------------------------------


class Point(BaseModel):
    """Where something is on the board."""

    x: int
    y: Annotated[int, Field(ge=0, description="Rows from the top.")]


class Moved(BaseModel):
    piece: str
    to: Point


class Move(BaseModel):
    piece: str
    to: Point


class Circle(BaseModel):
    kind: Literal["circle"] = "circle"
    radius: float


class Square(BaseModel):
    kind: Literal["square"] = "square"
    side: float


class Range(TypedDict):
    low: int
    high: int


class Board(Channel):
    """A board game: one room per game."""

    max_connection = 2
    throttle_classes = [limiter(times=100, minutes=1)]
    sends = {
        "moved": Moved,
        "welcome": Annotated[Literal["welcome"], Field(description="Sent to a player who joins.")],
    }

    @limiter(times=2, seconds=1)
    @action(summary="Move a piece", tags=["game", "moves"], permission=IsAuthenticated)
    async def move(self, move: Move) -> Moved:
        """Move a piece and return the new position."""
        return Moved(piece=move.piece, to=move.to)

    @action(description="Draw a shape.")
    async def draw(self, shape: Annotated[Circle | Square, Field(discriminator="kind")]) -> None:
        pass

    @action()
    async def span(self, corners: tuple[int, int], labels: dict[str, int] | None = None) -> Range:
        return {"low": corners[0], "high": corners[1]}

    @action(deprecated=True, permission=IsAuthenticated | DenyAll)
    async def resign(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        pass

    @action()
    async def ping_all(self, websocket: WebSocket):  # type: ignore[no-untyped-def]  # no annotation: replies anything
        return "pong"


def board_app(**options: Any) -> tuple[FastAPI, Board]:
    app = FastAPI(title="Board games", version="3.1.4", description="Play on a `Board`.")
    add_channel(app, **options)
    board = Board()

    @app.websocket("/games/{game:int}")
    @board.serves
    async def game_endpoint(websocket: WebSocket, game: int) -> None:
        await board.connect(websocket, channel=str(game))

    return app, board


def test_asyncapi_document_typed_channel_describes_route_actions_and_metadata() -> None:
    app, _ = board_app()
    document = asyncapi_document(app)
    assert_valid(document)
    assert (document["asyncapi"], document["info"]) == (
        ASYNCAPI_VERSION,
        {"title": "Board games", "version": "3.1.4", "description": "Play on a `Board`."},
    )
    channel = document["channels"]["game_endpoint"]
    assert channel["address"] == "/games/{game}"
    assert channel["parameters"] == {"game": {"description": "Path parameter (int)."}}
    assert (channel["title"], channel["description"]) == ("Board", "A board game: one room per game.")
    facts = channel["x-fastapi-channels"]
    assert facts["class"] == f"{__name__}.Board" and facts["kind"] == "actions"
    assert (facts["max_connection"], facts["permission"]) == (2, "AllowAny")
    assert facts["rate_limits"] == [{"times": 100, "milliseconds": 60000, "text": "100 per 1 min"}]

    operations = document["operations"]
    move = operations["game_endpoint.action.move"]
    assert (move["action"], move["title"], move["summary"]) == ("receive", "move", "Move a piece")
    assert move["description"] == "Move a piece and return the new position."
    assert move["tags"] == [{"name": "game"}, {"name": "moves"}]
    assert move["x-fastapi-channels"] == {
        "action": "move",
        "deprecated": False,
        "typed": True,
        "permission": "IsAuthenticated",
        "rate_limits": [{"times": 2, "milliseconds": 1000, "text": "2 per 1 s"}],
    }
    replies = [ref["$ref"].rsplit("/", 1)[-1] for ref in move["reply"]["messages"]]
    assert replies == ["reply.move", "error"]
    messages = channel["messages"]
    request = messages["action.move"]["payload"]
    assert request["properties"]["action"] == {"type": "string", "const": "move"}
    payload = document["components"]["schemas"][request["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert payload["required"] == ["piece", "to"]
    assert payload["properties"]["to"] == {"$ref": "#/components/schemas/Point"}
    point = document["components"]["schemas"]["Point"]
    assert point["properties"]["y"]["minimum"] == 0 and point["description"] == "Where something is on the board."
    reply = messages["reply.move"]["payload"]["properties"]
    assert reply["data"] == {"$ref": "#/components/schemas/Moved"} and reply["status"]["const"] == "ok"

    resign = operations["game_endpoint.action.resign"]
    assert resign["x-fastapi-channels"]["permission"] == "(IsAuthenticated | DenyAll)"
    assert resign["x-fastapi-channels"]["deprecated"] is True and messages["action.resign"]["deprecated"] is True
    assert [ref["$ref"] for ref in resign["reply"]["messages"]] == ["#/channels/game_endpoint/messages/error"]
    assert "allOf" not in messages["action.resign"]["payload"]  # untyped: any fields
    assert messages["reply.ping_all"]["payload"]["properties"]["data"] == {
        "description": "What the action returned, as JSON."
    }
    assert "reply.draw" not in messages  # annotated to return None: it never replies


def test_asyncapi_document_server_sent_messages_from_sends() -> None:
    document = asyncapi_document(board_app()[0])
    messages = document["channels"]["game_endpoint"]["messages"]
    assert messages["sends.moved"]["payload"] == {"$ref": "#/components/schemas/Moved"}
    assert "contentType" not in messages["sends.moved"]  # JSON, the document's default
    welcome = messages["sends.welcome"]
    assert welcome["contentType"] == "text/plain"  # a str is sent as it is
    assert welcome["payload"] == {"const": "welcome", "description": "Sent to a player who joins.", "type": "string"}
    sent = {key for key, operation in document["operations"].items() if operation["action"] == "send"}
    assert sent == {
        "game_endpoint.sends.moved",
        "game_endpoint.sends.welcome",
        "game_endpoint.error",
        "game_endpoint.drain",
    }


def test_asyncapi_document_pydantic_schemas_rewritten_to_asyncapi_dialect() -> None:
    document = asyncapi_document(board_app()[0])
    schemas = document["components"]["schemas"]
    draw = document["channels"]["game_endpoint"]["messages"]["action.draw"]["payload"]["allOf"][0]
    assert draw["discriminator"] == "kind"  # pydantic writes OpenAPI's object; AsyncAPI wants the property name
    assert draw["oneOf"] == [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}]
    span = schemas[document["channels"]["game_endpoint"]["messages"]["action.span"]["payload"]["allOf"][0]["$ref"][21:]]
    corners = span["properties"]["corners"]
    assert corners["items"] == [{"type": "integer"}, {"type": "integer"}] and corners["additionalItems"] is False
    assert "prefixItems" not in json.dumps(document) and "$defs" not in json.dumps(document)
    assert span["required"] == ["corners"] and "labels" in span["properties"]
    reply = document["channels"]["game_endpoint"]["messages"]["reply.span"]["payload"]["properties"]["data"]
    assert reply == {"$ref": "#/components/schemas/Range"}
    assert_valid(document)


WeighedItem = create_model("Item", weight=(int, ...))
PricedItem = create_model("Item", price=(int, ...))


def test_asyncapi_document_two_models_of_one_name_keep_both() -> None:
    class Shop(Channel):
        @action()
        async def weigh(self, item: WeighedItem) -> None:  # type: ignore[valid-type]
            pass

        @action()
        async def price(self, item: PricedItem) -> None:  # type: ignore[valid-type]
            pass

    app = FastAPI()
    app.add_api_websocket_route("/shop", Shop().connect)
    document = asyncapi_document(app)
    assert_valid(document)
    fields = [set(schema["properties"]) for schema in document["components"]["schemas"].values()]
    assert {"weight"} in fields and {"price"} in fields


def test_asyncapi_document_type_without_json_schema_is_described_not_fatal() -> None:
    class Hooks(Channel):
        @action()
        async def register(self, hook: Callable[[], None]) -> None:
            pass

    app = FastAPI()
    app.add_api_websocket_route("/hooks", Hooks().connect)
    document = asyncapi_document(app)
    assert_valid(document)
    payload = document["channels"]["hooks"]["messages"]["action.register"]["payload"]["allOf"][0]
    assert payload["description"].startswith("A type without a JSON Schema")


def test_asyncapi_document_connect_as_endpoint_links_route_and_works() -> None:
    room = Channel(channel="lobby")

    @room.action()
    async def echo(text: str) -> str:
        return text

    app = FastAPI()
    add_channel(app)
    app.add_api_websocket_route("/rooms/{channel}", room.connect)
    app.add_api_websocket_route("/lobby", room.connect)
    document = asyncapi_document(app)
    assert_valid(document)
    assert {key: channel["address"] for key, channel in document["channels"].items()} == {
        "rooms_channel": "/rooms/{channel}",
        "lobby": "/lobby",
    }
    assert "bindings" not in document["channels"]["rooms_channel"]  # the path names the channel
    query = document["channels"]["lobby"]["bindings"]["ws"]["query"]
    assert list(query["properties"]) == ["channel"]  # FastAPI reads connect's channel from the query
    assert (
        "title" not in document["channels"]["lobby"].get("description", "")
        and "description" not in (document["channels"]["lobby"])
    )  # the library's own docstring says nothing about this app
    with TestClient(app) as client, client.websocket_connect("/rooms/kitchen") as websocket:
        send_action(websocket, "echo", text="hi", request_id=1)
        assert receive_json(websocket)["data"] == "hi"


def test_asyncapi_document_routers_and_mounts_add_their_prefixes() -> None:
    room = Channel()
    router = APIRouter(prefix="/v1")

    @router.websocket("/chat")
    @room.serves
    async def chat(websocket: WebSocket) -> None:
        await room.connect(websocket)

    sub = FastAPI()

    @sub.websocket("/inner/{name}")
    @room.serves
    async def inner(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)

    app = FastAPI()
    app.include_router(router)
    app.mount("/sub", sub)
    relay = BaseChannel()
    app.router.routes.append(Mount("/raw", routes=[WebSocketRoute("/relay", relay.connect)]))
    assert [(route.path, route.room) for route in served_routes(app)] == [
        ("/v1/chat", room),
        ("/sub/inner/{name}", room),
        ("/raw/relay", relay),
    ]
    document = asyncapi_document(app)
    assert_valid(document)
    assert "bindings" not in document["channels"]["raw_relay"]  # Starlette calls connect with the socket only
    assert document["channels"]["raw_relay"]["x-fastapi-channels"]["kind"] == "relay"
    assert document["channels"]["raw_relay"]["messages"]["text"]["contentType"] == "text/plain"


def test_asyncapi_document_unmarked_routes_and_untyped_apps_stay_valid() -> None:
    app = FastAPI()
    room = Channel()

    @app.websocket("/unmarked")
    async def unmarked(websocket: WebSocket) -> None:
        await room.connect(websocket)

    document = asyncapi_document(app)
    assert document["channels"] == {} and document["operations"] == {}
    assert_valid(document)
    assert_valid(asyncapi_document(Starlette()))  # not even FastAPI: a title and version are made up


def test_asyncapi_document_heartbeat_ping_only_when_configured() -> None:
    def operations(**options: Any) -> set[str]:
        app, _ = board_app(**options)
        document = asyncapi_document(app)
        assert_valid(document)
        return {key for key in document["operations"] if key.endswith(".ping")}

    assert operations() == set()
    assert operations(heartbeat_interval=5) == {"game_endpoint.ping"}


def test_asyncapi_document_channel_permission_falls_back_to_the_app_default() -> None:
    app, _ = board_app(permission_classes=[IsAuthenticated])
    facts = asyncapi_document(app)["channels"]["game_endpoint"]["x-fastapi-channels"]
    assert facts["permission"] == "IsAuthenticated"


def test_asyncapi_document_close_codes_cover_every_exception_and_library_close() -> None:
    codes = asyncapi_document(FastAPI())["x-close-codes"]
    assert [row["code"] for row in codes] == sorted(row["code"] for row in codes)
    by_exception = {row["exception"]: row for row in codes if "exception" in row}
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if cls is not exceptions.WebSocketException:
            assert (by_exception[name]["code"], by_exception[name]["closes"]) == (cls.default_code, cls.default_close)
    assert {1000, 1001, 1003, 1011, 1012, IDLE_CLOSE_CODE} <= {row["code"] for row in codes}
    assert "``" not in json.dumps(codes)  # docstrings' RST code spans become CommonMark ones
    assert by_exception["PermissionDenied"]["name"] == "WS_1008_POLICY_VIOLATION"


@pytest.mark.parametrize(
    ("permission", "words"),
    [
        (None, None),
        (True, "everyone"),
        (False, "nobody"),
        ([AllowAny, IsAuthenticated], "AllowAny & IsAuthenticated"),
        (~IsAuthenticated, "~IsAuthenticated"),
        (IsAuthenticated(), "IsAuthenticated"),
        (lambda websocket, action, **context: True, "<lambda>"),
    ],
)
def test_describe_permission_each_form_in_words(permission: Any, words: str | None) -> None:
    assert describe_permission(permission) == words


# -- validity: the demo, every docs sample, and a validator that does reject ---------------------------


def test_asyncapi_document_of_the_demo_is_valid_and_names_every_action() -> None:
    app = create_app("memory://")
    document = asyncapi_document(app)
    assert_valid(document)
    rooms = app.state.demo_rooms
    addresses = [channel["address"] for channel in document["channels"].values()]
    assert addresses == [*(room.path for room in rooms.values()), "/chat"]
    for key, room in rooms.items():
        operations = document["operations"].values()
        named = {op.get("title") for op in operations if op["channel"]["$ref"] == f"#/channels/chatroom_ws_{key}"}
        assert set(room.channel.actions) <= named
        assert len(room.channel.actions) == len({name for name in named if name in room.channel.actions})
    group = document["channels"]["chatroom_ws_group"]["messages"]
    assert group["sends.joined"]["payload"]["const"] == "Join successfully"
    # The chat: its actions, the frames it sends, and subscriptions to more rooms on one connection.
    chat = document["channels"]["chat_endpoint"]
    assert {"action.say", "action.whisper", "action.who", "action.subscribe", "publication"} <= set(chat["messages"])
    assert chat["messages"]["sends.private"]["payload"] == {"$ref": "#/components/schemas/Private"}
    assert document["components"]["schemas"]["Private"]["required"] == ["kind", "from", "to", "text", "at"]


# Samples that show a mistake: they raise as they are loaded.
RAISING_SAMPLES = {"actions/duplicate.py", "routers/clash.py"}
# Samples that hold no app: a client, a pytest conftest, and the routers that routers/main.py includes.
NOT_APPS = {"codecs/client.py", "history/follower.py", "testing/conftest.py", "routers/admin.py", "routers/chat.py"}
# Samples that are modules of a package: loaded under their package's name, so that relative imports work.
PACKAGES = {"routers/"}


def docs_samples() -> list[str]:
    names = {str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if not path.name.startswith("test_")}
    assert RAISING_SAMPLES | NOT_APPS <= names
    return sorted(names - RAISING_SAMPLES - NOT_APPS)


def load_sample(relative: str) -> Any:
    """Load a docs sample; the modules of a package sample with their neighbours, under the package's name."""
    package = next((prefix for prefix in PACKAGES if relative.startswith(prefix)), None)
    if package is None:
        return load(relative, module_name=f"asyncapi_sample_{relative[:-3].replace('/', '_')}")
    dotted = "docs_src." + package.strip("/").replace("/", ".")
    try:
        for neighbour in sorted(NOT_APPS):
            if neighbour.startswith(package):
                load(neighbour, module_name=f"{dotted}.{neighbour[len(package) : -3]}")
        return load(relative, module_name=f"{dotted}.{relative[len(package) : -3]}")
    finally:
        for name in [name for name in sys.modules if name.startswith(dotted + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("relative", docs_samples())
def test_asyncapi_document_of_every_docs_sample_is_valid(relative: str) -> None:
    sample = load_sample(relative)
    apps = [value for value in vars(sample).values() if isinstance(value, Starlette)]
    rooms = [value for value in vars(sample).values() if isinstance(value, BaseChannel)]
    assert apps, f"{relative} has no app"
    for app in apps:
        assert_valid(asyncapi_document(app))
    # Most samples link no route to their channel objects: serve each object, to describe its actions too.
    for room in rooms:
        app = FastAPI()
        app.add_api_websocket_route("/room", room.connect)
        document = asyncapi_document(app)
        assert_valid(document)
        titles = {operation.get("title") for operation in document["operations"].values()}
        assert set(room.actions) <= titles


def broken(document: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    change(copy)
    return copy


@pytest.mark.parametrize(
    "change",
    [
        lambda document: document.pop("info"),
        lambda document: document.update(asyncapi="2.6.0"),
        lambda document: document["operations"]["game_endpoint.action.move"].update(action="publish"),
        lambda document: document["channels"]["game_endpoint"].update(address=7),
        lambda document: document["channels"]["game_endpoint"]["messages"]["action.move"].update(payload=[1]),
        lambda document: document["components"]["schemas"]["Point"].update(discriminator={"propertyName": "x"}),
        lambda document: document.update(surprise=True),
        lambda document: document["operations"]["game_endpoint.action.move"]["reply"]["messages"].append(
            {"$ref": "#/channels/game_endpoint/messages/nothing"}
        ),
    ],
)
def test_asyncapi_validator_broken_document_fails(change: Callable[[dict[str, Any]], None]) -> None:
    document = asyncapi_document(board_app()[0])
    assert_valid(document)
    assert problems(broken(document, change)) != []


# -- definition-time checks of sends and serves --------------------------------------------------------


def test_channel_sends_bad_declarations_raise_at_definition_time() -> None:
    with pytest.raises(TypeError, match=r"Bad\.sends must be a mapping"):

        class Bad(Channel):
            sends = [Point]  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"Unnamed\.sends has the name 3"):

        class Unnamed(Channel):
            sends = {3: Point}  # type: ignore[dict-item]

    with pytest.raises(TypeError, match=r"pydantic cannot describe"):
        Channel(sends={"hook": Callable[[], None]})
    room = Channel(sends={"point": Point})
    assert room.sends == {"point": Point}


def test_channel_serves_marks_functions_once() -> None:
    room, other = Channel(), Channel()

    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    assert room.serves(endpoint) is endpoint and room.serves(endpoint) is endpoint
    with pytest.raises(ValueError, match="already serves"):
        other.serves(endpoint)
    with pytest.raises(TypeError, match="marks websocket route functions"):
        room.serves("/path")  # type: ignore[type-var]


# -- serving -------------------------------------------------------------------------------------------


def test_add_channel_serves_document_and_page_by_default() -> None:
    app, _ = board_app()
    with TestClient(app) as client:
        document = client.get("/asyncapi.json").json()
        page = client.get("/asyncapi")
        openapi = client.get("/openapi.json").json()
    assert document["servers"] == {"default": {"host": "testserver", "protocol": "ws"}}
    assert_valid(document)
    assert page.headers["content-type"].startswith("text/html")
    assert "/asyncapi" not in json.dumps(openapi["paths"])  # not an HTTP API of the app
    for name in ("move", "draw", "span", "resign", "welcome", "Point", "WS_1008_POLICY_VIOLATION"):
        assert name in page.text


def test_add_channel_asyncapi_urls_moved_or_turned_off() -> None:
    app, _ = board_app(asyncapi_url="/docs/events.json", asyncapi_docs_url=None)
    with TestClient(app) as client:
        assert client.get("/docs/events.json").json()["asyncapi"] == ASYNCAPI_VERSION
        assert client.get("/asyncapi").status_code == 404
        assert client.get("/asyncapi.json").status_code == 404
    app, _ = board_app(asyncapi_url=None, asyncapi_docs_url="/events")
    with TestClient(app) as client:
        page = client.get("/events").text
        assert client.get("/asyncapi.json").status_code == 404
    assert "move" in page and "JSON document" not in page  # no link to a document that is not served


def test_add_channel_asyncapi_root_path_becomes_server_pathname() -> None:
    app, _ = board_app()
    with TestClient(app, root_path="/api", base_url="https://example.org") as client:
        document = client.get("/asyncapi.json").json()
        page = client.get("/asyncapi").text
    assert document["servers"]["default"] == {"host": "example.org", "protocol": "wss", "pathname": "/api"}
    assert "wss://example.org/api/games/{game}" in page and 'href="/api/asyncapi.json"' in page


def test_add_channel_app_routes_at_the_same_paths_win() -> None:
    before = FastAPI()

    @before.get("/asyncapi.json")
    async def own_before() -> dict[str, str]:
        return {"own": "before"}

    add_channel(before)

    @before.get("/asyncapi")
    async def own_after() -> dict[str, str]:
        return {"own": "after"}

    with TestClient(before) as client:
        assert client.get("/asyncapi.json").json() == {"own": "before"}
        assert client.get("/asyncapi").json() == {"own": "after"}
        assert client.head("/asyncapi").status_code == 405  # theirs allows GET only; ours gave way


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"asyncapi_url": "asyncapi.json"}, "asyncapi_url must be a path starting with '/'"),
        ({"asyncapi_docs_url": 3}, "asyncapi_docs_url must be a path starting with '/'"),
        ({"asyncapi_url": "/same", "asyncapi_docs_url": "/same"}, "both '/same'"),
    ],
)
def test_add_channel_bad_asyncapi_urls_raise(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        add_channel(FastAPI(), **options)


def test_asyncapi_page_escapes_docstrings_and_has_no_external_url() -> None:
    class Sneaky(Channel):
        """<script>alert('doc')</script> uses ``code`` and https://example.com in words."""

        @action(summary="<img src=x onerror=alert(1)>")
        async def sneak(self, websocket: WebSocket) -> None:
            pass

    app = FastAPI(title="<b>Title</b>")
    app.add_api_websocket_route("/sneaky", Sneaky().connect)
    page = render_page(asyncapi_document(app), json_url="/asyncapi.json")
    assert "<script" not in page and "<img" not in page and "<b>Title" not in page
    assert "&lt;script&gt;" in page and "<code>code</code>" in page
    assert re.findall(r'(?:src|href)="(?![#/])[^"]*"', page) == []  # links stay on the page or the server
    assert re.findall(r"<(?:script|link|iframe|img)\b", page) == []


# -- the command line ----------------------------------------------------------------------------------


def run_cli(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastapi_channels", *arguments], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_cli_asyncapi_prints_the_demo_document() -> None:
    result = run_cli("asyncapi", "example.app:app")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert_valid(document)
    assert document == json.loads(json.dumps(asyncapi_document(create_app())))
    assert result.stdout.startswith('{\n  "asyncapi": "3.0.0"')  # two spaces by default


def test_cli_asyncapi_output_file_indent_and_app_dir(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(
        "from fastapi import FastAPI\n"
        "from fastapi_channels import Channel, action\n"
        "class Room(Channel):\n"
        "    @action()\n"
        "    async def hello(self, name: str) -> str:\n"
        "        return name\n"
        "room = Room()\n"
        "app = FastAPI(title='Service')\n"
        "app.add_api_websocket_route('/room', room.connect)\n"
    )
    output = tmp_path / "asyncapi.json"
    result = run_cli("asyncapi", "service:app", "--app-dir", str(tmp_path), "--indent", "0", "-o", str(output))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    text = output.read_text()
    assert text.count("\n") == 1  # compact, one line
    document = json.loads(text)
    assert_valid(document)
    assert document["info"]["title"] == "Service" and "room.action.hello" in document["operations"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("example.app", 'must be in the form "module:attribute"'),
        (":app", 'must be in the form "module:attribute"'),
        ("no_such_module_here:app", 'Could not import the module "no_such_module_here"'),
        ("example.app:nothing", 'has no attribute "nothing"'),
        ("example.app:create_app", "is a function, not a FastAPI app"),
    ],
)
def test_cli_asyncapi_bad_import_string_exits_2_with_message(target: str, message: str) -> None:
    result = run_cli("asyncapi", target)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_unwritable_output_and_missing_command_exit_2(tmp_path: Path) -> None:
    result = run_cli("asyncapi", "example.app:app", "--output", str(tmp_path / "missing" / "asyncapi.json"))
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr
    result = run_cli()
    assert result.returncode == 2 and "COMMAND" in result.stderr


def test_cli_main_in_process_prints_or_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi", "example.app:app", "--indent", "0"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and json.loads(out)["info"]["title"] == "fastapi-channels demo"
    assert main(["asyncapi", "example.app:create_app"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == 'Error: "example.app:create_app" is a function, not a FastAPI app.\n'


def test_cli_import_app_missing_dependency_of_the_app_is_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "needs_more.py").write_text("import a_package_nobody_installed\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ModuleNotFoundError, match="a_package_nobody_installed"):
            import_app("needs_more:app")  # the app's own import fails: its traceback says where
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("needs_more", None)


def test_asyncapi_page_template_ships_in_the_package() -> None:
    assert (importlib.resources.files("fastapi_channels") / "templates" / "asyncapi.html").is_file()


def test_served_route_dataclass_is_frozen() -> None:
    route = served_routes(board_app()[0])[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.path = "/elsewhere"  # type: ignore[misc]
    assert (route.address, route.parameters, route.name) == ("/games/{game}", {"game": "int"}, "game_endpoint")


class Plain(Channel):
    @action
    async def ping(self) -> str:
        return "pong"


def test_asyncapi_document_lists_the_codecs_of_a_channel_that_speaks_more_than_json_text() -> None:
    class Binary(Channel):
        codecs = (JSON_TEXT, MSGPACK, JSON_BINARY)

        @action
        async def ping(self) -> str:
            return "pong"

    app = FastAPI()
    add_channel(app)
    app.add_api_websocket_route("/binary", Binary().connect)
    app.add_api_websocket_route("/plain", Plain().connect)
    document = asyncapi_document(app)
    assert_valid(document)
    facts = {channel["address"]: channel["x-fastapi-channels"] for channel in document["channels"].values()}
    assert facts["/binary"]["codecs"] == [
        {"name": "json", "subprotocol": "fastapi-channels.json", "binary": False},
        {"name": "msgpack", "subprotocol": "fastapi-channels.msgpack", "binary": True},
        {"name": "json-binary", "subprotocol": "fastapi-channels.json-binary", "binary": True},
    ]
    assert "codecs" not in facts["/plain"]  # the default, JSON text, goes without saying


def test_asyncapi_document_of_a_channel_with_history_has_publications_and_resume() -> None:
    class Feed(Channel):
        history_size = 50
        history_ttl = 60.0

        @action
        async def post(self, text: str) -> None:
            pass

    app = FastAPI()
    add_channel(app)
    app.add_api_websocket_route("/feed", Feed().connect)
    app.add_api_websocket_route("/plain", Plain().connect)
    document = asyncapi_document(app)
    assert_valid(document)
    feed, plain = (channel for channel in document["channels"].values())
    assert feed["x-fastapi-channels"]["history"] == {"size": 50, "ttl": 60.0}
    assert {"publication", "resume", "action.resume"} <= set(feed["messages"])
    assert not {"publication", "resume", "action.resume"} & set(plain["messages"])
    assert "history" not in plain["x-fastapi-channels"]
    publication = document["components"]["messages"]["publication"]["payload"]
    assert publication["required"] == ["type", "channel", "offset", "epoch"]
    resume = [op for key, op in document["operations"].items() if key.endswith(".action.resume")]
    assert len(resume) == 1 and resume[0]["action"] == "receive"
    assert "Publication" in render_page(document)


def test_asyncapi_document_of_a_channel_with_client_subscriptions_has_subscribe_frames() -> None:
    class Rooms(Channel):
        client_subscriptions = True
        max_channels_per_connection = 5
        join_permission = IsAuthenticated

        @action
        async def unsubscribe(self) -> None:  # the channel's own action takes the frame of that name
            pass

    app = FastAPI()
    add_channel(app)
    app.add_api_websocket_route("/rooms", Rooms().connect)
    app.add_api_websocket_route("/plain", Plain().connect)
    document = asyncapi_document(app)
    assert_valid(document)
    rooms, plain = (channel for channel in document["channels"].values())
    facts = rooms["x-fastapi-channels"]
    assert facts["client_subscriptions"] is True and facts["max_channels_per_connection"] == 5
    assert facts["join_permission"] == describe_permission(IsAuthenticated)
    assert {"broadcast", "action.subscribe", "reply.subscribe"} <= set(rooms["messages"])
    subscribe = rooms["messages"]["action.subscribe"]["payload"]
    assert subscribe["properties"]["action"]["const"] == "subscribe"
    assert subscribe["allOf"][0]["required"] == ["channel"]
    # The channel's own unsubscribe action is described as any other action, once.
    assert [op.get("title") for op in document["operations"].values()].count("unsubscribe") == 1
    assert "broadcast" not in plain["messages"] and "client_subscriptions" not in plain["x-fastapi-channels"]
