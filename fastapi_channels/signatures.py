"""How an action handler is called: its signature, read once when the action is registered.

Each parameter is filled by a dependency (a FastAPI ``Depends(...)``, see ``dependencies``), by one of the
``HANDLER_KEYWORDS`` (or by the socket, when it is annotated ``WebSocket``), by the whole payload (when it is
annotated with a pydantic model, TypedDict or dataclass) or by the payload field of its name (when it has any
other annotation). The typed parameters share one pydantic validator, and the return value is shaped by the
response model (the return annotation by default).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin

from fastapi import params
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from starlette.websockets import WebSocket
from typing_extensions import Never, is_typeddict

from fastapi_channels.payloads import Payload, Reply

__all__ = ["HANDLER_KEYWORDS", "RETURN_ANNOTATION", "DeclaredDependency", "HandlerSignature", "declared_dependency"]

HANDLER_KEYWORDS = ("websocket", "channel", "data", "action", "request_id")
"""The keywords an action handler may name; it receives exactly those it names."""


class _ReturnAnnotation:
    def __repr__(self) -> str:
        return "RETURN_ANNOTATION"


RETURN_ANNOTATION: Any = _ReturnAnnotation()
"""The default ``response_model``: the handler's return annotation, as in FastAPI (``None`` or ``Any``: none)."""


@dataclass(frozen=True)
class DeclaredDependency:
    """One ``Depends(...)`` as declared: what to call, and whether a frame reuses its value."""

    call: Callable[..., Any]
    """The dependency: the callable given to ``Depends``, or the parameter's annotation for a bare ``Depends()``."""
    use_cache: bool
    """Whether it runs once per frame however many parameters use it (``Depends(..., use_cache=True)``)."""

    @classmethod
    def of(cls, marker: params.Depends, call: Callable[..., Any], where: str) -> DeclaredDependency:
        """Return what ``marker`` (a ``Depends`` or ``Security``) declares, calling ``call``.

        Raises:
            TypeError: It asks for what actions do not support (``max_concurrency``).
        """
        if getattr(marker, "max_concurrency", None) is not None:
            raise TypeError(
                f"{where} declares Depends(..., max_concurrency=...), which actions do not support: limit the "
                "dependency with an asyncio.Semaphore of its own, or the action with @limiter."
            )
        return cls(call, bool(marker.use_cache))


@dataclass(frozen=True)
class HandlerSignature:
    """What fills each parameter of a handler, the validator of its payload and the shape of its replies."""

    keywords: tuple[tuple[str, str], ...]
    """Each parameter filled from ``HANDLER_KEYWORDS``, with the keyword that fills it: ``("ws", "websocket")``."""
    payload: Payload | None
    """Validates the payload for the handler's typed parameters; None when it has none."""
    reply: Reply
    """Renders what the handler returns as its reply frame."""
    dependencies: tuple[tuple[str, DeclaredDependency], ...] = ()
    """Each parameter filled by a dependency, with the dependency: ``("user", DeclaredDependency(get_user, True))``."""

    @classmethod
    def read(
        cls,
        func: Callable[..., Any],
        *,
        action: str,
        where: str,
        bound: bool,
        namespace: Mapping[str, Any] | None = None,
        response_model: Any = RETURN_ANNOTATION,
        **response_options: bool,
    ) -> HandlerSignature:
        """Read the signature of ``func``, the handler of ``action`` (``where`` names it in error messages).

        Args:
            bound: ``func`` is called bound (a method): its first parameter is ``self`` or ``cls``.
            namespace: More names for its string annotations than the module's, such as the class body's.
            response_model: Shapes the replies (see ``action``).
            **response_options: ``exclude_none``, ``exclude_unset``, ``exclude_defaults``, ``by_alias``.

        Raises:
            TypeError: A parameter that nothing fills, or types pydantic cannot validate.
        """
        signature = inspect.signature(func)
        resolve = Resolver(func, f"The action handler {where}", namespace, hint=", before the channel class")
        keywords, payload, dependencies = _read_parameters(
            signature, resolve, where, title=f"{action}_payload", bound=bound
        )
        reply = _reply(action, response_model, response_options, signature, resolve, where)
        return cls(keywords, payload, reply, dependencies)


