"""A connection's catch-up on a channel with history: what it missed, in order, then live, with nothing twice.

A connection joins its channel (and the process subscribes) before anything is read from history. Until it
has caught up, its ``Resumption`` holds the live publications the process receives for it: it reads history,
sends the client what came after the position it gave, then the resume frame, then the held publications
that came after the last one replayed, and lets the rest through. Publications reach every process in offset
order (Redis publishes them from the script that assigns the offsets), so once one newer than the last
replayed has gone through, every later one is newer too. When too much arrives during a replay to hold, what
is held is dropped and history is read again from where the replay got to.

Live publications go on passing through (one ``startswith`` each) once the catch-up is over: the answer to a
``resume`` frame names the last publication the connection has been sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi_channels.exceptions import ParseError
from fastapi_channels.history import HistoryPage, Position
from fastapi_channels.outbox import SLOW_CLIENT_REASON, Connection
from fastapi_channels.protocol import (
    MAX_EPOCH_LENGTH,
    MAX_OFFSET,
    publication_head,
    publication_member,
    publication_position,
    render_publication,
    render_resume,
)

__all__ = [
    "Resumption",
    "HistoryReader",
    "OFFSET_PARAM",
    "EPOCH_PARAM",
    "MAX_CATCH_UP_ROUNDS",
    "frame_position",
    "resume_point",
]

OFFSET_PARAM = "offset"
"""The query parameter that names the offset of the last publication a client received."""
EPOCH_PARAM = "epoch"
"""The query parameter that names the epoch of that offset."""
MAX_CATCH_UP_ROUNDS = 8
"""Times history is read again for a client that cannot take its replay as fast as publications come before it
is cut as too slow (close 1013)."""

HistoryReader = Callable[[int | None, int | None], Awaitable[HistoryPage]]
"""Reads the connection's channel's history: ``read(since, limit)``."""

_BAD_OFFSET = f'The "offset" to resume from must be a whole number from 0 to {MAX_OFFSET}.'
_BAD_EPOCH = f'The "epoch" to resume in must be a string of 1 to {MAX_EPOCH_LENGTH} characters.'


def resume_point(query: Mapping[str, str]) -> Position | None:
    """Return the position a client names in its query string (``?offset=...&epoch=...``), if it names one.

    Raises:
        ParseError: Only one of the two is given, or one is malformed.
    """
    offset, epoch = query.get(OFFSET_PARAM), query.get(EPOCH_PARAM)
    if not _names_position(offset, epoch):
        return None
    assert offset is not None  # for the type checker: _names_position said both are given
    if not (offset.isascii() and offset.isdigit() and len(offset) <= len(str(MAX_OFFSET))):
        raise ParseError(error_msg=_BAD_OFFSET)
    return _position(int(offset), epoch)


def frame_position(frame: Mapping[str, Any]) -> Position | None:
    """Return the position a frame names in its ``"offset"`` and ``"epoch"`` fields, if it names one.

    Raises:
        ParseError: Only one of the two is given, or one is malformed.
    """
    if not _names_position(frame.get(OFFSET_PARAM), frame.get(EPOCH_PARAM)):
        return None
    return _frame_point(frame)


def _names_position(offset: Any, epoch: Any) -> bool:
    """Whether a position is named; raise ``ParseError`` when only half of one is."""
    if offset is None and epoch is None:
        return False
    if offset is None or epoch is None:
        raise ParseError(error_msg=f'Resuming takes both "{OFFSET_PARAM}" and "{EPOCH_PARAM}".')
    return True


def _frame_point(frame: Mapping[str, Any]) -> Position:
    offset = frame.get("offset")
    if type(offset) is not int:  # not a bool, not a float
        raise ParseError(error_msg=_BAD_OFFSET)
    return _position(offset, frame.get("epoch"))


def _position(offset: int, epoch: Any) -> Position:
    if not 0 <= offset <= MAX_OFFSET:
        raise ParseError(error_msg=_BAD_OFFSET)
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise ParseError(error_msg=_BAD_EPOCH)
    return Position(offset, epoch)


class Resumption:
    """Bring one connection of a channel with history up to date, then let live publications through.

    Args:
        connection: The connection's outbox.
        channel: The channel's name, as publication frames carry it.
        read: Reads the channel's history.
        since: The position the client gave (None: it gave none, and is sent no replay).
        buffer_bytes: Characters of live publications held during the catch-up before they are dropped and
            read from history instead.
    """

    __slots__ = (
        "connection",
        "channel",
        "since",
        "problem",
        "done",
        "_head",
        "_read",
        "_page",
        "_held",
        "_held_size",
        "_max_held",
        "_overflowed",
        "_live",
        "_start",
        "_passed",
        "_last",
        "last_delivered",
    )

    def __init__(
        self,
        connection: Connection,
        channel: str,
        *,
        read: HistoryReader,
        since: Position | None,
        problem: ParseError | None = None,
        buffer_bytes: int,
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.since = since
        self.problem = problem
        """Why the position the client gave could not be read: answered with an error frame before the resume."""
        self.done = False
        """Whether live publications need not pass through here any more: every later one is sent as it comes."""
        self.last_delivered: Callable[[], str | None] = _nothing
        """Returns the last live frame the channel delivered (the layer sets it): once the connection is done,
        it was sent that one too."""
        self._head = publication_head(channel)
        self._read = read
        self._page: HistoryPage | None = None
        self._held: list[str] = []
        self._held_size = 0
        self._max_held = buffer_bytes
        self._overflowed = False
        # Until the catch-up is over, None: live publications are held. Then the last position replayed: older
        # live publications (still on their way when history was read) are dropped until a newer one passes.
        self._live: Position | None = None
        # The connection has been sent every publication after this offset (of the epoch of _live).
        self._start = 0
        # Whether a live publication newer than _live has been sent: every later one is newer too.
        self._passed = False
        # The last live publication frame sent before the connection was done (parsed only when a resume frame asks).
        self._last: str | None = None

    def offer(self, text: str) -> bool:
        """Take a live frame of the channel; return whether to send it now (else it is held or a repeat)."""
        live = self._live
        if live is None:
            if not self._overflowed:
                self._held_size += len(text)
                if self._held_size <= self._max_held:
                    self._held.append(text)
                else:
                    self._overflowed = True
                    self._held, self._held_size = [], 0
            return False
        if self._passed:
            if text.startswith(self._head):
                self._last = text
            return True
        newer = self._newer(text, live)
        if newer is None:
            return True  # not a publication of this channel's stream
        if newer:
            self._passed = self.done = True
            self._last = text
        return newer

    async def prepare(self) -> None:
        """Read where the stream stands (and what the client missed) now that live publications are held."""
        since = self.since
        page = await self._read(since.offset if since is not None else None, 0)
        # Publications are read only for a position of the stream's epoch: any other one is not recovered.
        if since is not None and since.epoch == page.epoch and since.offset < page.offset:
            page = await self._read(since.offset, None)
        self._page = page

    async def catch_up(self) -> None:
        """Send what the client missed, the resume frame, then the live publications held meanwhile.

        Raises:
            fastapi_channels.exceptions.BackendUnavailable: History cannot be read right now.
        """
        page, since, connection = self._page, self.since, self.connection
        if page is None:
            raise RuntimeError("prepare() the resumption before catching up.")
        recovered = since is not None and page.complete and page.epoch == since.epoch
        for _ in range(MAX_CATCH_UP_ROUNDS):
            if recovered:
                await self._replay(page)
            if connection.closing or connection.closed:
                return
            if not self._overflowed:
                break
            # Live publications were dropped while the client took its replay: history has them.
            self._overflowed = False
            page = await self._read(page.offset, None) if recovered else await self._read(None, 0)
            recovered = recovered and since is not None and page.complete and page.epoch == since.epoch
        else:
            connection.cut(SLOW_CLIENT_REASON)
            return
        # From here to the end nothing awaits: no live publication can slip between the held ones and the next.
        position = Position(page.offset, page.epoch)
        self._start = since.offset if recovered and since is not None else page.offset
        self._page = None
        connection.reply(render_resume(self.channel, recovered=recovered, offset=position.offset, epoch=position.epoch))
        held, self._held, self._held_size = self._held, [], 0
        self._live = position
        for text in held:
            newer = self._newer(text, position)
            if newer is not False:
                connection.send(text)
            if newer:
                self._passed = self.done = True
                self._last = text

    async def request(self, frame: Mapping[str, Any]) -> None:
        """Answer a ``resume`` frame: send the publications after its position this connection was not sent.

        They come after the live publications already sent, if any (a client places them by their offsets;
        resuming in the query string avoids it), then the resume frame.

        Raises:
            ParseError: The frame's ``offset`` or ``epoch`` is malformed.
            fastapi_channels.exceptions.BackendUnavailable: History cannot be read right now.
        """
        since = _frame_point(frame)
        live = self._live
        if live is None:  # pragma: no cover - frames are handled once the catch-up is over
            raise RuntimeError("A resume frame arrived before the connection caught up.")
        sent = self._sent()
        # Compared before anything is read: a position this connection was never given reads nothing.
        recovered = since.epoch == sent.epoch and since.offset <= sent.offset
        # Everything after _start has been sent, or is on its way: only (since, _start] can be missing. A live
        # publication of another epoch than the catch-up's started the stream again: all of it came live.
        missing = max(0, self._start - since.offset) if sent.epoch == live.epoch else 0
        if recovered and missing:
            page = await self._read(since.offset, missing)
            recovered = page.epoch == since.epoch and page.complete
            if recovered:
                await self._replay(page)
                self._start = since.offset
            sent = self._sent()  # live publications went on while history was read
        self.connection.reply(render_resume(self.channel, recovered=recovered, offset=sent.offset, epoch=sent.epoch))

    def _sent(self) -> Position:
        """Return the position of the last live publication this connection has been sent (else the catch-up's)."""
        last, live = self._last, self._live
        if self.done:
            # From its first newer publication on, the connection is sent every one the channel delivers.
            last = self.last_delivered() or last
        found = publication_position(last, self._head) if last is not None else None
        if found is not None:
            return Position(*found)
        if live is None:  # pragma: no cover - called once the catch-up is over
            raise RuntimeError("The connection has not caught up yet.")
        return live

    async def _replay(self, page: HistoryPage) -> None:
        """Send the page's publications in order, each once the client has taken the one before it."""
        connection, head, epoch = self.connection, self._head, page.epoch
        for publication in page.publications:
            if connection.closing or connection.closed:
                return
            member = publication_member(publication.text, is_json=publication.is_json)
            written = connection.write(render_publication(head, publication.offset, epoch, member))
            if written is not None:
                await written

    def _newer(self, text: str, position: Position) -> bool | None:
        """Whether the frame ``text`` comes after ``position``; None when it is no publication of this channel."""
        found = publication_position(text, self._head)
        if found is None:
            return None
        offset, epoch = found
        # A publication of another epoch: the stream was lost and started again, so it is new.
        return epoch != position.epoch or offset > position.offset


def _nothing() -> str | None:
    return None
