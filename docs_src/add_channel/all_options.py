import os

from fastapi import FastAPI

from fastapi_channels import add_channel
from fastapi_channels.permission import AllowAny
from fastapi_channels.throttling import limiter

app = FastAPI()
add_channel(
    app,
    url=os.environ.get("BROADCAST_URL", "memory://"),  # where broadcasts travel
    limiter_url=os.environ.get("LIMITER_URL"),  # redis:// for shared rate limits; None: in memory
    limiter_prefix="myapp",  # Redis keys look like myapp:limit:<channel>:<action>:<client>
    add_exception_handlers=True,  # register the WebSocketException handler in app.exception_handlers
    permission_classes=[AllowAny],  # default for channels without permission_classes (AllowAny if omitted)
    throttle_classes=[limiter(times=60, minutes=1)],  # default for channels without throttle_classes
    send_queue_size=None,  # frames that may wait for one connection; None: only send_queue_bytes bounds them
    send_queue_bytes=1024 * 1024,  # text waiting for one connection before broadcasts cut it as too slow
    write_timeout=10.0,  # seconds one write may wait for a client that does not read before it is cut
    presence_url=os.environ.get("PRESENCE_URL"),  # who is connected; None: shared if url is Redis, else per process
    presence_ttl=30.0,  # seconds a process that died without cleaning up still counts its connections
    namespace="myapp",  # prefix of the presence keys and of the direct-message channel, myapp.direct
)
