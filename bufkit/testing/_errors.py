"""Errors the testing toolkit raises about the code under test.

Each one subclasses :class:`bufkit.BufkitError` and :class:`RuntimeError` (or
:class:`AssertionError` for a failed check), never :class:`OSError`: code under
test that catches socket errors does not swallow them by accident.
"""

from __future__ import annotations

from typing import final

from bufkit.errors import BufkitError

__all__ = ["BusyLoopError", "CheckFailed", "DeadlockError", "StepBudgetExceeded"]


@final
class StepBudgetExceeded(BufkitError, RuntimeError):
    """Raised by a fake when the code under test made more calls than allowed.

    The budget is ``step_budget`` of :class:`bufkit.testing.FakeSocket` or of
    :class:`bufkit.testing.FakeSelector`. It catches code that never finishes.
    """


@final
class BusyLoopError(BufkitError, RuntimeError):
    """Raised when the code under test spins instead of waiting for readiness.

    That is: retrying a send or receive right after ``EAGAIN`` without waiting
    for readiness (when the fake's ``busy_limit`` is set), or asking a
    :class:`bufkit.testing.FakeSelector` for write readiness again and again
    while sending nothing. The message says which.
    """


@final
class DeadlockError(BufkitError, RuntimeError):
    """Raised when a fake would wait forever.

    That is a blocking-mode call on a :class:`bufkit.testing.FakeSocket` whose
    schedule can never make progress, or :meth:`bufkit.testing.FakeSelector.select`
    without a timeout when no registered fake can ever become ready.
    """


@final
class CheckFailed(BufkitError, AssertionError):
    """Raised by :func:`bufkit.testing.check_sender` and its siblings.

    The message states the verdict in the terms of the data (which message lost
    which bytes), the schedule that reproduces it as Python code, and a
    transcript of the fake's calls.
    """
