"""The SenderMachine base class model-checks writers: passes good, fails bad."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from bufkit import WriteQueue
from bufkit.testing import CheckFailed, FakeSocket, Sender, gallery
from bufkit.testing.stateful import SenderMachine

from .test_bufkit_conformance import QueueSender

SETTINGS = settings(
    stateful_step_count=30,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)
# A wrong sender must be caught on every run: a fixed search, not a lucky one,
# and no shrinking (the first failure already names the broken invariant).
MUST_CATCH = settings(SETTINGS, derandomize=True, phases=[Phase.generate])


class GoodMachine(SenderMachine):
    """The correct gather sender."""

    def make_sender(self, sock: FakeSocket) -> Sender:
        """Build the sender."""
        return gallery.GatherSender(sock)


class QueueMachine(SenderMachine):
    """bufkit's own ``WriteQueue`` behind a readiness loop."""

    def make_sender(self, sock: FakeSocket) -> Sender:
        """Build the sender."""
        return QueueSender(sock)


TestGoodSender = GoodMachine.TestCase
TestGoodSender.settings = SETTINGS
TestWriteQueue = QueueMachine.TestCase
TestWriteQueue.settings = SETTINGS


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (gallery.IgnoresReturnValue, "lost|never arrived|not armed"),
        (gallery.PopsBeforeSending, "lost|never arrived|not armed"),
        (gallery.NeverArms, "not armed"),
        (gallery.StaysArmed, "left interest armed"),
    ],
)
def test_wrong_senders_fail_the_machine(
    wrong: type[gallery.GatherSender], named: str
) -> None:
    """Each wrong sender breaks an invariant of the machine."""

    class Machine(SenderMachine):
        def make_sender(self, sock: FakeSocket) -> Sender:
            return wrong(sock)

    with pytest.raises(CheckFailed, match=named):
        run_state_machine_as_test(Machine, settings=MUST_CATCH)


def test_make_sender_must_be_overridden() -> None:
    """The base class says what to override."""
    with pytest.raises(NotImplementedError, match="make_sender"):
        SenderMachine()


def test_write_queue_is_used() -> None:
    """The queue machine really drives a ``WriteQueue``."""
    sender = QueueSender(FakeSocket())
    assert isinstance(sender.queue, WriteQueue)
