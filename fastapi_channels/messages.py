"""What a channel declares it sends besides replies and error frames (``sends``), checked when it is declared.

A declaration runs nothing: the AsyncAPI document (see ``asyncapi``) describes each message, so that the
people who write clients know every kind of frame that may arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import PydanticUserError, TypeAdapter

__all__ = ["Sends", "check_sends"]

Sends = Mapping[str, Any]
"""``{name: type}``: each type is anything pydantic describes, such as a model, ``str``, ``Literal["joined"]``
or ``Annotated[str, Field(description="...")]``."""


def check_sends(sends: Any, *, where: str) -> dict[str, Any]:
    """Return ``sends`` as a dict, after checking that each name is a string and pydantic can describe each type.

    Raises:
        TypeError: ``sends`` is not a mapping, a name is not a non-empty string, or a type has no JSON Schema.
    """
    if not isinstance(sends, Mapping):
        raise TypeError(
            f"{where}.sends must be a mapping of message names to types, such as {{'message': ChatMessage}}, "
            f"not {sends!r}."
        )
    for name, kind in sends.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}.sends has the name {name!r}: name each message with a non-empty string.")
        try:
            TypeAdapter(kind).json_schema()
        except (PydanticUserError, TypeError, NameError) as exc:
            raise TypeError(
                f"{where}.sends gives the message {name!r} the type {kind!r}, which pydantic cannot describe: {exc}"
            ) from None
    return dict(sends)
