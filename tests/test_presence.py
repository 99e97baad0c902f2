"""Presence: who is connected, admission under a limit, leases of dead processes, Redis restarts, configuration."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from fastapi_channels import add_channel
from fastapi_channels import presence as presence_module
from fastapi_channels.api import STATE_KEY, FastAPIChannel
from fastapi_channels.presence import LocalPresence, Member, Presence, PresenceUnavailable, RedisPresence
from tests.conftest import RedisServer, free_port

StartPresence = Callable[..., Awaitable[RedisPresence]]


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses, so tests sharing a Redis server never see each other's members."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
async def start_presence(namespace: str) -> AsyncIterator[StartPresence]:
    """Start ``RedisPresence`` instances ("processes") in the test's namespace; stop them all afterwards."""
    started: list[RedisPresence] = []

    async def start(url: str, *, ttl: float = 30.0) -> RedisPresence:
        presence = RedisPresence(url, namespace=namespace, ttl=ttl)
        await presence.start()
        started.append(presence)
        return presence

    yield start
    for presence in started:
        await presence.stop()


async def join(presence: Presence, channel: str, user: str | None = None, *, limit: int | None = None) -> Member | None:
    """Add a new connection of ``user``; return its member, or None when the channel was full."""
    member = presence.new_member(uuid.uuid4().hex, user)
    return member if await presence.add(channel, member, max_connections=limit) else None


async def die(presence: RedisPresence) -> None:
    """Let ``presence`` die like a SIGKILLed process: it stops renewing its lease and cleans nothing up."""
    assert presence._renewer is not None and presence._redis is not None
    presence._renewer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await presence._renewer
    await presence._redis.aclose()
    presence._redis = None


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.05)


async def ids(presence: Presence, channel: str) -> set[str]:
    return {member.connection_id for member in await presence.members(channel)}


async def keys_of(url: str, namespace: str) -> list[bytes]:
    client = Redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(f"{namespace}:*")]
    finally:
        await client.aclose()


# -- two processes on one Redis ---------------------------------------------------------------------------


