"""The pytest plugin of :mod:`bufkit.testing` (entry point ``pytest11: bufkit``).

Fixtures are factories, so they are safe inside ``@given`` tests, where
function-scoped fixtures are not reset between examples.
"""

from __future__ import annotations
