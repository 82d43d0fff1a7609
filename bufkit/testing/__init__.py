"""A hostile fake socket, driven by schedules, to property-test socket code.

``import bufkit.testing`` needs no Hypothesis; :mod:`bufkit.testing.strategies`
and the pytest plugin do. The Twisted names live in
:mod:`bufkit.testing.twisted`, which needs Twisted.
"""

from __future__ import annotations

import inspect

from bufkit.testing._errors import (
    BusyLoopError,
    CheckFailed,
    DeadlockError,
    StepBudgetExceeded,
)
from bufkit.testing._fakebase import IOV_MAX
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._hostile_asyncio import (
    HostileTransport,
    check_protocol,
    check_protocol_example,
    run_protocol,
)
from bufkit.testing._hostile_core import Outcome
from bufkit.testing._hostile_cuts import (
    Cutting,
    CuttingError,
    Pause,
    backpressure_schedules,
    cuttings,
)
from bufkit.testing._hostile_streams import (
    HostileStreamWriter,
    check_stream_handler,
    check_stream_handler_example,
    run_stream_handler,
)
from bufkit.testing._hybrid import HybridSocket, hybrid_socketpair
from bufkit.testing._ledger import Ledger
from bufkit.testing._pair import fake_socketpair
from bufkit.testing._random import (
    random_cuts,
    random_recv_schedule,
    random_send_schedule,
)
from bufkit.testing._records import Call, format_transcript
from bufkit.testing._recvcheck import Receiver, check_receiver, check_receiver_example
from bufkit.testing._schedule import (
    ERRNO_CATALOGUE,
    RECV_FAULTS,
    SEND_FAULTS,
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    Deliver,
    Eof,
    Fail,
    Interrupt,
    RecvStep,
    SendStep,
    Short,
    Spurious,
    WouldBlock,
    format_schedule,
)
from bufkit.testing._selector import FakeSelector
from bufkit.testing._sendcheck import Sender, check_sender, check_sender_example
from bufkit.testing._tls_fake import FakeTLSSocket, MemorySocket, memory_socketpair
from bufkit.testing._tlscheck import (
    TLSLink,
    check_tls_receiver_example,
    check_tls_sender_example,
)

__all__ = [
    "ERRNO_CATALOGUE",
    "IOV_MAX",
    "RECV_FAULTS",
    "SEND_FAULTS",
    "Accept",
    "AcceptAll",
    "AcceptAllBut",
    "AcceptBuffers",
    "BusyLoopError",
    "Call",
    "CheckFailed",
    "Cutting",
    "CuttingError",
    "DeadlockError",
    "Deliver",
    "Eof",
    "Fail",
    "FakeSelector",
    "FakeSocket",
    "FakeTLSSocket",
    "HostileStreamWriter",
    "HostileTransport",
    "HybridSocket",
    "Interrupt",
    "Ledger",
    "MemorySocket",
    "Outcome",
    "Pause",
    "Receiver",
    "RecvStep",
    "SendStep",
    "Sender",
    "Short",
    "Spurious",
    "StepBudgetExceeded",
    "TLSLink",
    "WouldBlock",
    "backpressure_schedules",
    "check_protocol",
    "check_protocol_example",
    "check_receiver",
    "check_receiver_example",
    "check_sender",
    "check_sender_example",
    "check_stream_handler",
    "check_stream_handler_example",
    "check_tls_receiver_example",
    "check_tls_sender_example",
    "cuttings",
    "fake_socketpair",
    "format_schedule",
    "format_transcript",
    "hybrid_socketpair",
    "memory_socketpair",
    "random_cuts",
    "random_recv_schedule",
    "random_send_schedule",
    "run_protocol",
    "run_stream_handler",
]


def _publish() -> None:
    """Document every class and function under its public path."""
    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        if isinstance(obj, type) or inspect.isfunction(obj):
            obj.__module__ = __name__


_publish()
del _publish
