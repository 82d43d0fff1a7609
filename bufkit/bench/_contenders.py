"""The contenders: which servers the bench runs, why one is skipped, and how
each one is started (:func:`launch`, the one place that starts a server).

A Python contender is a name the server process (:mod:`bufkit.bench._server`)
knows how to start, plus the modules it needs. The check here is cheap
(``importlib.util.find_spec``, no import), so the bench can list every
contender with a one-line reason for each one it skips; the server process
does the real import and reports a skip of its own if the module is there
but lacks the API the contender needs. The native contender is the C epoll
server (:mod:`bufkit.bench._native`), built by the bench when ``cc`` is
there: the machine's limit that every figure is also compared with.
"""

from __future__ import annotations

import importlib.util
from typing import Final, Literal

import attrs

from bufkit.bench import _native
from bufkit.bench._procs import Child, Children

__all__ = [
    "BASELINE",
    "CONTENDERS",
    "LIMIT",
    "Contender",
    "by_name",
    "launch",
    "skip_reason",
]

Family = Literal["peer", "bufkit", "native"]


@attrs.frozen
class Contender:
    """One server implementation the bench measures."""

    name: str
    label: str
    family: Family
    requires: tuple[str, ...] = ()


BASELINE: Final = "asyncio"
#: The C server: the machine's limit for the bench's protocols.
LIMIT: Final = "c-epoll"
_SERVER: Final = "bufkit.bench._server"

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
    Contender(LIMIT, "C epoll server (the machine's limit)", "native"),
)


def by_name(name: str) -> Contender:
    """Return the contender called ``name``; raise ``KeyError`` if none is."""
    for contender in CONTENDERS:
        if contender.name == name:
            return contender
    raise KeyError(name)


def skip_reason(contender: Contender) -> str | None:
    """Return why ``contender`` cannot run here, or ``None`` if it can."""
    if contender.family == "native":
        return _native.unavailable()
    for module in contender.requires:
        if not _module_exists(module):
            return f"{module} is not available (module not found)"
    return None


def launch(children: Children, contender: Contender, host: str) -> Child:
    """Start ``contender``'s server process; it prints ``READY`` or ``SKIP``.

    Raises:
        ContenderUnavailable: the C server could not be built (with the reason).
    """
    name = f"{contender.name} server"
    if contender.family == "native":
        return children.start([_native.build(), host], name=name)
    return children.start_python(_SERVER, contender.name, "--host", host, name=name)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
