"""A hostile fake socket, driven by schedules, to property-test socket code.

``import bufkit.testing`` needs no Hypothesis; :mod:`bufkit.testing.strategies`
and the pytest plugin do.
"""

from __future__ import annotations

from bufkit.testing._errors import (
    BusyLoopError,
    CheckFailed,
    DeadlockError,
    StepBudgetExceeded,
)
from bufkit.testing._fakebase import IOV_MAX
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._pair import fake_socketpair
from bufkit.testing._records import Call, format_transcript
from bufkit.testing._schedule import (
    Accept,
    AcceptAll,
    Deliver,
    Eof,
    Fail,
    Interrupt,
    RecvStep,
    SendStep,
    Short,
    WouldBlock,
    format_schedule,
)

__all__ = [
    "IOV_MAX",
    "Accept",
    "AcceptAll",
    "BusyLoopError",
    "Call",
    "CheckFailed",
    "DeadlockError",
    "Deliver",
    "Eof",
    "Fail",
    "FakeSocket",
    "Interrupt",
    "RecvStep",
    "SendStep",
    "Short",
    "StepBudgetExceeded",
    "WouldBlock",
    "fake_socketpair",
    "format_schedule",
    "format_transcript",
]

# Document every name under its public path (``bufkit.testing.FakeSocket``).
for _obj in (
    Accept, AcceptAll, BusyLoopError, Call, CheckFailed, DeadlockError, Deliver,
    Eof, Fail, FakeSocket, Interrupt, Short, StepBudgetExceeded, WouldBlock,
    fake_socketpair, format_schedule, format_transcript,
):  # fmt: skip
    _obj.__module__ = __name__
del _obj
