"""Shared test configuration: Hypothesis profiles, limits and TLS contexts."""

from __future__ import annotations

import os
import ssl

import pytest
from hypothesis import HealthCheck, settings

from bufkit._build import build
from tests._tls import make_tls_contexts

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "default")


def pytest_report_header() -> list[str]:
    """Say which bufkit build, from where, the whole run is testing."""
    import bufkit

    return [f"bufkit {bufkit.__version__}: {build()} build from {bufkit.__file__}"]


@pytest.fixture(scope="session")
def tls_contexts(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client TLS contexts around a fresh self-signed certificate."""
    return make_tls_contexts(tmp_path_factory.mktemp("tls"))
