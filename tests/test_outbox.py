"""The outbox: frames in order, written at once while the client keeps up, queued behind a client that does not."""

from __future__ import annotations

import asyncio
import logging

import msgpack
import pytest

from fastapi_channels.codecs import MSGPACK
from fastapi_channels.outbox import Connection
from tests.apps.sockets import TIMEOUT, Member, open_websocket


async def test_connection_send_to_a_reading_client_writes_at_once_without_a_task(channel_name: str) -> None:
    member = await Member.open(channel_name)
    tasks_before = len(asyncio.all_tasks())
    member.connection.send("one")
    member.connection.send("two")
    # Written before anything else ran: the peer has both frames already, and no writer task was started.
    assert [message["text"] for message in member.peer.pending()] == ["one", "two"]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_connection_paused_client_gets_queued_frames_in_order_once_it_reads(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.peer.pause()
    for number in range(5):
        member.connection.send(f"frame {number}")
    assert member.peer.pending() == []
    member.peer.resume()
    assert [await member.peer.next_text() for _ in range(5)] == [f"frame {number}" for number in range(5)]
    # Once caught up, frames are written at once again.
    await asyncio.sleep(0)
    member.connection.send("after")
    assert [message["text"] for message in member.peer.pending()] == ["after"]


async def test_connection_deliver_waits_until_a_paused_client_has_taken_the_frame(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.peer.pause()
    member.connection.send("first")
    delivering = asyncio.ensure_future(member.connection.deliver("second"))
    await asyncio.sleep(0.05)
    assert not delivering.done()
    member.peer.resume()
    await asyncio.wait_for(delivering, 5)
    assert [await member.peer.next_text() for _ in range(2)] == ["first", "second"]


async def test_connection_deliver_to_a_closed_connection_returns_at_once(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.connection.close()
    await asyncio.wait_for(member.connection.deliver("too late"), 1)
    assert (await member.peer.next())["type"] == "websocket.close"
    assert member.peer.pending() == []


async def test_connection_send_after_close_is_a_no_op(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.connection.send("before")
    member.connection.close()
    member.connection.send("after close")
    assert await member.peer.next_text() == "before"
    closing = await member.peer.next()
    assert closing["type"] == "websocket.close"
    assert closing["code"] == 1000
    assert member.connection.closed
    member.connection.send("after the close was written")
    member.connection.close(1011)
    assert member.peer.pending() == []


async def test_connection_overflow_closes_with_1013_and_drops_the_backlog(channel_name: str) -> None:
    member = await Member.open(channel_name, send_queue_size=2)
    member.peer.pause()  # the client stops reading
    for number in range(10):
        member.connection.send(f"frame {number}")
    member.peer.resume()
    texts: list[str] = []
    while (message := await member.peer.next())["type"] == "websocket.send":
        texts.append(message["text"])
    assert message["code"] == 1013
    # At most the frame that was being written when the queue overflowed got through.
    assert texts in ([], ["frame 0"])
    await member.stop()
    member.connection.send("after the close")
    assert member.peer.pending() == []


async def test_connection_close_sends_queued_frames_then_close_with_code_and_reason(channel_name: str) -> None:
    websocket, peer = await open_websocket()
    connection = Connection(websocket, channel_name)
    peer.pause()
    connection.send("hello")
    connection.close(4000, "bye")
    peer.resume()
    assert await peer.next_text() == "hello"
    closing = await peer.next()
    assert (closing["type"], closing["code"], closing["reason"]) == ("websocket.close", 4000, "bye")
    await asyncio.wait_for(connection.flush(), 5)
    assert connection.closed


async def test_connection_flush_gives_up_on_a_client_that_never_reads(channel_name: str) -> None:
    member = await Member.open(channel_name)
    member.peer.pause()
    member.connection.send("never read")
    member.connection.close()
    await asyncio.wait_for(member.connection.flush(timeout=0.1), 5)
    assert member.connection.closed
    member.connection.send("after the flush")
    assert member.peer.pending() == []


async def test_connection_frame_that_cannot_be_written_is_logged_and_the_connection_lives_on(
    channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    member = await Member.open(channel_name)
    with caplog.at_level(logging.ERROR, logger="fastapi_channels.outbox"):
        member.connection.send("\ud800")
    assert "could not be sent" in caplog.text
    member.connection.send("still here")
    assert await member.peer.next_text() == "still here"
    assert not member.connection.closed


async def test_connection_queued_frame_its_codec_cannot_encode_is_skipped_and_logged_and_the_rest_follow(
    channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    websocket, peer = await open_websocket()
    connection = Connection(websocket, channel_name, encode_frame=MSGPACK.message)
    peer.pause()  # the first frame waits: the ones behind it are queued for the writer task
    with caplog.at_level(logging.ERROR, logger="fastapi_channels.outbox"):
        connection.send('{"n":1}')
        connection.send(f'{{"n":{2**70}}}')  # MessagePack holds no integer this big
        connection.send('{"n":3}')
        reply = connection.write('{"n":4}')
        connection.close(4000, "bye")
        peer.resume()
        assert reply is not None
        await asyncio.wait_for(reply, TIMEOUT)
        frames = [msgpack.unpackb((await peer.next())["bytes"]) for _ in range(3)]
        assert frames == [{"n": 1}, {"n": 3}, {"n": 4}]
        closing = await peer.next()
        assert (closing["type"], closing["code"], closing["reason"]) == ("websocket.close", 4000, "bye")
    assert caplog.text.count("could not be sent") == 1
    assert connection.closed


async def test_connection_queued_frame_that_cannot_be_written_is_skipped_and_the_rest_follow(
    channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    member = await Member.open(channel_name)
    member.peer.pause()
    with caplog.at_level(logging.ERROR, logger="fastapi_channels.outbox"):
        member.connection.send("first")
        member.connection.send("\ud800")  # not UTF-8: the server's write raises
        member.connection.send("third")
        member.peer.resume()
        assert [await member.peer.next_text() for _ in range(2)] == ["first", "third"]
    assert "could not be sent" in caplog.text
    assert not member.connection.closed
