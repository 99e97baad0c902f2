"""A connection's catch-up with history: the replay/live seam, bounded holding, and bad resume requests.

The seam tests drive ``ChannelLayer`` and ``Resumption`` directly with in-process websockets whose client can
stop reading, so that publications arrive exactly while a replay waits: on memory:// and on Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fastapi_channels import resume
from fastapi_channels.backends import create_broadcast
from fastapi_channels.channels import Channel
from fastapi_channels.history import HistoryPage, MemoryHistory, Position, RedisHistory, Retention
from fastapi_channels.layers import ChannelLayer
from fastapi_channels.resume import Resumption
from fastapi_channels.testing import receive_json, send_action
from tests.apps.sockets import Member, leave_all
from tests.test_history import history_app, joined, publish, resume_frame

RETENTION = Retention(1000)
# The ids of the connections admitted with a resumption: they get a resume frame.
RESUMING: set[str] = set()


@pytest.fixture(params=["memory", "redis"])
async def layer(request: pytest.FixtureRequest) -> AsyncIterator[ChannelLayer]:
    """A running channel layer that keeps history: in memory, or in Redis under a namespace of its own."""
    namespace = f"test-{uuid.uuid4().hex}"
    if request.param == "memory":
        url, store = "memory://", MemoryHistory()
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisHistory(url, namespace=namespace)
    broadcast = create_broadcast(url)
    await broadcast.connect()
    layer = ChannelLayer(broadcast, namespace=namespace, history=store)
    await layer.start()
    try:
        yield layer
    finally:
        await layer.stop()
        await broadcast.disconnect()


async def publish_numbers(layer: ChannelLayer, channel: str, numbers: range) -> Position:
    position = None
    for number in numbers:
        position = await layer.publish_to_history(
            channel, channel, json.dumps(number), is_json=True, retention=RETENTION
        )
    assert position is not None
    return position


async def joining(
    layer: ChannelLayer, channel: str, since: Position | None, *, buffer_bytes: int = 1_000_000
) -> tuple[Member, Resumption]:
    """Admit a connection that resumes from ``since``, with live publications held from now on."""
    member = await Member.open(channel, send_queue_size=100_000)

    async def read(since: int | None, limit: int | None) -> HistoryPage:
        return await layer.read_history(channel, RETENTION, since, limit)

    resumption = Resumption(member.connection, channel, read=read, since=since, buffer_bytes=buffer_bytes)
    RESUMING.add(member.connection.id)
    assert await layer.add(member.connection, resumption=resumption)
    return member, resumption


async def probe(layer: ChannelLayer, channel: str) -> Member:
    """Add a connection that is not catching up: once it has a publication, every member of the process has."""
    member = await Member.open(channel, send_queue_size=100_000)
    assert await layer.add(member.connection)
    return member


async def frames_until(member: Member, offset: int) -> list[dict[str, Any]]:
    """Read frames until the publication ``offset`` and, for a connection catching up, its resume frame."""
    frames: list[dict[str, Any]] = []
    resumed, reached = member.connection.id not in RESUMING, False
    while not (resumed and reached):
        frames.append(frame := json.loads(await member.peer.next_text()))
        resumed = resumed or frame["type"] == "resume"
        reached = reached or (frame["type"], frame["offset"]) == ("publication", offset)
    return frames


def assert_caught_up(
    frames: list[dict[str, Any]], channel: str, *, since: int, replayed_to: int, last: int, epoch: str
) -> None:
    """Publications ``since + 1`` to ``last`` once each and in order, the resume frame right after ``replayed_to``."""
    kinds = [(frame["type"], frame["offset"]) for frame in frames]
    expected = [("publication", offset) for offset in range(since + 1, last + 1)]
    expected.insert(replayed_to - since, ("resume", replayed_to))
    assert kinds == expected
    assert frames[replayed_to - since] == resume_frame(channel, recovered=True, offset=replayed_to, epoch=epoch)


async def test_resumption_publications_while_a_replay_waits_on_the_client_come_after_it_once_and_in_order(
    layer: ChannelLayer, channel_name: str
) -> None:
    first = await publish_numbers(layer, channel_name, range(50))
    watcher = await probe(layer, channel_name)
    member, resumption = await joining(layer, channel_name, Position(10, first.epoch))
    # Published after the connection joined but before history was read: in the replay, and live too.
    await publish_numbers(layer, channel_name, range(50, 55))
    await resumption.prepare()
    member.peer.pause()
    catching_up = asyncio.ensure_future(resumption.catch_up())
    # The replay waits on the client that does not read; meanwhile 200 more are published.
    await publish_numbers(layer, channel_name, range(55, 255))
    await frames_until(watcher, 255)
    assert not catching_up.done()
    member.peer.resume()
    await asyncio.wait_for(catching_up, 10)
    frames = await frames_until(member, 255)
    assert_caught_up(frames, channel_name, since=10, replayed_to=55, last=255, epoch=first.epoch)
    # Nothing comes twice after the last one either.
    await publish_numbers(layer, channel_name, range(255, 256))
    assert json.loads(await member.peer.next_text())["offset"] == 256
    await leave_all(layer, [member, watcher])


async def test_resumption_too_many_publications_to_hold_reads_history_again_without_a_gap(
    layer: ChannelLayer, channel_name: str
) -> None:
    first = await publish_numbers(layer, channel_name, range(20))
    watcher = await probe(layer, channel_name)
    member, resumption = await joining(layer, channel_name, Position(0, first.epoch), buffer_bytes=400)
    await resumption.prepare()
    member.peer.pause()
    catching_up = asyncio.ensure_future(resumption.catch_up())
    await publish_numbers(layer, channel_name, range(20, 300))  # far more than 400 characters of frames
    await frames_until(watcher, 300)
    member.peer.resume()
    await asyncio.wait_for(catching_up, 10)
    frames = await frames_until(member, 300)
    resume = [frame for frame in frames if frame["type"] == "resume"]
    assert len(resume) == 1 and resume[0]["recovered"] is True
    # History was read again: the replay went past what was published when the client joined.
    assert resume[0]["offset"] > 20
    assert_caught_up(frames, channel_name, since=0, replayed_to=resume[0]["offset"], last=300, epoch=first.epoch)
    await leave_all(layer, [member, watcher])


async def test_resumption_publication_still_on_its_way_when_history_was_read_is_not_sent_twice(
    layer: ChannelLayer, channel_name: str
) -> None:
    first = await publish_numbers(layer, channel_name, range(3))
    member, resumption = await joining(layer, channel_name, Position(0, first.epoch))
    # Published, then replayed at once: its live copy reaches the process only after the catch-up is over.
    await publish_numbers(layer, channel_name, range(3, 4))
    await resumption.prepare()
    await resumption.catch_up()
    await publish_numbers(layer, channel_name, range(4, 6))
    frames = await frames_until(member, 6)
    assert_caught_up(frames, channel_name, since=0, replayed_to=4, last=6, epoch=first.epoch)
    await leave_all(layer, [member])


async def test_resumption_fresh_join_gets_no_replay_and_every_later_publication(
    layer: ChannelLayer, channel_name: str
) -> None:
    first = await publish_numbers(layer, channel_name, range(5))
    member, resumption = await joining(layer, channel_name, None)
    await resumption.prepare()
    await resumption.catch_up()
    await publish_numbers(layer, channel_name, range(5, 7))
    frames = await frames_until(member, 7)
    assert [(frame["type"], frame["offset"]) for frame in frames] == [
        ("resume", 5),
        ("publication", 6),
        ("publication", 7),
    ]
    assert frames[0]["recovered"] is False and frames[0]["epoch"] == first.epoch
    await leave_all(layer, [member])


async def test_resumption_of_a_connection_that_left_stops_replaying(layer: ChannelLayer, channel_name: str) -> None:
    first = await publish_numbers(layer, channel_name, range(30))
    member, resumption = await joining(layer, channel_name, Position(0, first.epoch))
    await resumption.prepare()
    member.connection.close()
    await asyncio.wait_for(resumption.catch_up(), 5)
    assert (await member.peer.next())["type"] == "websocket.close"
    assert member.peer.pending() == []
    await leave_all(layer, [member])


# -- resuming with a frame -----------------------------------------------------------------------------


def test_resume_frame_sends_what_was_missed_before_the_join_without_repeating_live_ones(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=100)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 10)["epoch"]
        with joined(client, channel_name) as ws:
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=10, epoch=epoch)
            publish(client, channel_name, 2)
            assert [receive_json(ws)["offset"] for _ in range(2)] == [11, 12]
            send_action(ws, "resume", offset=4, epoch=epoch)
            # 5 to 10 were missed; 11 and 12 came live and are not sent again.
            assert [receive_json(ws)["offset"] for _ in range(6)] == [5, 6, 7, 8, 9, 10]
            # The answer names the last publication sent (12, live), not where the stream stood at the join.
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=12, epoch=epoch)
            # Asked again: nothing is missing any more.
            send_action(ws, "resume", offset=2, epoch=epoch)
            assert [receive_json(ws)["offset"] for _ in range(2)] == [3, 4]
            assert receive_json(ws)["recovered"] is True
            send_action(ws, "resume", offset=12, epoch=epoch)
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=12, epoch=epoch)
            send_action(ws, "resume", offset=3, epoch="another-epoch")
            assert receive_json(ws)["recovered"] is False
            send_action(ws, "resume", offset=99, epoch=epoch)  # past the last publication: not this stream
            assert receive_json(ws)["recovered"] is False


def test_resume_frame_answer_names_the_last_publication_sent_live_not_the_join_position(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=100)
    with TestClient(history_app(room, backend)) as client, joined(client, channel_name) as ws:
        joined_at = receive_json(ws)
        assert joined_at["offset"] == 0
        last = publish(client, channel_name, 5)
        assert [receive_json(ws)["offset"] for _ in range(5)] == [1, 2, 3, 4, 5]
        send_action(ws, "resume", offset=5, epoch=last["epoch"])
        assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=5, epoch=last["epoch"])
        # Not recovered: the client takes the answer as its position, so it must not send it backwards.
        send_action(ws, "resume", offset=3, epoch="from-before-a-restart")
        assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=5, epoch=last["epoch"])
        publish(client, channel_name, 1)
        assert receive_json(ws)["offset"] == 6


async def test_resumption_position_of_another_epoch_reads_no_publications(
    layer: ChannelLayer, channel_name: str
) -> None:
    await publish_numbers(layer, channel_name, range(200))
    member = await Member.open(channel_name, send_queue_size=100_000)
    read_back: list[int] = []

    async def read(since: int | None, limit: int | None) -> HistoryPage:
        page = await layer.read_history(channel_name, RETENTION, since, limit)
        read_back.append(len(page.publications))
        return page

    # Joining with a position of an epoch the stream does not have: where it stands is read, nothing more.
    resumption = Resumption(member.connection, channel_name, read=read, since=Position(0, "x"), buffer_bytes=1 << 20)
    RESUMING.add(member.connection.id)
    assert await layer.add(member.connection, resumption=resumption)
    await resumption.prepare()
    await resumption.catch_up()
    assert json.loads(await member.peer.next_text())["recovered"] is False
    for _ in range(3):
        await resumption.request({"offset": 0, "epoch": "nope"})
        assert json.loads(await member.peer.next_text())["recovered"] is False
    assert sum(read_back) == 0
    await leave_all(layer, [member])


async def test_history_redis_read_since_returns_at_most_limit_entries(redis_url: str, channel_name: str) -> None:
    store = RedisHistory(redis_url, namespace=f"test-{uuid.uuid4().hex}")
    await store.start()
    try:
        for _ in range(50):
            await store.append(channel_name, '"data":1', RETENTION, head="", channel="")
        page = await store.read(channel_name, RETENTION, since=10, limit=3)
        assert [publication.offset for publication in page.publications] == [11, 12, 13] and page.complete
        # The script itself returns only those: Redis sends, and Python decodes, 3 entries and not 40.
        args = ["e", 1000, 10, -1, 3]
        _, _, _, raw = await store._read(keys=store.keys(channel_name), args=args)
        assert len(raw) == 3
    finally:
        await store.stop()


def test_resume_frame_past_what_history_keeps_is_not_recovered(backend: dict[str, Any], channel_name: str) -> None:
    room = Channel(history_size=3)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 10)["epoch"]
        with joined(client, channel_name) as ws:
            receive_json(ws)
            send_action(ws, "resume", offset=2, epoch=epoch)
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=10, epoch=epoch)


# -- bad resume requests -------------------------------------------------------------------------------

BAD_OFFSET = 'The "offset" to resume from must be a whole number from 0 to 9007199254740991.'
BAD_EPOCH = 'The "epoch" to resume in must be a string of 1 to 64 characters.'
BOTH = 'Resuming takes both "offset" and "epoch".'


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("offset=-1&epoch=e", BAD_OFFSET),
        ("offset=abc&epoch=e", BAD_OFFSET),
        ("offset=1.5&epoch=e", BAD_OFFSET),
        ("offset=%C2%B2&epoch=e", BAD_OFFSET),  # a superscript two: a digit to str.isdigit, not to int()
        ("offset=99999999999999999999&epoch=e", BAD_OFFSET),
        ("offset=9007199254740992&epoch=e", BAD_OFFSET),
        ("offset=5", BOTH),
        ("epoch=e", BOTH),
        ("offset=1&epoch=", BAD_EPOCH),
        (f"offset=1&epoch={'e' * 65}", BAD_EPOCH),
        ("offset=1&epoch=no-such-epoch", None),
        ("offset=9007199254740991&epoch={epoch}", None),  # further than the stream has gone
    ],
)
def test_resume_query_with_bad_values_gets_an_error_frame_or_not_recovered_and_stays_open(
    backend: dict[str, Any], channel_name: str, query: str, error: str | None
) -> None:
    room = Channel(history_size=10)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 3)["epoch"]
        with joined(client, channel_name, "?" + query.format(epoch=epoch)) as ws:
            if error is not None:
                frame = receive_json(ws)
                assert (frame["errors"], frame["code"], frame["close"]) == (error, 1007, False)
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=3, epoch=epoch)
            publish(client, channel_name, 1)
            assert receive_json(ws)["offset"] == 4


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"offset": "5", "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": 5.0, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": True, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": -1, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": 2**60, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": 10**400, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": None, "epoch": "{epoch}"}, BAD_OFFSET),
        ({"epoch": "{epoch}"}, BAD_OFFSET),
        ({"offset": 1}, BAD_EPOCH),
        ({"offset": 1, "epoch": 7}, BAD_EPOCH),
        ({"offset": 1, "epoch": ["{epoch}"]}, BAD_EPOCH),
        ({"offset": 1, "epoch": "e" * 65}, BAD_EPOCH),
    ],
)
def test_resume_frame_with_bad_values_gets_an_error_frame_and_stays_open(
    backend: dict[str, Any], channel_name: str, fields: dict[str, Any], error: str
) -> None:
    room = Channel(history_size=10)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 3)["epoch"]
        with joined(client, channel_name) as ws:
            receive_json(ws)
            filled = {
                key: value.format(epoch=epoch) if isinstance(value, str) else value for key, value in fields.items()
            }
            ws.send_text(json.dumps({"action": "resume", "request_id": "r", **filled}))
            frame = receive_json(ws)
            assert (frame["errors"], frame["code"], frame["close"]) == (error, 1007, False)
            assert (frame["action"], frame["request_id"]) == ("resume", "r")
            send_action(ws, "resume", offset=1, epoch=epoch)
            assert [receive_json(ws)["offset"] for _ in range(2)] == [2, 3]
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=3, epoch=epoch)


async def test_resumption_client_that_cannot_keep_up_with_publications_is_cut_as_too_slow(
    layer: ChannelLayer, channel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resume, "MAX_CATCH_UP_ROUNDS", 1)
    first = await publish_numbers(layer, channel_name, range(20))
    watcher = await probe(layer, channel_name)
    member, resumption = await joining(layer, channel_name, Position(0, first.epoch), buffer_bytes=400)
    await resumption.prepare()
    member.peer.pause()
    catching_up = asyncio.ensure_future(resumption.catch_up())
    await publish_numbers(layer, channel_name, range(20, 100))  # more than it may hold while its replay waits
    await frames_until(watcher, 100)
    member.peer.resume()
    await asyncio.wait_for(catching_up, 10)
    assert member.connection.close_code == 1013 and member.connection.closing
    frames = []
    while (message := await member.peer.next())["type"] == "websocket.send":
        frames.append(json.loads(message["text"]))
    assert message["code"] == 1013
    # Never told it was recovered: it reconnects with the last offset it got.
    assert [frame["type"] for frame in frames] == ["publication"] * len(frames)
    await leave_all(layer, [member, watcher])


async def test_resumption_caught_up_leaves_the_catch_up_path_and_still_names_the_last_publication_sent(
    layer: ChannelLayer, channel_name: str
) -> None:
    await publish_numbers(layer, channel_name, range(3))
    member, resumption = await joining(layer, channel_name, None)
    await resumption.prepare()
    await resumption.catch_up()
    assert json.loads(await member.peer.next_text())["type"] == "resume"
    last = await publish_numbers(layer, channel_name, range(4))
    assert [json.loads(await member.peer.next_text())["offset"] for _ in range(4)] == [4, 5, 6, 7]
    # Once a newer publication went through, live ones reach the connection with no check per recipient.
    assert layer._groups[channel_name].resuming == {}
    await resumption.request({"offset": 7, "epoch": last.epoch})
    answer = json.loads(await member.peer.next_text())
    assert (answer["type"], answer["recovered"], answer["offset"]) == ("resume", True, 7)
    await leave_all(layer, [member])
