"""The Hypothesis side of the hostile checks (imported only when a check runs).

Theory of operation: :func:`find_failure` runs a ``@given`` function over
cuttings whose body raises a private marker when the cutting breaks the
protocol. Hypothesis shrinks toward fewer cuts and pauses; the last failing
cutting it plays is the shrunk one, which is returned for polishing and the
report (Hypothesis' own output is not shown: the hostile report replaces it).
The explicit cuttings (one byte per delivery ...) are tried after the drawn
ones pass, so that Hypothesis shrinks whatever it finds first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fix_seed
from hypothesis.errors import Flaky, FlakyFailure
from hypothesis.strategies import SearchStrategy

from bufkit.testing import _config
from bufkit.testing._hostile_cuts import Cutting

__all__ = ["find_failure"]


class _Broken(Exception):
    """Raised inside the property when a cutting breaks the protocol."""


def find_failure(
    fails: Callable[[Cutting], bool],
    strategy: SearchStrategy[Cutting],
    *,
    explicit: Sequence[Cutting],
    max_examples: int,
    seed: int | None,
) -> Cutting | None:
    """Return the shrunk cutting that makes ``fails`` true, or ``None``."""
    last: list[Cutting] = []

    def run(cutting: Cutting) -> None:
        if fails(cutting):
            last.append(cutting)
            del last[:-1]
            raise _Broken

    prop = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )(given(cutting=strategy)(run))
    seed = _config.seed if seed is None else seed
    if seed is not None:
        prop = fix_seed(seed)(prop)
    try:
        prop()
    except _Broken:
        return last[-1]
    except (Flaky, FlakyFailure):
        # The code under test failed once and passed when replayed: report
        # the cutting anyway; the caller judges it again and says so.
        if not last:
            raise
        return last[-1]
    return next((cutting for cutting in explicit if fails(cutting)), None)
