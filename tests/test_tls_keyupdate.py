"""TLS 1.3 KeyUpdate both ways over the TLS layer, against ``openssl s_client``.

``s_client`` sends a KeyUpdate on the command ``k`` and one that asks the
peer to update too on ``K``; OpenSSL on the server side answers the second
with its own KeyUpdate, which the layer must send like any record. Plaintext
must still arrive byte-exact both ways after each one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bufkit.adapters.selectors import Loop
from bufkit.bench import _certs
from bufkit.servers import Echo

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="no openssl tool")
DEADLINE = 20.0  # seconds for each step
SERVER_KEY_UPDATE = b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate"
# What -msg prints around each record (a header line, then indented hex),
# and s_client's note on a blocked read: cut out, the echoed bytes join up.
NOISE = re.compile(rb"(?:(?:<<<|>>>) [^\n]*\n(?:    [^\n]*\n)*|read R BLOCK\n)")


class _Client:
    """An ``s_client`` talking to a bufkit loop, both driven from one thread."""

    def __init__(self, loop: Loop, proc: subprocess.Popen[bytes]) -> None:
        self.loop = loop
        self.proc = proc
        self.out = bytearray()
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)

    def wait_for(self, done: Callable[[], bool]) -> None:
        """Run the loop and collect output until ``done()``, within DEADLINE."""
        started = time.monotonic()
        while not done():
            assert time.monotonic() - started < DEADLINE, bytes(self.out[-2000:])
            self.loop.run_once(0.01)
            try:
                self.out += os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue

    def line(self, text: bytes) -> None:
        """Send one line to ``s_client``'s input."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + b"\n")
        self.proc.stdin.flush()

    def received(self) -> bytes:
        """The output without -msg's record notes: the plaintext received."""
        return NOISE.sub(b"", bytes(self.out))

    def echo(self, text: bytes) -> None:
        """Send a line and wait until the server's echo of it was printed."""
        line = b"\n" + text + b"\n"
        before = self.received().count(line)
        self.line(text)
        self.wait_for(lambda: self.received().count(line) > before)


def test_key_updates_both_ways_keep_plaintext_exact(tmp_path: Path) -> None:
    """After the client's KeyUpdate, and one the server answers, echoes are exact."""
    files = _certs.self_signed(tmp_path)
    loop = Loop()
    try:
        listener = loop.listen(Echo, "127.0.0.1", 0, ssl=_certs.server_context(files))
        port = listener.address[1]
        command = [
            str(OPENSSL),
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
            "-tls1_3",
            "-msg",
        ]
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as proc:
            client = _Client(loop, proc)
            try:
                _converse(client)
            finally:
                proc.kill()
                proc.wait(DEADLINE)
    finally:
        loop.close()


def _converse(client: _Client) -> None:
    """Echo before, between and after the key updates."""
    client.echo(b"alpha-before-any-update")
    client.line(b"k")  # the client's sending keys change
    client.wait_for(lambda: client.out.count(b"KEYUPDATE") == 1)
    client.echo(b"bravo-after-the-client-updated")
    assert SERVER_KEY_UPDATE not in client.out
    client.line(b"K")  # the client's keys change, and it asks the server's to
    client.wait_for(lambda: client.out.count(b"KEYUPDATE") == 2)
    client.echo(b"charlie-after-both-updated")
    assert client.out.count(SERVER_KEY_UPDATE) == 1  # the server's own update
    payload = bytes(33 + i % 94 for i in range(12000))  # printable, no newline
    client.echo(payload)
    client.echo(b"delta-last")
