"""The testing page: its sample test module passes."""

from __future__ import annotations

import sys

import pytest

from tests.docs.samples import load


def test_testing_page_sample_tests_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "main", raising=False)
    main = load("testing/main.py", module_name="main")
    sample_tests = load("testing/test_main.py")
    assert sample_tests.app is main.app
    names = [name for name in vars(sample_tests) if name.startswith("test_")]
    assert len(names) == 6
    for name in names:
        getattr(sample_tests, name)()
    monkeypatch.delitem(sys.modules, "main")
