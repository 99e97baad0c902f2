"""The Origin check that refuses other sites' pages at the handshake (cross-site WebSocket hijacking).

Browsers send the page's ``Origin`` with every WebSocket handshake, and the same-origin policy does not stop
a page of another site from opening a socket to your app with your users' cookies. By default a browser's
Origin must therefore name the site the client connected to (the ``Host`` header); ``allowed_origins`` adds
other sites, or ``"*"`` any. A request without an Origin (a program, not a browser) always passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers

__all__ = ["origin_allowed", "check_allowed_origins"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def origin_allowed(headers: Headers, allowed: Sequence[str] | None) -> bool:
    """Return whether a handshake with these ``headers`` may proceed under ``allowed`` origins."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if allowed is not None and ("*" in allowed or origin.rstrip("/") in allowed):
        return True
    host = headers.get("host")
    return host is not None and _netloc_of(origin) == _without_default_port(host.lower(), _scheme_of(origin))


def check_allowed_origins(allowed: object) -> Sequence[str] | None:
    """Return ``allowed`` if it is None or a list of origins such as ``"https://example.com"``; else raise.

    Raises:
        ValueError: An entry is not ``"*"``, ``"null"`` or a ``scheme://host[:port]`` origin.
    """
    if allowed is None:
        return None
    if isinstance(allowed, str) or not isinstance(allowed, list | tuple):
        raise ValueError(f"allowed_origins must be a list of origins such as 'https://example.com', not {allowed!r}.")
    for origin in allowed:
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if origin in ("*", "null"):
            continue
        if parts is None or not parts.scheme or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(
                f"{origin!r} is not an origin: write it as scheme://host[:port], e.g. 'https://example.com'."
            )
    return tuple(origin.rstrip("/") for origin in allowed)


def _scheme_of(origin: str) -> str:
    return urlsplit(origin).scheme.lower()


def _netloc_of(origin: str) -> str | None:
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return None  # "null" (a sandboxed page, a file) or garbage: never the same site
    return _without_default_port(parts.netloc.lower(), parts.scheme.lower())


def _without_default_port(netloc: str, scheme: str) -> str:
    host, _, port = netloc.rpartition(":")
    if host and not netloc.endswith("]") and port == _DEFAULT_PORTS.get(scheme):
        return host
    return netloc
