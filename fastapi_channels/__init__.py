"""Class-based WebSocket channels for FastAPI: actions, permissions, rate limits, events and pub/sub."""

from fastapi_channels.api import FastAPIChannel, add_channel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

__version__ = "0.1.0"

__all__ = ["add_channel", "FastAPIChannel", "BaseChannel", "Channel", "action", "limiter", "__version__"]
