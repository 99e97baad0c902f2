from fastapi import BackgroundTasks, FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel

app = FastAPI()
add_channel(app)

feed = Channel(channel="news", app=app)  # clients only listen; app= lets it send from outside any connection


class Headline(BaseModel):
    title: str


@app.websocket("/news")
async def news_endpoint(websocket: WebSocket) -> None:
    await feed.connect(websocket)


@app.post("/news")
async def publish(headline: Headline) -> dict[str, bool]:
    await feed.broadcast_to_channel("news", {"action": "headline", "title": headline.title})
    return {"published": True}


@app.post("/news/later")
async def publish_later(headline: Headline, background_tasks: BackgroundTasks) -> dict[str, bool]:
    message = {"action": "headline", "title": headline.title}
    background_tasks.add_task(feed.broadcast_to_channel, "news", message)  # runs after the response
    return {"queued": True}
