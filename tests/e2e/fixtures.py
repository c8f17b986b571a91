"""pytest fixtures for the end-to-end suite (loaded from tests/conftest.py)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from headway.k8s.client import Kube, make_api_client
from tests.e2e.harness import NAMESPACE_KIND, REAL_KUBECONFIG, Env, OperatorProcess, install_crd, new_namespace, real_cluster_kube


SHARED_SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "schemas"

# The data planes of the real-parts tests, by namespace: a test that runs real model servers for a
# namespace's Deployments registers its DataPlane here, and the emulator's Deployment controller then
# makes a Deployment available only once its server answers, as kubelet readiness probes hold a real
# rollout (the sandbox does the same, with the same probe). Without it, a Deployment is available
# 0.3 s after a change while its server may still be loading on a busy machine.
DATA_PLANES: dict[str, Any] = {}  # namespace -> headway.sandbox.dataplane.DataPlane


def load_yaml(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[tuple[Kube, Path] | None]:
    if not REAL_KUBECONFIG:
        yield None
        return
    kube, kubeconfig = real_cluster_kube()
    install_crd(kube)
    yield kube, kubeconfig


@pytest.fixture()
def api_server(real_cluster: tuple[Kube, Path] | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kube, Path, bool]]:
    """A Kubernetes API: the real cluster named by HEADWAY_E2E_KUBECONFIG, else a fresh
    emulator per test (no state, no history, nothing to slow down from one test to the next)."""
    if real_cluster is not None:
        yield (*real_cluster, False)
        return
    from headway.sandbox.apiserver import KubeEmulator
    from headway.sandbox.dataplane import pods_ready

    with KubeEmulator.running_in_thread() as emulator:
        emulator.start_deployment_controller(delay=0.3, pods_ready=functools.partial(pods_ready, DATA_PLANES))
        kubeconfig = emulator.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        kube = Kube(make_api_client(str(kubeconfig)))
        install_crd(kube)
        # A vanilla cluster serves Gateway API only once its CRDs are installed: install the
        # published HTTPRoute CRD, as a platform team would.
        emulator.install_crd(load_yaml(SHARED_SCHEMAS / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml"))
        emulator.install_crd(load_yaml(SHARED_SCHEMAS / "istio" / "virtualservices.networking.istio.io.yaml"))
        yield kube, kubeconfig, True


@pytest.fixture()
def env(api_server: tuple[Kube, Path, bool], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    """A fresh namespace with the real operator watching it."""
    kube, kubeconfig, emulated = api_server
    namespace = new_namespace(kube)
    operator = OperatorProcess(kubeconfig=kubeconfig, namespace=namespace, log_dir=tmp_path)
    operator.start()
    try:
        yield Env(kube=kube, kubeconfig=kubeconfig, namespace=namespace, operator=operator, emulated=emulated)
    finally:
        operator.kill()  # graceful shutdown is not under test here, and kopf's takes seconds
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"\n----- operator logs ({namespace}) -----\n{operator.logs()[-12000:]}")
        if not emulated:
            kube.delete(NAMESPACE_KIND, None, namespace)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
