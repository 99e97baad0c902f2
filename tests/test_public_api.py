"""The import paths users rely on, documented public names, and the typing marker."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import inspect
import pkgutil
import re

import pytest

import fastapi_channels

# Every module, those of subpackages (fastapi_channels.testing) included.
MODULES = sorted(
    ["fastapi_channels"]
    + [info.name for info in pkgutil.walk_packages(fastapi_channels.__path__, prefix="fastapi_channels.")]
)


def test_readme_import_paths_provide_their_names() -> None:
    from fastapi_channels import FastAPIChannel, __version__, add_channel
    from fastapi_channels.channels import BaseChannel, Channel
    from fastapi_channels.decorators import action
    from fastapi_channels.exceptions import (
        ActionIsDeprecated,
        ActionNotExist,
        MethodNotAllowed,
        NotFound,
        ParseError,
        PermissionDenied,
        RateLimitExceeded,
        WebSocketException,
    )
    from fastapi_channels.permission import AllowAny, BasePermission, IsAuthenticated
    from fastapi_channels.throttling import limiter
    from fastapi_channels.used import GroupChannel, PersonChannel

    assert callable(add_channel)
    assert inspect.isclass(FastAPIChannel)
    assert issubclass(Channel, BaseChannel)
    assert issubclass(PersonChannel, Channel)
    assert issubclass(GroupChannel, Channel)
    assert callable(action)
    assert callable(limiter)
    for exception in (
        PermissionDenied,
        RateLimitExceeded,
        ActionNotExist,
        ActionIsDeprecated,
        ParseError,
        NotFound,
        MethodNotAllowed,
    ):
        assert issubclass(exception, WebSocketException)
    assert issubclass(AllowAny, BasePermission)
    assert issubclass(IsAuthenticated, BasePermission)
    assert isinstance(__version__, str)


def test_package_version_matches_installed_distribution() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", fastapi_channels.__version__)
    assert importlib.metadata.version("fastapi-channels") == fastapi_channels.__version__


def test_package_all_lists_the_top_level_names() -> None:
    for name in ("add_channel", "FastAPIChannel", "__version__"):
        assert name in fastapi_channels.__all__
        assert hasattr(fastapi_channels, name)


def test_common_names_import_from_the_top_level_as_the_same_objects_as_their_modules() -> None:
    from fastapi_channels import (
        ActionIsDeprecated,
        ActionNotExist,
        ActionRouter,
        AllowAny,
        BackendUnavailable,
        BaseChannel,
        BasePermission,
        Channel,
        ConnectionLimitExceeded,
        DenyAll,
        GroupChannel,
        IsAuthenticated,
        Member,
        MethodNotAllowed,
        NotFound,
        ParseError,
        PermissionDenied,
        PersonChannel,
        RateLimitExceeded,
        ValidationFailed,
        WebSocketException,
        action,
        add_channel,
        api,
        channels,
        config,
        decorators,
        exceptions,
        get_channel_config,
        limiter,
        permission,
        presence,
        routing,
        send_to_user,
        throttling,
        used,
    )

    pairs = [
        (add_channel, api.add_channel),
        (send_to_user, api.send_to_user),
        (get_channel_config, config.get_channel_config),
        (BaseChannel, channels.BaseChannel),
        (Channel, channels.Channel),
        (PersonChannel, used.PersonChannel),
        (GroupChannel, used.GroupChannel),
        (action, decorators.action),
        (ActionRouter, routing.ActionRouter),
        (limiter, throttling.limiter),
        (Member, presence.Member),
        (BasePermission, permission.BasePermission),
        (AllowAny, permission.AllowAny),
        (DenyAll, permission.DenyAll),
        (IsAuthenticated, permission.IsAuthenticated),
    ]
    for exception in (
        WebSocketException,
        PermissionDenied,
        RateLimitExceeded,
        ActionNotExist,
        ActionIsDeprecated,
        ParseError,
        ValidationFailed,
        NotFound,
        MethodNotAllowed,
        ConnectionLimitExceeded,
        BackendUnavailable,
    ):
        pairs.append((exception, getattr(exceptions, exception.__name__)))
    assert all(top is defined for top, defined in pairs)
    assert {top.__name__ for top, _ in pairs} <= set(fastapi_channels.__all__)


def test_moved_names_keep_their_old_import_paths() -> None:
    from fastapi_channels.api import STATE_KEY, FastAPIChannel, get_channel_config
    from fastapi_channels.layers import DEFAULT_SEND_QUEUE_SIZE, Connection, create_broadcast

    assert FastAPIChannel.__module__ == "fastapi_channels.config"
    assert get_channel_config.__module__ == "fastapi_channels.config"
    assert STATE_KEY == "fastapi_channels"
    assert Connection.__module__ == "fastapi_channels.outbox"
    assert create_broadcast.__module__ == "fastapi_channels.backends"
    assert DEFAULT_SEND_QUEUE_SIZE is None


@pytest.mark.parametrize("module_name", MODULES)
def test_module_all_names_exist_and_public_classes_and_functions_have_docstrings(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} has no __all__"
    undocumented = []
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ lists {name!r}, which does not exist"
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and type aliases
        doc = (obj.__doc__ or "").strip()
        # A dataclass without a docstring gets its signature as __doc__: that does not count.
        if not doc or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
            undocumented.append(name)
    assert undocumented == [], f"{module_name}: no docstring on {undocumented}"


def test_py_typed_marker_ships_in_the_package() -> None:
    marker = importlib.resources.files("fastapi_channels") / "py.typed"
    assert marker.is_file()
