from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.decorators import get_action_spec

app = FastAPI()
add_channel(app)


class Move(BaseModel):
    piece: str
    to: str


class Position(BaseModel):
    board: dict[str, str]


class Chess(Channel):
    @action(summary="Move a piece", description="Moves one of your pieces; everyone sees it.", tags=["game"])
    async def move(self, move: Move) -> Position:
        """Move a piece and return the new position."""
        return Position(board={move.to: move.piece})


chess = Chess(channel="chess")

blitz = Chess(channel="blitz")


@blitz.action("resign", summary="Give up", tags=["game", "end"])
async def resign(websocket: WebSocket) -> str:
    return "resigned"


spec = get_action_spec(Chess.move)
assert spec is not None
print(spec.summary, spec.tags, spec.doc)  # Move a piece ('game',) Move a piece and return the new position.
payload = chess.get_action("move").payload
assert payload is not None
print(payload.adapter.json_schema()["required"])  # ['piece', 'to']: the payload, as JSON Schema


@app.websocket("/chess")
async def chess_endpoint(websocket: WebSocket) -> None:
    await chess.connect(websocket)
