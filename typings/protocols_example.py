"""A real socket satisfies the structural types the core talks to."""

from __future__ import annotations

import socket
import ssl
from typing import assert_type

import bufkit
from bufkit.testing import FakeSocket


def sock_is_a_sender(sock: socket.socket) -> bufkit.SupportsSendmsg:
    """A ``socket.socket`` has ``sendmsg``."""
    return sock


def sock_is_a_plain_sender(sock: socket.socket) -> bufkit.SupportsSend:
    """A ``socket.socket`` has ``send``."""
    return sock


def sock_is_a_receiver(sock: socket.socket) -> bufkit.SupportsRecvInto:
    """A ``socket.socket`` has ``recv_into``."""
    return sock


def tls_is_a_plain_sender(tls: ssl.SSLSocket) -> bufkit.SupportsSend:
    """An ``ssl.SSLSocket`` has ``send`` (its ``sendmsg`` raises at run time)."""
    return tls


def fake_fits_every_protocol(fake: FakeSocket) -> None:
    """The testing toolkit's fake socket stands in for a real one everywhere."""
    sender: bufkit.SupportsSendmsg = fake
    plain: bufkit.SupportsSend = fake
    receiver: bufkit.SupportsRecvInto = fake
    assert_type(bufkit.WriteQueue().flush(fake), bool)
    del sender, plain, receiver


class Printer:
    """A minimal read handler."""

    def data_received(self, view: memoryview, /) -> None:
        """Print the bytes."""
        print(bytes(view))

    def eof_received(self) -> None:
        """Say goodbye."""
        print("eof")


handler: bufkit.ReadHandler = Printer()
not_a_handler: bufkit.ReadHandler = object()  # type: ignore[assignment]
not_a_receiver: bufkit.SupportsRecvInto = "text"  # type: ignore[assignment]


def on_done(exc: BaseException | None) -> None:
    """A completion callback."""


callback: bufkit.CompletionCallback = on_done
assert_type(bufkit.__version__, str)


def no_argument() -> None:
    """Not a completion callback: it cannot take the exception."""


not_a_callback: bufkit.CompletionCallback = no_argument  # type: ignore[assignment]
not_a_sender: bufkit.SupportsSendmsg = b"bytes"  # type: ignore[assignment]
not_a_plain_sender: bufkit.SupportsSend = bytearray()  # type: ignore[assignment]
