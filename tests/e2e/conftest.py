from collections.abc import Iterator

import pytest

from headway.sandbox.apiserver import KubeEmulator


@pytest.fixture()
def kube_emulator() -> Iterator[KubeEmulator]:
    """A fresh emulated kube-apiserver on 127.0.0.1, served from its own thread & loop, with the
    namespaces team-a and team-b (objects can only be created in a namespace that exists)."""
    with KubeEmulator.running_in_thread() as kube:
        kube.create_namespace("team-a", "team-b")
        yield kube
