"""Tiny echo servers for the soak's own tests: one that behaves, several that don't.

Run as ``python tests/_soak_servers.py MODE [--nofile N]``. It prints the
lines the soak reads (``pid N listening on HOST:PORT``, a statistics line on
SIGUSR1 and at exit) and echoes, stopping to read above 64 KiB queued, until
SIGTERM, SIGINT or SIGHUP. The modes that misbehave, one fault each:
``corrupt`` flips a byte of each reply, ``hoard`` never stops reading for a
peer that does not read, ``leak`` never closes a connection, ``spin`` polls
without sleeping, ``stubborn`` ignores stop signals, ``crash`` prints a
traceback on a read holding byte 0xFF, ``fragile`` exits on a reset, and
``emfile-spin`` retries ``accept`` at once when out of descriptors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import signal
import socket
import sys
import time
import traceback

HIGH = 65536


class Server:
    """A selectors echo server with one optional fault."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sel = selectors.DefaultSelector()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.wake_r, wake_w = socket.socketpair()
        self.wake_w = wake_w
        for sock in (self.wake_r, wake_w):
            sock.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        signal.set_wakeup_fd(wake_w.fileno())
        self.out: dict[socket.socket, bytearray] = {}
        self.eof: set[socket.socket] = set()
        self.stop = False
        self.report = False
        self.resume_at = 0.0

    def on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGUSR1:
            self.report = True
        elif self.mode != "stubborn":
            self.stop = True

    def stats(self) -> None:
        live = [s for s in self.out if s.fileno() >= 0]
        queued = sum(len(self.out[s]) for s in live)
        print(
            f"tiny: pid {os.getpid()} connections={len(live)} queued_bytes={queued} "
            "pool_bytes_in_use=0",
            flush=True,
        )

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self.on_signal)
        port = self.listener.getsockname()[1]
        print(f"tiny {self.mode}: pid {os.getpid()} listening on 127.0.0.1:{port}")
        sys.stdout.flush()
        while not self.stop:
            if self.resume_at and time.monotonic() >= self.resume_at:
                self.resume_at = 0.0
                self.sel.register(self.listener, selectors.EVENT_READ, "listen")
            timeout = 0.0 if self.mode == "spin" else 0.05
            for key, mask in self.sel.select(timeout):
                if key.data == "listen":
                    self.accept()
                elif key.data == "wake":
                    self.wake_r.recv(4096)
                else:
                    self.serve(key.fileobj, mask)  # type: ignore[arg-type]
            if self.report:
                self.report = False
                self.stats()
        self.stats()

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EMFILE and self.mode != "emfile-spin":
                    self.sel.unregister(self.listener)
                    self.resume_at = time.monotonic() + 0.1
                return
            sock.setblocking(False)
            self.out[sock] = bytearray()
            self.sel.register(sock, selectors.EVENT_READ, "conn")

    def serve(self, sock: socket.socket, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                self.read(sock)
            if mask & selectors.EVENT_WRITE and sock in self.out:
                self.write(sock)
        except ConnectionResetError:
            if self.mode == "fragile":
                sys.exit(3)
            self.drop(sock)
        except OSError:
            self.drop(sock)

    def read(self, sock: socket.socket) -> None:
        data = sock.recv(65536)
        if not data:
            self.eof.add(sock)
            if self.mode == "leak":
                self.sel.unregister(sock)
                return
            sock.shutdown(socket.SHUT_RD)
        elif self.mode == "crash" and b"\xff" in data:
            try:
                raise ValueError("byte 0xff")
            except ValueError:
                traceback.print_exc()
        if self.mode == "corrupt" and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        self.out[sock] += data
        self.write(sock)

    def write(self, sock: socket.socket) -> None:
        out = self.out[sock]
        if out:
            with contextlib.suppress(BlockingIOError):
                del out[: sock.send(out)]
        if not out and sock in self.eof:
            self.drop(sock)
            return
        reading = sock not in self.eof and (len(out) <= HIGH or self.mode == "hoard")
        events = (selectors.EVENT_READ if reading else 0) | (
            selectors.EVENT_WRITE if out else 0
        )
        if events:
            self.sel.modify(sock, events, "conn")
        else:
            self.sel.unregister(sock)

    def drop(self, sock: socket.socket) -> None:
        if sock in self.out:
            del self.out[sock]
            self.eof.discard(sock)
            if sock.fileno() >= 0:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(sock)
                sock.close()


def main() -> None:
    mode = sys.argv[1]
    if "--nofile" in sys.argv:
        limit = int(sys.argv[sys.argv.index("--nofile") + 1])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    Server(mode).run()


if __name__ == "__main__":
    main()
