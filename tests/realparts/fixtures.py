"""pytest fixtures for the real data plane: ``prometheus`` (session) and ``dataplane_factory``.

They are loaded by ``tests/realparts/conftest.py`` for the tests in this directory. Another
test directory (the e2e suite) gets them by importing them into its module or conftest::

    from tests.realparts.fixtures import dataplane_factory, prometheus, realparts_env  # noqa: F401

Intended use with the e2e ``env`` fixture (tests/e2e/fixtures.py) — the real operator
against the emulator, real BentoML pods, a real Prometheus::

    @pytest.mark.e2e
    @pytest.mark.realparts
    def test_bad_candidate_rolls_back(realparts_env, dataplane_factory, prometheus):
        env = realparts_env  # the `env` fixture, its operator started with the Prometheus URL
        if not env.emulated:
            pytest.skip("a real cluster runs real pods and its own Prometheus")
        plane = dataplane_factory(env.kube, env.namespace, {
            IMAGE: {},
            IMAGE_V2: {"HEADWAY_FAULT_ERROR_RATE": "0.3"},
        })
        env.create_md("fraud", spec)                    # spec.model.image = IMAGE
        plane.wait_serving("fraud-stable")
        load = dataplane_factory.load(plane, "fraud", rate=30, max_seconds=90)
        env.patch_spec("fraud", {"model": {"image": IMAGE_V2}})
        env.wait_history("fraud", "RolledBack")         # the verdict came from Prometheus
        stats = load.stats()                            # responses by variant and status

The operator learns the Prometheus URL from ``$HEADWAY_PROMETHEUS_URL`` (the same variable
the Helm chart sets): ``realparts_env`` sets it, then builds ``env``, so the operator
process inherits it (request ``realparts_env``, not ``env``). An alternative without that
fixture is to restart the operator with the flag: ``env.operator.stop();
env.operator.extra_args += ["--prometheus-url", prometheus.url]; env.operator.start()``.
A ModelDeployment may also name it in ``spec.analysis.prometheus.url``.

Timing to plan for: a BentoServer is ready ~3 s after its Deployment appears (~6 s when two
start together), while the emulator marks Deployments ready after 0.3 s; Prometheus picks
up new targets within ~5 s (its discovery manager batches updates) and scrapes every 1 s.
So a variant has series in Prometheus ~5–8 s after its Deployment is created — the
operator's analysis must treat "no data yet" as such, or the test waits with
``plane.wait_serving`` / ``prometheus.wait_value`` before moving on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from headway.k8s.client import Kube
from headway.sandbox.dataplane import DataPlane, LoadGenerator
from headway.sandbox.processes import Prometheus
from tests.e2e.fixtures import DATA_PLANES


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One real Prometheus for the session (1 s scrapes); data planes add targets per namespace."""
    if not Prometheus.available():
        pytest.skip("no Prometheus binary (apt-get install -y --no-install-recommends prometheus)")
    server = Prometheus(workdir=tmp_path_factory.mktemp("prometheus")).start()
    try:
        yield server
    finally:
        server.stop()


class DataPlaneFactory:
    """Makes started DataPlanes and LoadGenerators; stops them all at teardown."""

    def __init__(self, prometheus: Prometheus, workdir: Path) -> None:
        self.prometheus = prometheus
        self.workdir = workdir
        self.planes: list[DataPlane] = []
        self.loads: list[LoadGenerator] = []

    def __call__(self, kube: Kube, namespace: str, behaviours: Mapping[str, Mapping[str, str]], **kwargs: Any) -> DataPlane:
        """A started DataPlane for ``namespace`` (kwargs: see DataPlane)."""
        kwargs.setdefault("workdir", self.workdir / f"{namespace}-{len(self.planes)}")
        plane = DataPlane(kube, namespace, behaviours, self.prometheus, **kwargs)
        self.planes.append(plane)
        DATA_PLANES[namespace] = plane  # the emulator's pods are ready when its servers are
        return plane.start()

    def load(self, plane: DataPlane, modeldeployment: str, **kwargs: Any) -> LoadGenerator:
        """A started LoadGenerator sending traffic to ``modeldeployment`` (kwargs: see LoadGenerator)."""
        generator = LoadGenerator(plane, modeldeployment, **kwargs)
        self.loads.append(generator)
        return generator.start()

    def close(self) -> None:
        for generator in self.loads:
            generator.stop()
        for plane in self.planes:
            DATA_PLANES.pop(plane.namespace, None)
            plane.stop()


@pytest.fixture()
def dataplane_factory(prometheus: Prometheus, tmp_path: Path) -> Iterator[DataPlaneFactory]:
    """``dataplane_factory(kube, namespace, {image: behaviour_env})`` -> a started DataPlane;
    ``dataplane_factory.load(plane, md, rate=..., max_seconds=...)`` -> a started LoadGenerator.
    Everything is stopped at teardown (servers by PID, targets removed)."""
    factory = DataPlaneFactory(prometheus, tmp_path / "dataplane")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture()
def realparts_env(prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """The e2e ``env`` fixture with its operator pointed at ``prometheus`` (via $HEADWAY_PROMETHEUS_URL).

    Request it instead of ``env``. Should ``env`` have been set up before (its operator
    started without the variable), the operator is restarted with ``--prometheus-url``.
    """
    monkeypatch.setenv("HEADWAY_PROMETHEUS_URL", prometheus.url)
    env = request.getfixturevalue("env")
    operator = env.operator
    if operator.proc is not None and not _has_env(operator.proc.pid, "HEADWAY_PROMETHEUS_URL", prometheus.url):
        operator.stop()
        operator.extra_args += ["--prometheus-url", prometheus.url]
        operator.start()
    return env


def _has_env(pid: int, name: str, value: str) -> bool:
    try:
        return f"{name}={value}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
