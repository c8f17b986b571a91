"""Fixtures of the real data plane (defined in fixtures.py, importable by other suites)."""

from tests.realparts.fixtures import dataplane_factory, prometheus, realparts_env  # noqa: F401
