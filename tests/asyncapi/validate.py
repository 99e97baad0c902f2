"""Validate AsyncAPI documents: against the official AsyncAPI 3.0.0 JSON Schema vendored here (see README.md),
and for references that lead nowhere, which a JSON Schema cannot see."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).resolve().parent / "asyncapi-3.0.0.schema.json"


@functools.cache
def validator() -> jsonschema.Draft7Validator:
    """Return a validator of the official AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs 6.11.1), a draft 07 schema."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def problems(document: Any) -> list[str]:
    """Return what makes ``document`` invalid AsyncAPI 3.0: schema errors and references that lead nowhere."""
    found = [f"{list(error.absolute_path)}: {error.message[:200]}" for error in validator().iter_errors(document)]
    return found + [f"unresolved {ref}" for ref in references(document) if not resolves(document, ref)]


def assert_valid(document: Any) -> None:
    """Fail, listing the problems, unless ``document`` is valid AsyncAPI 3.0."""
    assert problems(document) == []


def references(value: Any) -> Iterator[str]:
    """Yield every ``$ref`` in ``value``."""
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def resolves(document: Any, ref: str) -> bool:
    """Whether the local JSON pointer ``ref`` names something in ``document``."""
    if not ref.startswith("#/"):
        return False
    target = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return True
