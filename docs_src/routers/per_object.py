from fastapi import FastAPI, WebSocket

from fastapi_channels import ActionRouter, Channel, add_channel

app = FastAPI()
add_channel(app)

polls = ActionRouter(prefix="poll.")
tallies: dict[str, dict[str, int]] = {}


@polls.action()
async def vote(option: str, channel: str, room: Channel) -> None:
    tally = tallies.setdefault(channel, {})
    tally[option] = tally.get(option, 0) + 1
    await room.broadcast_to_channel(channel, {"action": "poll.tally", "tally": tally})


api = ActionRouter(prefix="v1.")
api.include_router(polls)  # a router in a router: "v1.poll.vote"

meeting = Channel(channel="meeting")
meeting.include_router(polls)  # this object only
lecture = Channel(channel="lecture")
lecture.include_router(api)
print(meeting.actions, lecture.actions)  # ['poll.vote'] ['v1.poll.vote']


@app.websocket("/meeting")
async def meeting_endpoint(websocket: WebSocket) -> None:
    await meeting.connect(websocket)


@app.websocket("/lecture")
async def lecture_endpoint(websocket: WebSocket) -> None:
    await lecture.connect(websocket)
