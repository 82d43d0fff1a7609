"""What a bench run measures: the quick default, ``--full``, and test-sized runs."""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["SCENARIOS", "BenchConfig", "echo_window"]

SCENARIOS: Final = ("idle", "echo", "fanout", "micro")

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
    echo_cells: tuple[tuple[int, int], ...] = ((1, 64), (1, 4096), (1, 65536))
    fanout_connections: tuple[int, ...] = (16,)
    fanout_window: int = 1
    warmup: float = 0.25
    duration: float = 0.8
    samples: int = 4  #: sub-windows of ``duration``; the fastest one counts
    strace: bool = True
    strace_duration: float = 0.6
    micro_scale: float = 1.0  #: fraction of the micro-benchmarks' default sizes

    @classmethod
    def quick(cls) -> BenchConfig:
        """The default: every scenario, under two minutes on two cores."""
        return cls()

    @classmethod
    def smoke(cls) -> BenchConfig:
        """``--smoke``: every scenario in seconds, to check the setup (no figures)."""
        return cls(
            idle_connections=(2,),
            echo_cells=((2, 4096),),
            fanout_connections=(2,),
            warmup=0.05,
            duration=0.2,
            samples=2,
            strace_duration=0.2,
            micro_scale=0.0,
        )

    @classmethod
    def full(cls) -> BenchConfig:
        """``--full``: 1k and 10k idle, the whole echo grid, longer windows."""
        grid = tuple((c, s) for c in (1, 64, 1000) for s in (64, 4096, 65536))
        return cls(
            idle_connections=(1000, 10000),
            echo_cells=grid,
            fanout_connections=(1, 16, 256),
            warmup=0.5,
            duration=3.0,
            strace_duration=2.0,
            micro_scale=4.0,
        )
