"""Settings shared by the checks and the pytest plugin.

``seed`` is set by the ``--bufkit-seed`` option of the pytest plugin; the
conformance checks use it when they are not given a seed.
"""

from __future__ import annotations

seed: int | None = None
