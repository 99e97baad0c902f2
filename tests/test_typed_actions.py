"""Typed actions: payloads validated for typed parameters, ValidationFailed, replies, response models, metadata."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Annotated, Any, Literal

import pytest
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from fastapi_channels import ValidationFailed, add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import RETURN_ANNOTATION, action, get_action_spec
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.payloads import MAX_DETAIL_ERRORS
from fastapi_channels.testing import receive_close, receive_json, receive_text, send_action
from fastapi_channels.throttling import limiter
from tests.conftest import run_uvicorn
from tests.helpers import serve


class Point(BaseModel):
    x: int
    y: int


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: int


class Size(TypedDict):
    width: int
    height: int


@dataclasses.dataclass
class Note:
    text: str
    pinned: bool = False


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    tricks: list[str]


Pet = Annotated[Cat | Dog, Field(discriminator="kind")]


class Tree(BaseModel):
    children: list[Tree] = []


class Text(BaseModel):
    text: Annotated[str, Field(max_length=100)]


class UserOut(BaseModel):
    name: str
    nickname: str | None = None
    role: str = "member"


class UserInDB(UserOut):
    password_hash: str


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")


USER = UserInDB(name="ada", password_hash="secret")
NOT_GIVEN = object()


def frames_of(ws: Any, *frames: dict[str, Any]) -> list[Any]:
    """Send each frame and return the frame that answers it."""
    answers = []
    for frame in frames:
        ws.send_json(frame)
        answers.append(receive_json(ws))
    return answers


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


# -- typed payloads --------------------------------------------------------------------------------------


def test_model_parameter_receives_the_payload_without_action_and_request_id() -> None:
    received: list[Any] = []

    class Room(Channel):
        @action
        async def move(self, point: Point) -> Point:
            received.append(point)
            return point

        @action
        async def tag(self, tag: Loose) -> dict[str, Any]:
            return {"name": tag.name, "extra": tag.model_extra}

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "move", "request_id": 1, "x": 3, "y": "4"}) == [
            reply("move", 1, {"x": 3, "y": 4})
        ]
        # Extra fields reach a model that allows them, but never action and request_id.
        answer = frames_of(ws, {"action": "tag", "request_id": "t", "name": "a", "z": 5})[0]
        assert answer["data"] == {"name": "a", "extra": {"z": 5}}
    assert received == [Point(x=3, y=4)]


def test_typed_dict_dataclass_and_union_parameters_take_the_whole_payload() -> None:
    class Room(Channel):
        @action
        async def resize(self, size: Size) -> Size:
            return size

        @action
        async def note(self, note: Note) -> dict[str, Any]:
            return {"type": type(note).__name__, "note": dataclasses.asdict(note)}

        @action
        async def adopt(self, pet: Pet) -> str:
            return type(pet).__name__

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        answers = frames_of(
            ws,
            {"action": "resize", "width": "2", "height": 3},
            {"action": "note", "text": "hi"},
            {"action": "adopt", "kind": "dog", "tricks": ["sit"]},
            {"action": "adopt", "kind": "cat", "lives": 9},
            {"action": "adopt", "kind": "fish"},
        )
    assert [answer.get("data") for answer in answers[:4]] == [
        {"width": 2, "height": 3},
        {"type": "Note", "note": {"text": "hi", "pinned": False}},
        "Dog",
        "Cat",
    ]
    assert answers[4]["detail"][0]["type"] == "union_tag_invalid"


def test_annotated_parameters_take_payload_fields_by_name_with_defaults_honoured() -> None:
    received: list[Any] = []

    class Room(Channel):
        @action
        async def add(self, a: int, b: int = 10) -> int:
            return a + b

        @action
        async def total(self, values: list[int], scale: Annotated[int, Field(ge=1)] = 1) -> int:
            return sum(values) * scale

        @action
        async def keep(self, marker: Any = NOT_GIVEN, label: str | None = None) -> None:
            received.append((marker, label))

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        answers = frames_of(
            ws,
            {"action": "add", "a": 1},
            {"action": "add", "a": "1", "b": 2, "unrelated": True},
            {"action": "total", "values": [1, "2", 3], "scale": 2},
            {"action": "total", "values": [1], "scale": 0},
        )
        send_action(ws, "keep")
        send_action(ws, "keep", marker=None, label="x")
        assert frames_of(ws, {"action": "add", "a": 0})[0]["data"] == 10  # both keeps ran before
    assert [answer.get("data") for answer in answers[:3]] == [11, 3, 12]
    assert answers[3]["detail"] == [
        {"loc": ["payload", "scale"], "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"}
    ]
    # A field the payload leaves out is not passed: the handler's own default object arrives, not a copy.
    assert received[0][0] is NOT_GIVEN and received == [(NOT_GIVEN, None), (None, "x")]


def test_keyword_names_keep_their_meaning_whatever_their_annotation() -> None:
    class Room(Channel):
        @action
        async def names(self, data: Point, channel: int, action: Any, request_id: Point) -> dict[str, Any]:
            return {"data": data, "channel": channel, "action": action, "request_id": request_id}

    with TestClient(serve(Room(channel="kw"))) as client, client.websocket_connect("/ws") as ws:
        answer = frames_of(ws, {"action": "names", "request_id": 5, "x": "not checked"})[0]
    assert answer["data"] == {
        "data": {"action": "names", "request_id": 5, "x": "not checked"},
        "channel": "kw",
        "action": "names",
        "request_id": 5,
    }


def test_parameter_annotated_websocket_gets_the_socket_whatever_its_name() -> None:
    class Room(Channel):
        @action
        async def hello(self, ws: WebSocket, point: Point) -> None:
            await self.broadcast_to_personal(ws, {"hello": point.x, "path": ws.url.path})

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "hello", "x": 1, "y": 2}) == [{"hello": 1, "path": "/ws"}]


def test_typed_handler_with_kwargs_and_keywords_receives_both() -> None:
    class Room(Channel):
        @action
        def scaled(self, point: Point, request_id: Any, **kwargs: Any) -> dict[str, Any]:  # a plain def too
            return {"x": point.x * 2, "request_id": request_id, "kwargs": sorted(kwargs)}

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        answer = frames_of(ws, {"action": "scaled", "request_id": "s", "x": 2, "y": 0})[0]
    assert answer == reply("scaled", "s", {"x": 4, "request_id": "s", "kwargs": ["channel", "data", "websocket"]})


def test_function_action_takes_typed_payload_and_replies() -> None:
    room = Channel()

    @room.action("plot", response_model_exclude_none=True)
    async def plot(point: Point) -> UserOut:
        return UserOut(name=f"{point.x},{point.y}")

    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "plot", "x": 1, "y": 2, "request_id": 0}) == [
            reply("plot", 0, {"name": "1,2", "role": "member"})
        ]
        assert frames_of(ws, {"action": "plot", "x": 1})[0]["detail"][0]["loc"] == ["payload", "y"]


def test_class_body_and_module_names_resolve_string_annotations() -> None:
    class Room(Channel):
        class Inner(BaseModel):
            value: int

        @action
        async def inner(self, inner: Inner) -> Inner:  # "Inner" lives in the class body
            return inner

        @action
        async def tree(self, tree: Tree) -> int:
            depth, node = 0, tree
            while node.children:
                depth, node = depth + 1, node.children[0]
            return depth

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "inner", "value": "7"})[0]["data"] == {"value": 7}
        nested: dict[str, Any] = {}
        for _ in range(60):  # 60 models deep: 121 JSON levels, within the frame parser's 200
            nested = {"children": [nested]}
        assert frames_of(ws, {"action": "tree", **nested})[0]["data"] == 60


# -- definition-time mistakes ----------------------------------------------------------------------------


def test_two_whole_payload_parameters_fail_at_definition() -> None:
    with pytest.raises(TypeError, match=r"Room\.both has the parameters 'point' and 'size', which each take the whole"):

        class Room(Channel):
            @action
            async def both(self, point: Point, size: Size) -> None: ...


def test_whole_payload_and_fields_by_name_fail_at_definition() -> None:
    room = Channel()

    async def plot(point: Point, label: str | None = None) -> None: ...

    with pytest.raises(TypeError, match=r"takes the whole payload in 'point' and the payload fields 'label' by name"):
        room.action()(plot)
    assert room.actions == []


def test_unannotated_parameter_without_default_fails_at_definition_naming_the_allowed_forms() -> None:
    with pytest.raises(TypeError) as info:

        class Room(Channel):
            @action
            async def move(self, x, y: int) -> None: ...  # type: ignore[no-untyped-def]

    message = str(info.value)
    assert "Room.move has the parameter 'x', which no action call fills" in message
    assert "annotate it with a type to take the payload field 'x'" in message
    assert "pydantic model, TypedDict or dataclass to take the whole payload" in message


def test_field_default_fails_at_definition_saying_to_use_annotated() -> None:
    with pytest.raises(TypeError, match=r"`scale: Annotated\[<type>, Field\(...\)\] = <default>`"):

        class Room(Channel):
            @action
            async def zoom(self, scale: int = Field(1, ge=1)) -> None: ...


def test_unresolvable_annotation_fails_at_definition_saying_where_to_define_it() -> None:
    room = Channel()

    async def draw(shape: Undefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"annotates the parameter 'shape' with 'Undefined', which cannot be evaluated"):
        room.action()(draw)

    async def returns(point: Point) -> Missing: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"its return value with 'Missing'.*or pass response_model=None"):
        room.action()(returns)
    room.action(response_model=None)(returns)  # not evaluated then
    assert room.actions == ["returns"]


class Opaque:
    """A class pydantic has no schema for."""


def test_types_pydantic_cannot_validate_fail_at_definition() -> None:
    room = Channel()

    async def takes(thing: Opaque) -> None: ...

    with pytest.raises(TypeError, match=r"takes has parameters, which pydantic cannot validate"):
        room.action()(takes)

    async def gives() -> Opaque:
        return Opaque()

    with pytest.raises(TypeError, match=r"response_model=None sends values as they are"):
        room.action()(gives)
    with pytest.raises(TypeError, match=r"has the response model"):
        room.action("explicit", response_model=Opaque)(gives)
    assert room.actions == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"summary": 3}, "action summary must be a string or None"),
        ({"description": b"x"}, "action description must be a string or None"),
        ({"tags": "drawing"}, "action tags must be a list of strings"),
        ({"tags": ["a", 1]}, "action tags must be a list of strings"),
    ],
)
def test_metadata_of_the_wrong_type_fails_at_definition(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        action(**options)
    with pytest.raises(TypeError, match=message):
        Channel().action(**options)


# -- validation failures -----------------------------------------------------------------------------------


class Shapes(Channel):
    @action
    async def move(self, point: Point) -> Point:
        return point

    @action
    async def close(self, closed: Closed) -> int:
        return closed.x

    @action
    async def total(self, values: list[int]) -> int:
        return sum(values)

    @action
    async def say(self, text: Text) -> int:
        return len(text.text)

    @action
    async def scores(self, scores: dict[str, int]) -> int:
        return len(scores)

    @action
    async def tree(self, tree: Tree) -> str:
        return "ok"

    @action
    async def ping(self, websocket: WebSocket) -> str:
        return "pong"


def test_missing_and_wrong_fields_answer_validation_failed_1007_and_the_socket_stays_open() -> None:
    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "move", "request_id": 7, "x": "three"})
        assert receive_json(ws) == {
            "type": "response",
            "status": "bad",
            "action": "move",
            "request_id": 7,
            "errors": "The payload is not valid: payload.x: Input should be a valid integer, unable to parse string "
            "as an integer; payload.y: Field required",
            "code": 1007,
            "close": False,
            "detail": [
                {
                    "loc": ["payload", "x"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                },
                {"loc": ["payload", "y"], "msg": "Field required", "type": "missing"},
            ],
        }
        assert frames_of(ws, {"action": "ping", "request_id": "still open"}) == [reply("ping", "still open", "pong")]


def test_extra_fields_are_ignored_unless_the_model_forbids_them() -> None:
    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        answers = frames_of(
            ws,
            {"action": "move", "x": 1, "y": 2, "z": 3},
            {"action": "close", "x": 1, "request_id": 1},  # action and request_id are not payload fields
            {"action": "close", "x": 1, "z": 3},
        )
    assert answers[0]["data"] == {"x": 1, "y": 2}
    assert answers[1]["data"] == 1
    assert answers[2]["detail"] == [
        {"loc": ["payload", "z"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]


def test_huge_values_give_small_error_frames() -> None:
    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        too_long, many_bad, long_key, big_number, huge_ok = frames_of(
            ws,
            {"action": "say", "text": "x" * 1_000_000},
            {"action": "total", "values": ["x"] * 10_000},
            {"action": "close", "x": 1, "k" * 100_000: 1},
            {"action": "scores", "scores": {"a": "9" * 5000}},
            {"action": "total", "values": [10**30, 1]},
        )
        ws.send_text('{"action": "total", "values": [%s]}' % ("9" * 5000))  # more digits than JSON numbers may have
        assert receive_json(ws)["errors"] == "The message is not valid JSON."
        assert frames_of(ws, {"action": "ping"})[0]["data"] == "pong"
    assert too_long["detail"] == [
        {"loc": ["payload", "text"], "msg": "String should have at most 100 characters", "type": "string_too_long"}
    ]
    assert len(many_bad["detail"]) == MAX_DETAIL_ERRORS
    assert many_bad["errors"].endswith("(10000 errors in all)")
    assert len(json.dumps(many_bad)) < 5_000
    assert len(long_key["detail"][0]["loc"][1]) == 200 and long_key["detail"][0]["loc"][1].endswith("...")
    assert len(json.dumps(long_key)) < 1_000
    assert big_number["detail"][0]["type"] == "int_parsing_size"
    assert huge_ok["data"] == 10**30 + 1


def test_deep_nesting_is_validated_up_to_the_parser_limit_and_refused_beyond() -> None:
    def nested(levels: int) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for _ in range(levels):
            tree = {"children": [tree]}
        return tree

    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "tree", **nested(95)})[0]["data"] == "ok"
        refused = frames_of(ws, {"action": "tree", **nested(150)})[0]
        assert (refused["errors"], refused["code"]) == ("The message is nested too deeply.", 1007)
        wrong_deep_down = nested(50)
        node = wrong_deep_down
        for _ in range(49):
            node = node["children"][0]
        node["children"] = [{"children": "not a list"}]
        error = frames_of(ws, {"action": "tree", **wrong_deep_down})[0]
        assert error["detail"][0]["loc"] == ["payload", *(["children", 0] * 50), "children"]
        assert frames_of(ws, {"action": "ping"})[0]["data"] == "pong"


def test_non_object_frames_and_payload_fields_of_the_wrong_shape_are_refused() -> None:
    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        for text in ('[{"action": "move"}]', '"move"', "3", "null"):
            ws.send_text(text)
            error = receive_json(ws)
            assert (error["errors"], error["code"], error["close"]) == (
                'The message must be a JSON object such as {"action": "..."}.',
                1007,
                False,
            )
        wrong = frames_of(
            ws,
            {"action": "total", "values": {"0": 1}},
            {"action": "scores", "scores": [1, 2]},
            {"action": "tree", "children": [1]},
        )
        assert frames_of(ws, {"action": "ping"})[0]["data"] == "pong"
    assert [error["detail"][0]["type"] for error in wrong] == ["list_type", "dict_type", "model_type"]
    assert wrong[2]["detail"][0]["loc"] == ["payload", "children", 0]


def test_permission_and_rate_limit_are_checked_before_the_payload() -> None:
    ran: list[Point] = []

    class Room(Channel):
        @action(permission=False)
        async def forbidden(self, point: Point) -> None:
            ran.append(point)

        @limiter(times=1, seconds=60)
        @action
        async def limited(self, point: Point) -> None:
            ran.append(point)

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "forbidden", "x": "bad"})[0]["code"] == 1008
        assert frames_of(ws, {"action": "limited", "x": "bad"})[0]["code"] == 1007  # spends the one request
        assert frames_of(ws, {"action": "limited", "x": "bad"})[0]["code"] == 1013
    assert ran == []


def test_validation_failed_goes_through_the_apps_exception_handler() -> None:
    app = serve(Shapes())

    async def on_invalid(websocket: WebSocket, exc: ValidationFailed) -> None:
        await websocket.send_json({"invalid": [error["loc"][-1] for error in exc.detail], "action": exc.action})

    app.add_exception_handler(ValidationFailed, on_invalid)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert frames_of(ws, {"action": "move"}) == [{"invalid": ["x", "y"], "action": "move"}]


def test_validation_failed_raised_by_hand_and_in_http_routes() -> None:
    error = ValidationFailed(detail=[{"loc": ["payload", "x"], "msg": "Too far", "type": "value_error"}])
    assert (error.code, error.close, error.http_status, str(error)) == (1007, False, 422, "The payload is not valid.")
    app = FastAPI()
    add_channel(app)

    @app.get("/check")
    async def check() -> None:
        raise error

    with TestClient(app) as client:
        response = client.get("/check")
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["payload", "x"], "msg": "Too far", "type": "value_error"}]


# -- replies -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [0, -3, 2.5, "abc-1", "", "日本", None])
def test_returned_value_answers_the_sender_alone_with_its_request_id_as_sent(request_id: Any) -> None:
    with TestClient(serve(Shapes())) as client:
        with client.websocket_connect("/ws") as caller, client.websocket_connect("/ws") as other:
            frame = {"action": "move", "x": 1, "y": 2}
            if request_id is not None:
                frame["request_id"] = request_id
            caller.send_json(frame)
            assert receive_text(caller) == json.dumps(
                reply("move", request_id, {"x": 1, "y": 2}), separators=(",", ":"), ensure_ascii=False
            )
            # The other client got nothing: the answer to its own request comes first.
            assert frames_of(other, {"action": "ping", "request_id": "o"}) == [reply("ping", "o", "pong")]


def test_request_id_that_is_not_a_number_or_string_is_null_in_the_reply() -> None:
    with TestClient(serve(Shapes())) as client, client.websocket_connect("/ws") as ws:
        answers = frames_of(ws, {"action": "ping", "request_id": True}, {"action": "ping", "request_id": [1]})
    assert [answer["request_id"] for answer in answers] == [None, None]


def test_returning_none_sends_nothing_and_any_other_value_is_the_reply() -> None:
    class Room(Channel):
        @action
        async def quiet(self, websocket: WebSocket) -> None:
            return None

        @action
        async def legacy(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> Any:
            return data.get("value")  # an untyped handler's value is its reply too

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        send_action(ws, "quiet")
        answers = frames_of(
            ws,
            {"action": "legacy", "value": [1, "two", None]},
            {"action": "legacy", "value": "text"},
            {"action": "legacy", "value": False},
            {"action": "legacy", "value": 0},
            {"action": "legacy", "value": {"nested": {"é": float("1e308")}}},
        )
        send_action(ws, "legacy")  # no value: None, no reply
        assert frames_of(ws, {"action": "legacy", "value": "last"})[0]["data"] == "last"
    assert [answer["data"] for answer in answers] == [[1, "two", None], "text", False, 0, {"nested": {"é": 1e308}}]


def test_reply_keeps_its_place_after_frames_the_handler_sent_first() -> None:
    class Room(Channel):
        @action
        async def chatty(self, websocket: WebSocket, count: int) -> str:
            for number in range(count):
                await self.broadcast_to_personal(websocket, {"n": number})
            return "done"

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        send_action(ws, "chatty", count=20, request_id=1)
        assert [receive_json(ws) for _ in range(21)] == [*({"n": n} for n in range(20)), reply("chatty", 1, "done")]


def test_reply_is_a_protocol_frame_not_passed_to_encode_json() -> None:
    class Wrapped(Channel):
        @staticmethod
        def encode_json(data: Any) -> str:
            return json.dumps({"wrapped": data})

        @action
        async def both(self, websocket: WebSocket, point: Point) -> Point:
            await self.broadcast_to_personal(websocket, {"x": point.x})
            return point

    with TestClient(serve(Wrapped())) as client, client.websocket_connect("/ws") as ws:
        send_action(ws, "both", x=1, y=2)
        assert receive_json(ws) == {"wrapped": {"x": 1}}
        assert receive_json(ws) == reply("both", None, {"x": 1, "y": 2})


def test_unserialisable_return_value_is_an_internal_error_logged_and_closed_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Room(Channel):
        @action
        async def odd(self, websocket: WebSocket) -> Any:
            return Opaque()

    with caplog.at_level(logging.ERROR), TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = frames_of(ws, {"action": "odd", "request_id": 4})[0]
        assert (error["errors"], error["request_id"], error["code"], error["close"]) == (
            "Internal server error.",
            4,
            1011,
            True,
        )
        assert receive_close(ws)[0] == 1011
    assert "Opaque" in caplog.text


# -- response models ---------------------------------------------------------------------------------------


class Accounts(Channel):
    @action
    async def me(self, websocket: WebSocket) -> UserOut:
        return USER  # a UserInDB: the return annotation keeps only UserOut's fields

    @action(response_model=None)
    async def raw(self, websocket: WebSocket) -> UserOut:
        return USER

    @action(response_model=UserOut, response_model_exclude_none=True)
    async def lookup(self, name: str) -> Any:
        return {"name": name, "nickname": None, "password_hash": "never sent"}

    @action(response_model=UserOut, response_model_exclude_unset=True)
    async def unset(self, name: str) -> Any:
        return UserOut(name=name, nickname=None)

    @action(response_model=UserOut, response_model_exclude_defaults=True)
    async def defaults(self, name: str) -> Any:
        return {"name": name, "role": "member", "nickname": "n"}

    @action(response_model=Aliased)
    async def alias(self, websocket: WebSocket) -> Any:
        return {"fullName": "Ada Lovelace"}

    @action(response_model=Aliased, response_model_by_alias=False)
    async def no_alias(self, websocket: WebSocket) -> Any:
        return Aliased(fullName="Ada Lovelace")

    @action
    async def numbers(self, values: list[str]) -> list[int]:
        return values  # type: ignore[return-value]  # shaped by the return annotation: strings of digits fit

    @action
    async def anything(self, websocket: WebSocket) -> Any:
        return USER

    @action(response_model=UserOut)
    async def broken(self, websocket: WebSocket) -> Any:
        return {"nickname": 3}


def test_return_annotation_is_the_response_model_unless_response_model_is_none() -> None:
    with TestClient(serve(Accounts())) as client, client.websocket_connect("/ws") as ws:
        me, raw, numbers, anything = frames_of(
            ws,
            {"action": "me"},
            {"action": "raw"},
            {"action": "numbers", "values": ["1", "02"]},
            {"action": "anything"},
        )
    assert me["data"] == {"name": "ada", "nickname": None, "role": "member"}
    assert raw["data"] == anything["data"] == {**me["data"], "password_hash": "secret"}
    assert numbers["data"] == [1, 2]


def test_response_model_options_shape_the_reply_as_fastapi_does() -> None:
    with TestClient(serve(Accounts())) as client, client.websocket_connect("/ws") as ws:
        answers = frames_of(
            ws,
            {"action": "lookup", "name": "bob"},
            {"action": "unset", "name": "bob"},
            {"action": "defaults", "name": "bob"},
            {"action": "alias"},
            {"action": "no_alias"},
        )
    assert [answer["data"] for answer in answers] == [
        {"name": "bob", "role": "member"},
        {"name": "bob", "nickname": None},
        {"name": "bob", "nickname": "n"},
        {"fullName": "Ada Lovelace"},
        {"full_name": "Ada Lovelace"},
    ]


def test_return_value_that_does_not_fit_the_response_model_is_a_logged_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR), TestClient(serve(Accounts())) as client:
        with client.websocket_connect("/ws") as ws:
            error = frames_of(ws, {"action": "broken", "request_id": "b"})[0]
            assert error == {
                "type": "response",
                "status": "bad",
                "action": "broken",
                "request_id": "b",
                "errors": "Internal server error.",
                "code": 1011,
                "close": True,
            }
            assert receive_close(ws)[0] == 1011
    logged = [record for record in caplog.records if record.exc_info]
    assert "The action 'broken' returned a value that does not fit its response model" in str(logged[0].exc_info[1])


# -- metadata, the generic path and untyped actions -------------------------------------------------------


def test_metadata_is_kept_on_the_spec_and_the_registry_describes_payload_and_reply() -> None:
    class Board(Channel):
        @action(summary="Move a piece", description="Moves one piece.", tags=["game", "moves"])
        async def move(self, point: Point) -> Point:
            """Move the piece at ``point``."""
            return point

        @action
        async def add(self, a: int, b: int = 0) -> int:
            return a + b

        @action
        async def classic(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None: ...

    spec = get_action_spec(Board.move)
    assert spec is not None
    assert (spec.summary, spec.description, spec.tags, spec.doc) == (
        "Move a piece",
        "Moves one piece.",
        ("game", "moves"),
        "Move the piece at ``point``.",
    )
    assert spec.response_model is RETURN_ANNOTATION
    board = Board()
    move, add, classic = (board.get_action(name) for name in ("move", "add", "classic"))
    assert move.payload is not None and move.payload.parameter == "point"
    assert move.payload.adapter.json_schema()["required"] == ["x", "y"]
    assert move.reply.adapter is not None and move.reply.adapter.json_schema()["title"] == "Point"
    assert add.payload is not None and add.payload.parameter is None
    assert add.payload.adapter.json_schema() == {
        "title": "add_payload",
        "type": "object",
        "properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
        "required": ["a"],
    }
    assert classic.payload is None and classic.reply.adapter is None
    assert classic.accepted == {"websocket", "channel", "data"}


def test_on_receive_override_calling_super_validates_and_replies() -> None:
    seen: list[str] = []

    class Logged(Shapes):
        async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
            seen.append(message)
            await super().on_receive(websocket, channel, message)

    with TestClient(serve(Logged())) as client, client.websocket_connect("/ws") as ws:
        ok, bad = frames_of(ws, {"action": "move", "x": 1, "y": 2, "request_id": 1}, {"action": "move", "x": 1})
        send_action(ws, "tree")  # returns "ok"
        assert receive_json(ws)["data"] == "ok"
    assert ok == reply("move", 1, {"x": 1, "y": 2})
    assert (bad["code"], bad["detail"][0]["loc"], bad["action"]) == (1007, ["payload", "y"], "move")
    assert len(seen) == 3


def test_untyped_actions_send_exactly_the_frames_they_sent_before() -> None:
    class Classic(Channel):
        @action
        async def echo(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            await self.broadcast_to_personal(websocket, data)

        @action
        async def silent(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            pass

        @action
        async def text(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, "plain")

        @action(permission=False)
        async def denied(self, websocket: WebSocket) -> None: ...

        @action
        async def refuse(self, websocket: WebSocket) -> None:
            raise PermissionDenied(close=False)

    with TestClient(serve(Classic())) as client, client.websocket_connect("/ws") as ws:
        sent = [
            '{"action": "echo", "request_id": 1, "x": 3, "y": 4}',
            '{"action":"silent","x":1}',
            '{"action":"text"}',
            '{"action":"denied","request_id":"d"}',
            '{"action":"refuse"}',
            '{"action":"nope","request_id":2}',
        ]
        for text in sent:
            ws.send_text(text)
        assert [receive_text(ws) for _ in range(5)] == [
            '{"action":"echo","request_id":1,"x":3,"y":4}',
            "plain",
            '{"type":"response","status":"bad","action":"denied","request_id":"d",'
            '"errors":"You do not have permission to perform this action.","code":1008,"close":false}',
            '{"type":"response","status":"bad","action":"refuse","request_id":null,'
            '"errors":"You do not have permission to perform this action.","code":1008,"close":false}',
            '{"type":"response","status":"bad","action":"nope","request_id":2,'
            '"errors":"The action \'nope\' does not exist.","code":1008,"close":false}',
        ]


# -- through a real server -----------------------------------------------------------------------------------


async def test_typed_actions_under_uvicorn_reply_and_refuse_bad_payloads() -> None:
    with run_uvicorn("tests.apps.typed_app:app") as base_url:
        async with websockets.connect(f"{base_url.replace('http://', 'ws://')}/ws") as client:
            await client.send(json.dumps({"action": "move", "request_id": 1, "x": 3, "y": 4}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5)) == reply("move", 1, {"x": 3, "y": 4})
            await client.send(json.dumps({"action": "move", "request_id": 2, "x": 3}))
            error = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert (error["code"], error["close"], error["request_id"]) == (1007, False, 2)
            assert error["detail"] == [{"loc": ["payload", "y"], "msg": "Field required", "type": "missing"}]
            await client.send(json.dumps({"action": "add", "request_id": "a", "a": 2}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5)) == reply("add", "a", 12)
            await client.send(json.dumps({"action": "shout", "text": "hi"}))
            assert await asyncio.wait_for(client.recv(), 5) == '{"shout":"HI"}'  # untyped: as before
