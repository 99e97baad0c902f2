"""The import paths users rely on, documented public names, and the typing marker."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import inspect
import re

import pytest

import fastapi_channels

MODULES = [
    "fastapi_channels",
    "fastapi_channels.api",
    "fastapi_channels.backends",
    "fastapi_channels.channels",
    "fastapi_channels.decorators",
    "fastapi_channels.exceptions",
    "fastapi_channels.layers",
    "fastapi_channels.lifespan",
    "fastapi_channels.permission",
    "fastapi_channels.protocol",
    "fastapi_channels.testing",
    "fastapi_channels.throttling",
    "fastapi_channels.used",
]


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
