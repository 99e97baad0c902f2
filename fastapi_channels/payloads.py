"""Typed actions: validate a frame's payload for a handler's typed parameters, and render what a handler returns.

Both are built once, when an action is registered: a frame then costs one pydantic validation (and, for a
reply, one serialization), never a schema build.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import PydanticUserError, TypeAdapter, ValidationError
from pydantic_core import to_json
from typing_extensions import NotRequired, Required, TypedDict

from fastapi_channels.exceptions import ValidationFailed
from fastapi_channels.protocol import render_reply, reply_head

__all__ = ["Payload", "Reply", "ResponseValidationError", "validation_failed", "MAX_DETAIL_ERRORS"]

MAX_DETAIL_ERRORS = 20
"""The most field errors a ``ValidationFailed`` frame lists, so that a payload with many bad items stays small."""

# Characters kept of a text in ``detail``: a key in ``loc`` is the client's own and may be of any length.
_MAX_TEXT = 200


class ResponseValidationError(ValueError):
    """An action returned a value that does not fit its response model: a server bug, logged, close 1011."""


class Payload:
    """Validate an action's payload: the frame without its ``action`` and ``request_id`` fields."""

    __slots__ = ("adapter", "parameter", "_validate")

    def __init__(self, adapter: TypeAdapter[Any], parameter: str | None = None) -> None:
        self.adapter = adapter
        """What validates the payload; ``adapter.json_schema()`` describes it."""
        self.parameter = parameter
        """The parameter that takes the whole payload, or None when the handler takes the fields by name."""
        self._validate = adapter.validator.validate_python

    @classmethod
    def for_model(cls, parameter: str, annotation: Any, *, where: str) -> Payload:
        """Validate the whole payload as ``annotation`` (a model, TypedDict or dataclass) for ``parameter``.

        Raises:
            TypeError: pydantic cannot validate ``annotation``.
        """
        return cls(_adapter(annotation, f"{where} has the parameter {parameter!r} of type {annotation!r}"), parameter)

    @classmethod
    def for_fields(cls, fields: Mapping[str, tuple[Any, bool]], *, title: str, where: str) -> Payload:
        """Validate the payload fields named by ``fields``: ``{name: (annotation, required)}``.

        A field left out of the payload is left out of the arguments, so the handler's own default applies.

        Raises:
            TypeError: pydantic cannot validate one of the annotations.
        """
        items = {
            name: Required[annotation] if required else NotRequired[annotation]
            for name, (annotation, required) in fields.items()
        }
        return cls(_adapter(TypedDict(title, items), f"{where} has parameters"))  # type: ignore[operator]

    def arguments(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """Return the handler's payload arguments for ``frame``.

        Raises:
            ValidationFailed: The payload does not fit.
        """
        payload = dict(frame)
        payload.pop("action", None)
        payload.pop("request_id", None)
        try:
            value = self._validate(payload)
        except ValidationError as exc:
            raise validation_failed(exc) from None
        if self.parameter is None:
            fields: dict[str, Any] = value  # a new dict of the fields the payload has
            return fields
        return {self.parameter: value}


class Reply:
    """Render a handler's return value as its reply frame, shaped by a response model when there is one."""

    __slots__ = ("action", "adapter", "head", "_validate", "_dump")

    def __init__(
        self,
        action: str,
        adapter: TypeAdapter[Any] | None = None,
        *,
        exclude_none: bool = False,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        by_alias: bool = True,
    ) -> None:
        self.action = action
        self.adapter = adapter
        """The response model's adapter, or None: the value is sent as ``pydantic_core.to_json`` writes it."""
        self.head = reply_head(action)
        if adapter is not None:
            self._validate = adapter.validator.validate_python
            self._dump = functools.partial(
                adapter.serializer.to_json,
                exclude_none=exclude_none,
                exclude_unset=exclude_unset,
                exclude_defaults=exclude_defaults,
                by_alias=by_alias,
            )

    @classmethod
    def for_model(cls, action: str, response_model: Any, *, where: str, **options: bool) -> Reply:
        """Shape the replies of ``action`` with ``response_model``.

        Raises:
            TypeError: pydantic cannot validate ``response_model``.
        """
        what = f"{where} has the response model {response_model!r} (response_model=None sends values as they are)"
        return cls(action, _adapter(response_model, what), **options)

    def render(self, request_id: int | str | None, value: Any) -> str:
        """Return the reply frame that answers the request ``request_id`` with ``value``.

        Raises:
            ResponseValidationError: ``value`` does not fit the response model.
        """
        if self.adapter is None:
            return render_reply(self.head, request_id, to_json(value, inf_nan_mode="null"))
        try:
            # As FastAPI does: attributes of any object are read, so an ORM object or another model fits too.
            shaped = self._validate(value, from_attributes=True)
        except ValidationError as exc:
            raise ResponseValidationError(
                f"The action {self.action!r} returned a value that does not fit its response model: {exc}"
            ) from None
        return render_reply(self.head, request_id, self._dump(shaped))


def validation_failed(exc: ValidationError) -> ValidationFailed:
    """Turn pydantic's ``exc`` about a payload into the ``ValidationFailed`` the client reads."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    detail = [
        {
            "loc": ["payload", *(_short(part) if isinstance(part, str) else part for part in error["loc"])],
            "msg": _short(error["msg"]),
            "type": error["type"],
        }
        for error in errors[:MAX_DETAIL_ERRORS]
    ]
    shown = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in detail[:3])
    more = f" ({len(errors)} errors in all)" if len(errors) > 3 else ""
    return ValidationFailed(error_msg=f"The payload is not valid: {shown}{more}", detail=detail)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _adapter(annotation: Any, what: str) -> TypeAdapter[Any]:
    """Build the adapter for ``annotation`` now, so that a type pydantic cannot handle fails at definition time."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except (PydanticUserError, TypeError, NameError) as exc:
        raise TypeError(f"{what}, which pydantic cannot validate: {exc}") from exc
    if not getattr(adapter, "pydantic_complete", True):
        raise TypeError(f"{what}, which is not fully defined yet: define its types first, or call model_rebuild().")
    return adapter