class Resolver:
    """Evaluate a function's string annotations (``from __future__ import annotations``) where it was written."""

    def __init__(
        self, func: Callable[..., Any], subject: str, namespace: Mapping[str, Any] | None = None, *, hint: str = ""
    ) -> None:
        self.globals = _globals_of(func)
        self.namespace = dict(namespace or {})
        self.subject = subject
        """Names the function in error messages: ``"The action handler Room.move"``."""
        self.hint = hint

    def __call__(self, annotation: Any, what: str, fix: str = "") -> Any:
        """Return ``annotation`` evaluated (``what`` names it in the error message, ``fix`` ends that message).

        Raises:
            TypeError: The annotation cannot be evaluated.
        """
        if not isinstance(annotation, str):
            return annotation
        try:
            return eval(annotation, self.globals, self.namespace)  # what inspect.get_annotations(eval_str=True) does
        except Exception as exc:
            raise TypeError(
                f"{self.subject} annotates {what} with {annotation!r}, which cannot be evaluated ({exc}): define or "
                f"import it at module level{self.hint}{fix}."
            ) from None

    def leniently(self, annotation: Any) -> Any:
        """Return ``annotation`` evaluated, or ``inspect.Parameter.empty`` when it cannot be."""
        try:
            return self(annotation, "")
        except TypeError:
            return inspect.Parameter.empty


def _globals_of(func: Any) -> dict[str, Any]:
    """Return the names of the module ``func`` was written in: a function's, a class's or a callable object's."""
    func = inspect.unwrap(func)
    while isinstance(func, functools.partial):
        func = inspect.unwrap(func.func)
    found = getattr(func, "__globals__", None)
    if isinstance(found, dict):
        return found
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    return vars(module) if module is not None else {}


def declared_dependency(parameter: inspect.Parameter, annotation: Any, where: str) -> DeclaredDependency | None:
    """Return the dependency ``parameter`` declares: ``= Depends(...)`` or ``Annotated[..., Depends(...)]``.

    ``annotation`` is the parameter's annotation, evaluated (``inspect.Parameter.empty`` when it has none).
    ``Security(...)`` is a ``Depends`` too; its scopes are ignored.

    Raises:
        TypeError: ``Depends`` in both places, or a bare ``Depends()`` without a class to call.
    """
    in_annotation = []
    if get_origin(annotation) is Annotated:
        in_annotation = [extra for extra in get_args(annotation)[1:] if isinstance(extra, params.Depends)]
        annotation = get_args(annotation)[0]
    in_default = isinstance(parameter.default, params.Depends)
    if in_annotation and in_default:
        raise TypeError(
            f"{where} declares Depends for the parameter {parameter.name!r} both in Annotated[...] and as its "
            "default: keep one."
        )
    if not in_annotation and not in_default:
        return None
    # As in FastAPI, the last Depends of an Annotated[...] counts.
    marker = in_annotation[-1] if in_annotation else parameter.default
    call = marker.dependency
    if call is None:
        # A bare Depends() calls the annotation itself, usually a class: `user: Annotated[User, Depends()]`.
        if annotation is inspect.Parameter.empty or not callable(annotation):
            raise TypeError(
                f"{where} declares a bare Depends() for the parameter {parameter.name!r}, which calls the "
                "parameter's annotation: annotate it with a class, or name what to call, as in Depends(get_user)."
            )
        call = annotation
    return DeclaredDependency.of(marker, call, where)


