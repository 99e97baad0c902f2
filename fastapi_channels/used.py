"""Ready-made channels: a small personal room and a larger group room."""

from __future__ import annotations

from fastapi_channels.channels import Channel

__all__ = ["PersonChannel", "GroupChannel"]


class PersonChannel(Channel):
    """A channel for a private conversation: at most 2 connections."""

    max_connection = 2


class GroupChannel(Channel):
    """A channel for a group chat: at most 200 connections."""

    max_connection = 200
