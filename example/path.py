"""Folders of the demo, importable by the seed examples as ``from example.path import TemplatePath``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ExamplePath", "TemplatePath", "StaticPath"]

ExamplePath = Path(__file__).resolve().parent
TemplatePath = str(ExamplePath / "templates")
StaticPath = str(ExamplePath / "static")