async def test_redis_presence_twenty_racing_adds_on_two_processes_admit_exactly_the_limit(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    first, second = await start_presence(redis_url), await start_presence(redis_url)
    assert first.node != second.node
    joins = [join(first if index % 2 else second, channel_name, f"user-{index}", limit=10) for index in range(20)]
    results = await asyncio.gather(*joins)
    admitted = [member for member in results if member is not None]
    assert len(admitted) == 10
    assert await first.count(channel_name) == await second.count(channel_name) == 10
    # Both processes see the same members, with each connection's user and the process holding it.
    seen_by_first, seen_by_second = await first.members(channel_name), await second.members(channel_name)
    assert seen_by_first == seen_by_second
    assert {(member.connection_id, member.user, member.node) for member in seen_by_first} == {
        (member.connection_id, member.user, member.node) for member in admitted
    }
    assert {member.node for member in seen_by_first} <= {first.node, second.node}
    assert [member.joined_at for member in seen_by_first] == sorted(member.joined_at for member in seen_by_first)
    # Full: nobody else gets in, on either process.
    assert await join(first, channel_name, limit=10) is None
    assert await join(second, channel_name, limit=10) is None
    # One leaves: exactly one slot frees up, whichever process takes it.
    leaving = admitted[0]
    owner = first if leaving.node == first.node else second
    await owner.remove(channel_name, leaving.connection_id)
    assert await first.count(channel_name) == await second.count(channel_name) == 9
    assert leaving.connection_id not in await ids(second, channel_name)
    newcomer = await join(second if owner is first else first, channel_name, "newcomer", limit=10)
    assert newcomer is not None
    assert await join(owner, channel_name, limit=10) is None
    assert newcomer.connection_id in await ids(first, channel_name)


async def test_redis_presence_channels_and_namespaces_are_kept_apart(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    presence = await start_presence(redis_url)
    elsewhere = RedisPresence(redis_url, namespace=f"test-{uuid.uuid4().hex}")
    await elsewhere.start()
    try:
        member = await join(presence, channel_name, "alice", limit=1)
        assert member is not None
        assert await presence.count(f"{channel_name}-other") == 0
        assert await presence.members(f"{channel_name}-other") == []
        # Another app on the same Redis server has a channel of the same name, and its own limit.
        assert await elsewhere.count(channel_name) == 0
        assert await join(elsewhere, channel_name, "bob", limit=1) is not None
        assert [found.user for found in await presence.members(channel_name)] == ["alice"]
    finally:
        await elsewhere.stop()


async def test_redis_presence_remove_of_unknown_connection_changes_nothing(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    presence = await start_presence(redis_url)
    member = await join(presence, channel_name, "alice")
    assert member is not None
    await presence.remove(channel_name, "no-such-connection")
    await presence.remove(f"{channel_name}-never-used", member.connection_id)
    assert await ids(presence, channel_name) == {member.connection_id}


async def test_redis_presence_set_user_is_seen_by_other_processes_and_never_revives_a_member(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    here, there = await start_presence(redis_url), await start_presence(redis_url)
    member = await join(here, channel_name)
    assert member is not None and member.user is None
    renamed = await here.set_user(channel_name, member.connection_id, "alice")
    assert renamed is not None and (renamed.connection_id, renamed.user) == (member.connection_id, "alice")
    assert [(seen.connection_id, seen.user) for seen in await there.members(channel_name)] == [
        (member.connection_id, "alice")
    ]
    await here.remove(channel_name, member.connection_id)
    assert await here.set_user(channel_name, member.connection_id, "bob") is None
    assert await there.members(channel_name) == []


async def test_redis_presence_redis_that_stops_answering_fails_an_operation_instead_of_hanging(
    own_redis: RedisServer, start_presence: StartPresence, channel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence_module, "OPERATION_TIMEOUT", 0.3)
    presence = await start_presence(own_redis.url)
    admin = Redis.from_url(own_redis.url)
    try:
        # Redis accepts the connection but answers nobody for 3 s, like a server stuck on a slow command.
        await admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        paused_until = time.monotonic() + 3
        with pytest.raises(PresenceUnavailable):
            await join(presence, channel_name)
        assert time.monotonic() < paused_until, "the join waited for Redis instead of giving up"

        async def answers_again() -> bool:
            with contextlib.suppress(PresenceUnavailable):
                return await join(presence, channel_name) is not None
            return False

        await eventually(answers_again, within=10, what="presence works again once Redis answers")
    finally:
        await admin.aclose()


async def test_redis_presence_dead_process_stops_counting_within_its_ttl(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    ttl = 1.0
    survivor = await start_presence(redis_url)
    doomed = await start_presence(redis_url, ttl=ttl)
    staying = [await join(survivor, channel_name, "stays", limit=5) for _ in range(2)]
    doomed_members = [await join(doomed, channel_name, "dies", limit=5) for _ in range(3)]
    assert None not in staying and None not in doomed_members
    await die(doomed)
    # Its lease has not run out yet: a process that merely missed a renewal keeps its connections.
    assert await survivor.count(channel_name) == 5
    assert await join(survivor, channel_name, limit=5) is None

    async def only_survivors_counted() -> bool:
        return await survivor.count(channel_name) == 2

    await eventually(only_survivors_counted, within=ttl + 2, what="dropping the dead process's connections")
    assert {member.node for member in await survivor.members(channel_name)} == {survivor.node}
    # Its slots are free again.
    assert [await join(survivor, channel_name, limit=5) is not None for _ in range(4)] == [True, True, True, False]


async def test_redis_presence_live_process_with_short_ttl_keeps_its_connections(
    redis_url: str, start_presence: StartPresence, channel_name: str
) -> None:
    ttl = 1.0
    reader = await start_presence(redis_url)
    alive = await start_presence(redis_url, ttl=ttl)
    member = await join(alive, channel_name, "alice")
    assert member is not None
    # Every renewal is observed from the other process: the lease never lapses while the process lives.
    renewals = 0
    deadline = time.monotonic() + 3 * ttl
    while time.monotonic() < deadline:
        assert await ids(reader, channel_name) == {member.connection_id}
        renewals += 1
        await asyncio.sleep(0.05)
    assert renewals > 1


async def test_redis_presence_graceful_stop_removes_its_connections_at_once(
    redis_url: str, start_presence: StartPresence, namespace: str, channel_name: str
) -> None:
    staying = await start_presence(redis_url)
    leaving = RedisPresence(redis_url, namespace=namespace)
    await leaving.start()
    kept = await join(staying, channel_name, "stays")
    for _ in range(3):
        await join(leaving, channel_name, "leaves")
    await join(leaving, f"{channel_name}-second", "leaves")
    assert await staying.count(channel_name) == 4
    await leaving.stop()
    assert kept is not None
    assert await staying.count(channel_name) == 1
    assert await ids(staying, channel_name) == {kept.connection_id}
    assert await staying.count(f"{channel_name}-second") == 0
    await staying.stop()
    # Nothing is left behind in Redis once every process has stopped.
    assert await keys_of(redis_url, namespace) == []


async def test_redis_presence_not_started_raises_presence_unavailable(redis_url: str, namespace: str) -> None:
    presence = RedisPresence(redis_url, namespace=namespace)
    with pytest.raises(PresenceUnavailable, match="lifespan"):
        await presence.count("anywhere")
    assert issubclass(PresenceUnavailable, ConnectionError)


async def test_redis_presence_unreachable_redis_start_fails_with_helpful_connection_error(namespace: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    presence = RedisPresence(url, namespace=namespace)
    with pytest.raises(ConnectionError) as info:
        await presence.start()
    assert url in str(info.value)
    assert "presence" in str(info.value)


# -- Redis restarts ---------------------------------------------------------------------------------------


async def test_redis_presence_after_redis_restart_entries_come_back_and_outage_is_reported(
    own_redis: RedisServer, start_presence: StartPresence, channel_name: str
) -> None:
    ttl = 1.5
    holder = await start_presence(own_redis.url, ttl=ttl)
    observer = await start_presence(own_redis.url)
    members = [await join(holder, channel_name, f"user-{index}", limit=10) for index in range(2)]
    expected = {member.connection_id for member in members if member is not None}
    assert len(expected) == 2

    own_redis.stop()
    with pytest.raises(PresenceUnavailable) as info:
        await join(holder, channel_name, "during the outage", limit=10)
    assert own_redis.url in str(info.value)
    with pytest.raises(PresenceUnavailable):
        await holder.count(channel_name)
    own_redis.start()

    # The restarted Redis knows nothing; the holder's next renewal finds its lease gone and rewrites its connections.
    async def restored() -> bool:
        return await ids(observer, channel_name) == expected

    await eventually(restored, within=holder.renew_interval + 1, what="restoring the connections after the restart")
    assert await observer.count(channel_name) == 2
    assert {member.user for member in await observer.members(channel_name)} == {"user-0", "user-1"}
    # Admission works again, and the rewritten connections still count against the limit.
    assert await join(holder, channel_name, "after", limit=3) is not None
    assert await join(observer, channel_name, "one too many", limit=3) is None


async def test_redis_presence_remove_during_outage_applied_when_redis_returns_with_its_data(
    own_redis: RedisServer, start_presence: StartPresence, namespace: str, channel_name: str
) -> None:
    # A long lease, so the holder's connections outlive the outage in Redis: only the holder can remove the ghost.
    holder = await start_presence(own_redis.url, ttl=6.0)
    observer = await start_presence(own_redis.url)
    staying = await join(holder, channel_name, "stays")
    gone = await join(holder, channel_name, "leaves during the outage")
    assert staying is not None and gone is not None
    assert await ids(observer, channel_name) == {staying.connection_id, gone.connection_id}
    # Redis persists its data across the restart, as a production server configured to save would.
    client = Redis.from_url(own_redis.url)
    try:
        await client.set(f"{namespace}:restored", "yes")
        await client.save()
    finally:
        await client.aclose()

    own_redis.stop()
    await holder.remove(channel_name, gone.connection_id)
    own_redis.start()

    client = Redis.from_url(own_redis.url)
    try:
        assert await client.get(f"{namespace}:restored") == b"yes", "Redis did not reload its saved data"
        await client.delete(f"{namespace}:restored")
    finally:
        await client.aclose()

    async def ghost_removed() -> bool:
        return await ids(observer, channel_name) == {staying.connection_id}

    await eventually(ghost_removed, within=holder.renew_interval + 1, what="removing the connection that left")
    assert await observer.count(channel_name) == 1


# -- this process only ------------------------------------------------------------------------------------


async def test_local_presence_limit_members_order_and_removal() -> None:
    presence = LocalPresence()
    await presence.start()
    admitted = [await join(presence, "room", f"user-{index}", limit=3) for index in range(4)]
    assert admitted[3] is None
    members = [member for member in admitted if member is not None]
    assert await presence.count("room") == 3
    assert await presence.members("room") == members
    assert [member.node for member in members] == [presence.node] * 3
    # Without a limit anyone gets in; other channels are separate.
    assert await join(presence, "room") is not None
    assert await presence.count("other") == 0
    assert await presence.members("other") == []
    # Removing an unknown connection, or from an unknown channel, is a no-op.
    await presence.remove("room", "no-such-connection")
    await presence.remove("never-used", members[0].connection_id)
    assert await presence.count("room") == 4
    await presence.remove("room", members[1].connection_id)
    assert [member.connection_id for member in await presence.members("room")][:2] == [
        members[0].connection_id,
        members[2].connection_id,
    ]
    assert await join(presence, "room", limit=4) is not None
    assert await join(presence, "room", limit=4) is None
    await presence.stop()
    assert await presence.count("room") == 0


def test_member_json_round_trip_keeps_every_field() -> None:
    member = Member(connection_id="c-1", user="héllo ✓", node="n-1", joined_at=1712345678.25)
    assert Member.from_json(member.to_json()) == member
    anonymous = Member(connection_id="c-2", user=None, node="n-1", joined_at=1.0)
    assert Member.from_json(anonymous.to_json().encode()) == anonymous


def test_redis_presence_ttl_not_positive_raises_value_error() -> None:
    for ttl in (0, -1.0):
        with pytest.raises(ValueError, match="presence_ttl must be a positive number"):
            RedisPresence("redis://127.0.0.1:6379/0", ttl=ttl)


# -- which presence add_channel picks ------------------------------------------------------------------------


def config_of(**add_channel_options: Any) -> FastAPIChannel:
    app = FastAPI()
    add_channel(app, **add_channel_options)
    config = getattr(app.state, STATE_KEY)
    assert isinstance(config, FastAPIChannel)
    assert config.layer.presence is config.presence
    return config


def test_add_channel_memory_url_keeps_presence_in_the_process() -> None:
    assert type(config_of().presence) is LocalPresence
    assert type(config_of(url="memory://").presence) is LocalPresence


def test_add_channel_redis_url_shares_presence_through_the_same_redis(redis_url: str) -> None:
    presence = config_of(url=redis_url, presence_ttl=12.0, namespace="my-app").presence
    assert isinstance(presence, RedisPresence)
    assert (presence.url, presence.ttl, presence.prefix) == (redis_url, 12.0, "my-app:presence")
    # A third of the lease, but never more than 2 s apart, so an emptied Redis is rewritten soon.
    assert presence.renew_interval == 2.0
    assert config_of(url=redis_url, presence_ttl=3.0).presence.renew_interval == 1.0


def test_add_channel_default_presence_settings(redis_url: str) -> None:
    config = config_of(url=redis_url)
    assert isinstance(config.presence, RedisPresence)
    assert (config.presence.ttl, config.presence.prefix) == (30.0, "fastapi-channels:presence")
    assert config.layer.direct_channel == "fastapi-channels.direct"


@pytest.mark.parametrize("url", ["memory://", "postgresql://127.0.0.1:5432/test"])
def test_add_channel_presence_url_shares_presence_whatever_the_broadcast_backend(url: str) -> None:
    presence = config_of(url=url, presence_url="redis://127.0.0.1:6390/2").presence
    assert isinstance(presence, RedisPresence)
    assert presence.url == "redis://127.0.0.1:6390/2"


def test_add_channel_postgres_without_presence_url_keeps_presence_in_the_process() -> None:
    assert type(config_of(url="postgresql://127.0.0.1:5432/test").presence) is LocalPresence


def test_add_channel_redis_stream_url_shares_presence_through_the_same_server() -> None:
    presence = config_of(url="redis-stream://127.0.0.1:6390/3").presence
    assert isinstance(presence, RedisPresence)
    assert presence.url == "redis://127.0.0.1:6390/3"


def test_add_channel_presence_url_memory_keeps_presence_in_the_process_despite_redis_url(redis_url: str) -> None:
    assert type(config_of(url=redis_url, presence_url="memory://").presence) is LocalPresence


@pytest.mark.parametrize("presence_url", ["postgresql://127.0.0.1:5432/test", "http://127.0.0.1:6379", "nonsense"])
def test_add_channel_unsupported_presence_url_raises_value_error_naming_it(presence_url: str) -> None:
    with pytest.raises(ValueError) as info:
        config_of(presence_url=presence_url)
    message = str(info.value)
    assert "presence_url" in message
    assert repr(presence_url) in message
    assert "redis://" in message


@pytest.mark.parametrize("ttl", [0, -5.0, True, "30"])
def test_add_channel_presence_ttl_not_a_positive_number_raises_value_error(redis_url: str, ttl: Any) -> None:
    with pytest.raises(ValueError, match="presence_ttl must be a positive number of seconds"):
        config_of(url=redis_url, presence_ttl=ttl)


@pytest.mark.parametrize("url", ["memory://", "redis://127.0.0.1:6379/0"])
def test_add_channel_empty_namespace_raises_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="namespace must be a non-empty string"):
        config_of(url=url, namespace="")


async def test_add_channel_redis_app_lifespan_starts_and_stops_shared_presence(
    redis_url: str, namespace: str, channel_name: str
) -> None:
    config = config_of(url=redis_url, namespace=namespace)
    other = RedisPresence(redis_url, namespace=namespace)
    await other.start()
    try:
        async with config.running():
            member = await join(config.presence, channel_name, "alice")
            assert member is not None
            assert await ids(other, channel_name) == {member.connection_id}
        # The app's shutdown removed its connections at once.
        assert await other.count(channel_name) == 0
    finally:
        await other.stop()
