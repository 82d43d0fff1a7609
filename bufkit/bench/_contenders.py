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

A contender with ``tls`` also serves TLS echo when the bench hands it a
certificate; one with ``tls_only`` runs in the TLS echo cells alone.
"""

from __future__ import annotations

import importlib.util
from typing import Final, Literal

import attrs

from bufkit.bench import _native
from bufkit.bench._certs import CertFiles
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
    tls: bool = False  #: serves TLS echo when given a certificate
    tls_only: bool = False  #: runs in the TLS echo cells alone


BASELINE: Final = "asyncio"
#: The C server: the machine's limit for the bench's protocols.
LIMIT: Final = "c-epoll"
_SERVER: Final = "bufkit.bench._server"

CONTENDERS: Final[tuple[Contender, ...]] = (
    Contender("asyncio", "asyncio Protocol", "peer", tls=True),
    Contender("asyncio-buffered", "asyncio BufferedProtocol 64 KiB/conn", "peer"),
    Contender("uvloop", "uvloop Protocol", "peer", ("uvloop",), tls=True),
    Contender("twisted", "Twisted Protocol (epoll)", "peer", ("twisted",), tls=True),
    Contender(
        "bufkit-selectors",
        "bufkit selectors Loop",
        "bufkit",
        ("bufkit.adapters.selectors", "bufkit.servers"),
        tls=True,
    ),
    Contender("bufkit-compiled", "bufkit selectors Loop, compiled (mypyc)", "bufkit"),
    Contender(
        "bufkit-stream",
        "bufkit stream (asyncio)",
        "bufkit",
        ("bufkit.adapters.asyncio",),
        tls=True,
    ),
    Contender(
        "bufkit-stream-uvloop",
        "bufkit stream (uvloop)",
        "bufkit",
        ("bufkit.adapters.asyncio", "uvloop"),
        tls=True,
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
        tls=True,
    ),
    Contender(
        "bufkit-asyncio",
        "bufkit asyncio drop-in (create_server)",
        "bufkit",
        ("bufkit.adapters.asyncio",),
        tls=True,
        tls_only=True,
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


def launch(
    children: Children,
    contender: Contender,
    host: str,
    tls: CertFiles | None = None,
) -> Child:
    """Start ``contender``'s server process; it prints ``READY`` or ``SKIP``.

    With ``tls``, a contender that speaks TLS also serves TLS echo.

    Raises:
        ContenderUnavailable: the C server could not be built (with the reason).
    """
    name = f"{contender.name} server"
    if contender.family == "native":
        return children.start([_native.build(), host], name=name)
    args = ["--host", host]
    if tls is not None and contender.tls:
        args += ["--tls", tls.cert, tls.key]
    return children.start_python(_SERVER, contender.name, *args, name=name)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
