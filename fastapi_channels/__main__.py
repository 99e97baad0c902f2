"""The command line: ``python -m fastapi_channels asyncapi module:app`` prints an app's AsyncAPI document.

The app is imported as uvicorn imports it, and never started: nothing connects to a backend.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from starlette.applications import Starlette

from fastapi_channels.asyncapi import asyncapi_document

__all__ = ["main", "import_app", "AppImportError"]

USAGE_ERROR = 2
"""The exit status of a command given something it cannot use, as ``argparse`` exits."""


class AppImportError(Exception):
    """The import string does not lead to an app; the message says why and how to fix it."""


def import_app(import_string: str) -> Starlette:
    """Import ``"module:attribute"`` (the attribute may be dotted) and return the app it names.

    Raises:
        AppImportError: The string is malformed, the module or attribute is missing, or it is not an app.
    """
    module_name, _, attribute = import_string.partition(":")
    if not module_name or not attribute:
        raise AppImportError(
            f'The import string "{import_string}" must be in the form "module:attribute", e.g. "main:app".'
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise  # a module the app itself imports is missing: the traceback says where
        raise AppImportError(
            f'Could not import the module "{module_name}": run the command from the folder that holds it, '
            "or pass --app-dir."
        ) from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise AppImportError(f'The module "{module_name}" has no attribute "{attribute}".') from None
    if not isinstance(target, Starlette):
        raise AppImportError(f'"{import_string}" is a {type(target).__name__}, not a FastAPI app.')
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (the process's arguments by default) and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastapi_channels", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = commands.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of an app, as JSON")
    command.add_argument("app", help='the app, as "module:attribute" (e.g. "main:app")')
    command.add_argument("--app-dir", default=".", help="the folder to import the module from (default: .)")
    command.add_argument("--indent", type=int, default=2, help="spaces per level of the JSON (default: 2)")
    command.add_argument("--output", "-o", type=Path, help="write the document to this file instead")
    arguments = parser.parse_args(argv)
    sys.path.insert(0, str(Path(arguments.app_dir).resolve()))
    try:
        app = import_app(arguments.app)
    except AppImportError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    indent = arguments.indent if arguments.indent > 0 else None
    text = to_json(asyncapi_document(app), indent=indent, inf_nan_mode="null").decode()
    if arguments.output is None:
        try:
            print(text, flush=True)
        except BrokenPipeError:  # the reader stopped early (``| head``): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    try:
        arguments.output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"Error: cannot write {arguments.output}: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