def _read_parameters(
    signature: inspect.Signature, resolve: Resolver, where: str, *, title: str, bound: bool
) -> tuple[tuple[tuple[str, str], ...], Payload | None, tuple[tuple[str, DeclaredDependency], ...]]:
    """Return the keyword that fills each parameter, the validator of the payload for the typed ones and the
    parameters that dependencies fill.

    Raises:
        TypeError: A parameter that nothing fills, two parameters taking the whole payload, or both forms.
    """
    parameters = list(signature.parameters.values())
    if bound and parameters and parameters[0].kind in _POSITIONAL:
        parameters = parameters[1:]  # self (or cls)
    keywords: dict[str, str] = {}
    models: list[tuple[str, Any]] = []
    fields: dict[str, tuple[Any, bool]] = {}
    dependencies: list[tuple[str, DeclaredDependency]] = []
    for parameter in parameters:
        takes, annotation = _what_fills(parameter, resolve, where)
        if takes == "depends":
            dependencies.append((parameter.name, annotation))
        elif takes == "**":
            # **kwargs receives websocket, channel and data, plus any other keyword the handler names itself.
            for keyword in ("websocket", "channel", "data"):
                keywords.setdefault(keyword, keyword)
        elif takes == "payload":
            models.append((parameter.name, annotation))
        elif takes == "field":
            fields[parameter.name] = (annotation, parameter.default is parameter.empty)
        elif takes is not None:
            keywords[parameter.name] = takes
    return tuple(keywords.items()), _payload(models, fields, where, title), tuple(dependencies)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _what_fills(parameter: inspect.Parameter, resolve: Resolver, where: str) -> tuple[str | None, Any]:
    """Return what fills ``parameter`` and its type (or its dependency).

    It is filled by a dependency ("depends"), a keyword, the whole payload ("payload"), the payload field of its
    name ("field"), the keywords of ``**kwargs`` ("**"), or nothing (None).
    """
    name, kind, required = parameter.name, parameter.kind, parameter.default is parameter.empty
    if kind is parameter.VAR_KEYWORD:
        return "**", None
    if kind is parameter.VAR_POSITIONAL or (kind is parameter.POSITIONAL_ONLY and not required):
        return None, None  # left alone
    if kind is not parameter.POSITIONAL_ONLY:
        annotation = parameter.annotation
        if annotation is not parameter.empty:
            # A keyword's annotation is only read for a Depends: one that cannot be evaluated was never needed.
            what = f"the parameter {name!r}"
            annotation = resolve.leniently(annotation) if name in HANDLER_KEYWORDS else resolve(annotation, what)
        dependency = declared_dependency(parameter, annotation, f"The action handler {where}")
        if dependency is not None:
            return "depends", dependency
        if name in HANDLER_KEYWORDS:
            return name, None
        if annotation is not parameter.empty:
            if isinstance(annotation, type) and issubclass(annotation, WebSocket):
                return "websocket", None  # as in FastAPI: the socket, whatever the parameter's name
            if _takes_whole_payload(annotation):
                return "payload", annotation
            if isinstance(parameter.default, FieldInfo):
                raise TypeError(
                    f"The action handler {where} gives the parameter {name!r} a Field(...) default: write "
                    f"`{name}: Annotated[<type>, Field(...)] = <default>` instead."
                )
            return "field", annotation
        if not required:
            return None, None  # left alone, with its default
    raise TypeError(
        f"The action handler {where} has the parameter {name!r}, which no action call fills: name its "
        f"parameters from {', '.join(HANDLER_KEYWORDS)} (as keywords), annotate it with a type to take "
        f"the payload field {name!r} (or with a pydantic model, TypedDict or dataclass to take the whole "
        "payload), declare a dependency with Depends(...), or give it a default."
    )


def _payload(
    models: list[tuple[str, Any]], fields: dict[str, tuple[Any, bool]], where: str, title: str
) -> Payload | None:
    if len(models) > 1:
        names = " and ".join(repr(name) for name, _ in models)
        raise TypeError(
            f"The action handler {where} has the parameters {names}, which each take the whole payload: keep one "
            "(one model can hold the fields of both)."
        )
    if models and fields:
        raise TypeError(
            f"The action handler {where} takes the whole payload in {models[0][0]!r} and the payload fields "
            f"{', '.join(map(repr, fields))} by name: take one or the other, for example by adding those fields "
            "to the model."
        )
    if models:
        return Payload.for_model(*models[0], where=f"The action handler {where}")
    if fields:
        return Payload.for_fields(fields, title=title, where=f"The action handler {where}")
    return None


def _takes_whole_payload(annotation: Any) -> bool:
    """Whether ``annotation`` is a pydantic model, TypedDict or dataclass (or a union of them)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members = [member for member in get_args(annotation) if member is not type(None)]
        return bool(members) and all(_takes_whole_payload(member) for member in members)
    annotation = origin or annotation  # a generic TypedDict or dataclass, parametrised
    return isinstance(annotation, type) and (
        issubclass(annotation, BaseModel) or is_typeddict(annotation) or dataclasses.is_dataclass(annotation)
    )


# Return annotations that say nothing to validate.
_UNSHAPED = (None, type(None), Any, object, NoReturn, Never)


def _reply(
    action: str,
    response_model: Any,
    options: dict[str, bool],
    signature: inspect.Signature,
    resolve: Resolver,
    where: str,
) -> Reply:
    """Return what renders the handler's replies: through ``response_model``, or its return annotation by default."""
    if response_model is RETURN_ANNOTATION:
        returned = signature.return_annotation
        if returned is signature.empty:
            return Reply(action)
        fix = ", or pass response_model=None to send what it returns as it is"
        response_model = resolve(returned, "its return value", fix)
        if any(response_model is unshaped for unshaped in _UNSHAPED):
            return Reply(action)
    if response_model is None:
        return Reply(action)
    return Reply.for_model(action, response_model, where=f"The action handler {where}", **options)
