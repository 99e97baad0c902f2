"""Class-based WebSocket channels for FastAPI: actions, permissions, rate limits, events and pub/sub."""

from fastapi_channels.api import add_channel, drain, send_to_user
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.config import FastAPIChannel, get_channel_config
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import (
    ActionIsDeprecated,
    ActionNotExist,
    BackendUnavailable,
    ConnectionLimitExceeded,
    MethodNotAllowed,
    NotFound,
    ParseError,
    PermissionDenied,
    RateLimitExceeded,
    ValidationFailed,
    WebSocketException,
)
from fastapi_channels.permission import AllowAny, BasePermission, DenyAll, IsAuthenticated
from fastapi_channels.presence import Member
from fastapi_channels.routing import ActionRouter
from fastapi_channels.throttling import limiter
from fastapi_channels.used import GroupChannel, PersonChannel

__version__ = "0.1.0"

__all__ = [
    "add_channel",
    "send_to_user",
    "drain",
    "FastAPIChannel",
    "get_channel_config",
    "BaseChannel",
    "Channel",
    "PersonChannel",
    "GroupChannel",
    "action",
    "ActionRouter",
    "limiter",
    "BasePermission",
    "AllowAny",
    "DenyAll",
    "IsAuthenticated",
    "Member",
    "WebSocketException",
    "PermissionDenied",
    "RateLimitExceeded",
    "ActionNotExist",
    "ActionIsDeprecated",
    "ParseError",
    "ValidationFailed",
    "NotFound",
    "MethodNotAllowed",
    "ConnectionLimitExceeded",
    "BackendUnavailable",
    "__version__",
]
