"""Framers that cut a byte stream into whole frames, copying only leftovers.

A framer is a :class:`~bufkit.ReadHandler`, so it can be the handler of a
:class:`~bufkit.ReadinessReader`. Frames that arrive in one read are handed over
as views into the read buffer; only a frame that spans reads is copied, into a
pool buffer held just until it is complete. The classes are also importable
from :mod:`bufkit` itself.
"""

from __future__ import annotations

from bufkit._framing import DelimiterFramer, LengthPrefixedFramer
from bufkit.errors import FrameTooLarge, FramingError

__all__ = ["DelimiterFramer", "FrameTooLarge", "FramingError", "LengthPrefixedFramer"]
