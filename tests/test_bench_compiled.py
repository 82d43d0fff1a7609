"""The compiled build's bench contender finds a compiled build or says why not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bufkit._build import COMPILED, build
from bufkit.bench import _compiled
from bufkit.bench._contenders import by_name
from bufkit.bench._wire import ContenderUnavailable

pytestmark = pytest.mark.skipif(
    build() == COMPILED, reason="the compiled build serves this contender itself"
)


def test_the_compiled_contender_is_registered() -> None:
    """``bufkit-compiled`` is a bufkit contender of its own."""
    assert by_name("bufkit-compiled").family == "bufkit"


def test_without_a_compiled_python_it_is_skipped_with_the_way_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No interpreter named and no .venv-compiled here: a one-line reason."""
    monkeypatch.delenv(_compiled.ENV_PYTHON, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ContenderUnavailable, match="BUFKIT_COMPILE=1 pip install"):
        _compiled.serve("127.0.0.1")


def test_a_python_running_the_pure_build_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interpreter whose bufkit is pure is named, with its build, not run."""
    monkeypatch.setenv(_compiled.ENV_PYTHON, sys.executable)
    with pytest.raises(ContenderUnavailable, match=r"runs the (pure Python|unknown)"):
        _compiled.serve("127.0.0.1")
