from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect


class Follower:
    """Follow a room with history: apply its messages in order, and resume where it left off after a disconnect."""

    def __init__(self, url: str, apply: Callable[[Any], None], reload: Callable[[], None]) -> None:
        self.url = url
        self.apply = apply  # applies one message to the client's state
        self.reload = reload  # loads the whole state afresh
        self.offset = 0  # the position of the last publication applied...
        self.epoch: str | None = None  # ...in this epoch (None: never connected)

    def connect(self) -> connect:
        """Open the socket, asking for what was missed since the last publication applied."""
        if self.epoch is None:
            return connect(self.url)
        return connect(f"{self.url}?offset={self.offset}&epoch={self.epoch}")

    def handle(self, frame: dict[str, Any]) -> bool:
        """Handle one frame; return False when publications went missing: then connect again."""
        if frame["type"] == "resume":
            if not frame["recovered"]:
                self.reload()  # a first visit, or what was missed is gone: load the state afresh
            if frame["epoch"] != self.epoch or frame["offset"] > self.offset:
                self.offset, self.epoch = frame["offset"], frame["epoch"]
        elif frame["type"] == "publication":
            if frame["epoch"] == self.epoch and frame["offset"] <= self.offset:
                return True  # applied already
            if frame["epoch"] != self.epoch or frame["offset"] != self.offset + 1:
                return False  # a gap, or the stream started again: resume to find out
            self.apply(frame["data"] if "data" in frame else frame["text"])
            self.offset = frame["offset"]
        return True
