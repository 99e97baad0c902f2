"""The pages as a whole: samples are docs_src files copied verbatim; the site, its links and API reference."""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import fastapi_channels
from tests.conftest import ROOT
from tests.docs.samples import DOCS, README, SRC, markdown_pages

API_PAGE = DOCS / "api.md"

# A sample is shown as an HTML comment naming its file, directly followed by a Python block with its content.
SAMPLE_BLOCK = re.compile(r"<!-- (docs_src/[\w/]+\.py) -->\n```python\n(.*?)```\n", re.S)
PYTHON_BLOCK = re.compile(r"^```python\n", re.M)


def sample_blocks(path: Path) -> list[tuple[str, str]]:
    return SAMPLE_BLOCK.findall(path.read_text())


def test_every_python_block_in_the_docs_is_a_docs_src_file_copied_verbatim() -> None:
    for page in [*markdown_pages(), README]:
        text = page.read_text()
        blocks = sample_blocks(page)
        assert len(blocks) == len(PYTHON_BLOCK.findall(text)), f"{page.name}: a python block without its file marker"
        for relative, code in blocks:
            source = ROOT / relative
            assert source.is_file(), f"{page.name} shows {relative}, which does not exist"
            assert code == source.read_text(), f"{page.name}: the copy of {relative} is out of date"


def test_every_docs_src_file_is_shown_in_a_page() -> None:
    shown = {relative for page in [*markdown_pages(), README] for relative, _ in sample_blocks(page)}
    files = {str(path.relative_to(ROOT)) for path in SRC.rglob("*.py")}
    assert files - shown == set()


def test_every_docs_src_file_is_exercised_by_a_test() -> None:
    loaded = set()
    for module in Path(__file__).parent.glob("test_*.py"):  # the tests of every page
        tree = ast.parse(module.read_text())
        for function in tree.body:
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and function.name.startswith("test_"):
                for node in ast.walk(function):
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Name)
                        and node.func.id == "load"
                        and node.args
                        and isinstance(node.args[0], ast.Constant)
                    ):
                        loaded.add(f"docs_src/{node.args[0].value}")
    files = {str(path.relative_to(ROOT)) for path in SRC.rglob("*.py")}
    assert files - loaded == set(), "docs_src files no test runs"


def public_modules() -> list[ModuleType]:
    names = ["fastapi_channels"] + [
        f"fastapi_channels.{info.name}" for info in pkgutil.iter_modules(fastapi_channels.__path__)
    ]
    return [importlib.import_module(name) for name in names]


def own_public_objects() -> Iterator[tuple[str, Any]]:
    """Yield (qualified name, object) for each class and function a module lists in __all__ and defines."""
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_every_public_module_declares_all_and_is_in_the_api_page() -> None:
    blocks = re.findall(r"^::: ([\w.]+)$", API_PAGE.read_text(), re.M)
    assert len(blocks) == len(set(blocks)), "a module appears twice in api.md"
    for module in public_modules():
        assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    assert set(blocks) == {module.__name__ for module in public_modules()}


def test_every_public_class_and_function_has_a_docstring() -> None:
    missing = []
    for qualified, obj in own_public_objects():
        if not inspect.getdoc(obj) or (inspect.isclass(obj) and "__doc__" not in vars(obj)):
            missing.append(qualified)
        if inspect.isclass(obj):
            for attribute, value in vars(obj).items():
                function = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if not attribute.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                    missing.append(f"{qualified}.{attribute}")
    assert missing == []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the documentation site as CI does (``mkdocs build --strict``) and return its folder."""
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice about its successor, not a problem
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return site_dir


def nav_pages(entries: Any) -> Iterator[str]:
    """Yield the Markdown files that mkdocs.yml's nav lists, in order."""
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from nav_pages(value)
        else:
            yield value


def built_page(site: Path, page: str) -> Path:
    return site / ("index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html")


def test_docs_site_builds_strictly_with_every_page_in_the_nav(site: Path) -> None:
    nav = list(nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    assert len(nav) == len(set(nav))
    assert set(nav) == {page.name for page in markdown_pages()}
    assert nav[:3] == ["index.md", "installation.md", "first-channel.md"]  # a newcomer's order
    home = built_page(site, "index.md").read_text()
    for page in nav:
        assert built_page(site, page).is_file(), page
        if page != "index.md":  # every page is reachable from the home page's navigation
            assert f'href="{page.removesuffix(".md")}/"' in home, page


def test_api_page_documents_every_public_name(site: Path) -> None:
    page = built_page(site, "api.md").read_text()
    anchors = set(re.findall(r'id="(fastapi_channels[\w.]*)"', page))
    missing = []
    for module in public_modules():
        if module.__name__ == "fastapi_channels":  # re-exports: documented where they are defined
            names = [f"{getattr(module, name).__module__}.{name}" for name in module.__all__ if name != "__version__"]
        else:
            names = [f"{module.__name__}.{name}" for name in module.__all__]
        missing += [name for name in [module.__name__, *names] if name not in anchors]
    assert missing == []
    assert "__version__" in page
    text = html_text(page)
    for qualified, obj in own_public_objects():  # the docstring's summary is shown, not only the name
        assert html_text(inspect.getdoc(obj).splitlines()[0]) in text, qualified


def html_text(text: str) -> str:
    """Reduce Markdown or HTML to comparable plain text: no tags, no code marks, single spaces."""
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return " ".join(text.replace("``", "").replace("`", "").split())


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", index))
    assert {page.name for page in markdown_pages()} - {"index.md"} <= linked


def heading_anchors(page: Path) -> set[str]:
    """Return the anchors GitHub (and MkDocs' default slugs) give the headings of ``page``, and its objects'."""
    text = page.read_text()
    anchors = set(re.findall(r"^::: ([\w.]+)$", text, re.M))  # mkdocstrings anchors each object at its path
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        text = heading.replace("`", "").strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_relative_links_in_the_docs_resolve() -> None:
    for page in [*markdown_pages(), README]:
        for target, anchor in re.findall(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)", page.read_text()):
            linked = page.parent / target if target else page
            assert linked.exists(), f"{page.name} links to missing {target}"
            if anchor:
                assert anchor in heading_anchors(linked), f"{page.name} links to missing #{anchor} in {linked.name}"
