import asyncio
from typing import Any

import msgpack
import websockets
from websockets.typing import Subprotocol

MSGPACK = Subprotocol("fastapi-channels.msgpack")


async def move(url: str) -> Any:
    """Move to (3, 4.5) speaking MessagePack, and return the reply."""
    async with websockets.connect(url, subprotocols=[MSGPACK]) as socket:
        assert socket.subprotocol == MSGPACK  # the server agreed: binary frames both ways
        await socket.send(msgpack.packb({"action": "move", "request_id": 1, "x": 3, "y": 4.5}))
        return msgpack.unpackb(await socket.recv())


if __name__ == "__main__":
    print(asyncio.run(move("ws://127.0.0.1:8000/game/lobby")))
    # {'type': 'response', 'status': 'ok', 'action': 'move', 'request_id': 1, 'data': {'x': 3.0, 'y': 4.5}}
