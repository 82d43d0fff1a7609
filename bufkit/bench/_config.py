"""What a bench run measures: the quick default, ``--full``, and test-sized runs."""

from __future__ import annotations

from typing import Final

import attrs

__all__ = [
    "ECHO_GRID",
    "SCENARIOS",
    "TLS_ECHO_GRID",
    "TLS_TARGET_CONTENDERS",
    "BenchConfig",
    "echo_window",
]

SCENARIOS: Final = ("idle", "echo", "fanout", "micro")
#: Echo cells (connections, message size): 1, 64 and 1,000 connections, each
#: at 64 B, 4 KiB and 64 KiB.
ECHO_GRID: Final = tuple((c, s) for c in (1, 64, 1000) for s in (64, 4096, 65536))
#: TLS echo cells: 1 and 64 connections, each at 64 B, 16 KiB (one full
#: record) and 64 KiB.
TLS_ECHO_GRID: Final = tuple((c, s) for c in (1, 64) for s in (64, 16384, 65536))
#: The contenders of the TLS echo targets: the default run's TLS echo cells
#: measure these alone; ``--full`` measures every contender that speaks TLS.
TLS_TARGET_CONTENDERS: Final = (
    "asyncio",
    "uvloop",
    "bufkit-selectors",
    "bufkit-stream-uvloop",
)

_KIB: Final = 1024
_MAX_IN_FLIGHT_PER_CONN: Final = 256 * _KIB
_MAX_IN_FLIGHT: Final = 16 * _KIB * _KIB
_MAX_WINDOW: Final = 16


def echo_window(connections: int, size: int) -> int:
    """Return the pipelining window (messages in flight per connection).

    Up to 16 messages, at most 256 KiB per connection and 16 MiB in all, so a
    1,000-connection 64 KiB run does not measure the kernel's memory.
    """
    window = min(
        _MAX_WINDOW,
        _MAX_IN_FLIGHT_PER_CONN // size,
        _MAX_IN_FLIGHT // (connections * size),
    )
    return max(1, window)


@attrs.frozen
class BenchConfig:
    """The knobs of one run; :meth:`quick` and :meth:`full` are the presets."""

    scenarios: tuple[str, ...] = SCENARIOS
    contenders: tuple[str, ...] | None = None  #: None: every contender
    idle_connections: tuple[int, ...] = (1000,)
    echo_cells: tuple[tuple[int, int], ...] = ECHO_GRID
    tls_echo_cells: tuple[tuple[int, int], ...] = TLS_ECHO_GRID
    #: Contenders in the TLS echo cells; None: every one that speaks TLS.
    tls_contenders: tuple[str, ...] | None = TLS_TARGET_CONTENDERS
    fanout_connections: tuple[int, ...] = (16,)
    fanout_window: int = 1
    warmup: float = 0.1  #: load before each round's window, not measured
    duration: float = 0.25  #: each round's measuring window, in seconds
    rounds: int = 3  #: interleaved rounds per throughput cell
    strace: bool = True
    strace_duration: float = 0.6
    micro_scale: float = 1.0  #: fraction of the micro-benchmarks' default sizes

    @classmethod
    def quick(cls) -> BenchConfig:
        """The default: every scenario, about three minutes on two cores.

        The TLS echo cells measure the TLS targets' contenders alone.
        """
        return cls()

    @classmethod
    def smoke(cls) -> BenchConfig:
        """``--smoke``: every scenario in seconds, to check the setup (no figures)."""
        return cls(
            idle_connections=(2,),
            echo_cells=((2, 4096),),
            tls_echo_cells=((2, 4096),),
            fanout_connections=(2,),
            warmup=0.05,
            duration=0.1,
            strace_duration=0.2,
            micro_scale=0.0,
        )

    @classmethod
    def full(cls) -> BenchConfig:
        """``--full``: 1k and 10k idle, more fanout cells, longer windows, 5 rounds,
        and every contender that speaks TLS in the TLS echo cells."""
        return cls(
            idle_connections=(1000, 10000),
            fanout_connections=(1, 16, 256),
            tls_contenders=None,
            warmup=0.3,
            duration=1.0,
            rounds=5,
            strace_duration=2.0,
            micro_scale=4.0,
        )
