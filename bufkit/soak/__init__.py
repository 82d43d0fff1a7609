"""``bufkit soak``: a bounded soak and fault suite for the reference servers.

Run ``bufkit soak --profile short`` (or ``python -m bufkit.soak``): each chosen
server starts in a subprocess and is driven on 127.0.0.1 through byte-exact
echo checks, peers that never read, reset storms, connect/close churn, a
flood past its descriptor limit, garbage and over-long frames, and stop
signals under load. One line per scenario reports what held, with numbers;
the exit status is 1 on any loss, leak, spin or unbounded growth.
"""

from __future__ import annotations

from bufkit.soak._command import main

__all__ = ["main"]
