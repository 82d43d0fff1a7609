"""The contenders: which servers the bench runs, and why one is skipped.

A contender is a name the server process (:mod:`bufkit.bench._server`)
knows how to start, plus the modules it needs. The check here is cheap
(``importlib.util.find_spec``, no import), so the bench can list every
contender with a one-line reason for each one it skips; the server process
does the real import and reports a skip of its own if the module is there
but lacks the API the contender needs.
"""

from __future__ import annotations

import importlib.util
from typing import Final, Literal

import attrs

__all__ = ["BASELINE", "CONTENDERS", "Contender", "by_name", "skip_reason"]

Family = Literal["peer", "bufkit"]


@attrs.frozen
class Contender:
    """One server implementation the bench measures."""

    name: str
    label: str
    family: Family
    requires: tuple[str, ...] = ()


BASELINE: Final = "asyncio"

CONTENDERS: Final[tuple[Contender, ...]] = (
    Contender("asyncio", "asyncio Protocol", "peer"),
    Contender("asyncio-buffered", "asyncio BufferedProtocol 64 KiB/conn", "peer"),
    Contender("uvloop", "uvloop Protocol", "peer", ("uvloop",)),
    Contender("twisted", "Twisted Protocol (epoll)", "peer", ("twisted",)),
    Contender(
        "bufkit-selectors",
        "bufkit selectors Loop",
        "bufkit",
        ("bufkit.adapters.selectors", "bufkit.servers"),
    ),
    Contender(
        "bufkit-stream",
        "bufkit stream (asyncio)",
        "bufkit",
        ("bufkit.adapters.asyncio",),
    ),
    Contender(
        "bufkit-stream-uvloop",
        "bufkit stream (uvloop)",
        "bufkit",
        ("bufkit.adapters.asyncio", "uvloop"),
    ),
    Contender(
        "bufkit-pooled",
        "bufkit PooledProtocol (asyncio)",
        "bufkit",
        ("bufkit.adapters.asyncio",),
    ),
    Contender(
        "bufkit-pooled-uvloop",
        "bufkit PooledProtocol (uvloop)",
        "bufkit",
        ("bufkit.adapters.asyncio", "uvloop"),
    ),
    Contender(
        "bufkit-twisted",
        "bufkit Twisted adapter",
        "bufkit",
        ("bufkit.adapters.twisted", "twisted"),
    ),
)


def by_name(name: str) -> Contender:
    """Return the contender called ``name``; raise ``KeyError`` if none is."""
    for contender in CONTENDERS:
        if contender.name == name:
            return contender
    raise KeyError(name)


def skip_reason(contender: Contender) -> str | None:
    """Return why ``contender`` cannot run here, or ``None`` if it can."""
    for module in contender.requires:
        if not _module_exists(module):
            return f"{module} is not available (module not found)"
    return None


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
