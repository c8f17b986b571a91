#!/usr/bin/env python3
"""A local tour of Headway with no cluster: the real operator against an emulated API server.

    hack/run.sh            # sets up .venv, then runs this

It starts the Kubernetes API emulator the tests use (kmock-based, with a simulated
Deployment controller; pods are not run), installs the CRDs, starts `headway operator`,
and drives it with kubectl: a first ModelDeployment, then a new version rolled out by
canary steps with a manual gate passed by `kubectl annotate`. Every command it runs is
printed, so the same commands can be used on a real cluster.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402

from headway.k8s.client import Kube, make_api_client  # noqa: E402
from tests.e2e.emulator import KubeEmulator  # noqa: E402
from tests.e2e.harness import install_crd  # noqa: E402

SHARED = ROOT.parent / "shared" / "schemas"


def kubectl(kubeconfig: Path, *args: str, show: bool = True) -> str:
    cmd = ["kubectl", "--kubeconfig", str(kubeconfig), *args]
    print(f"\n$ kubectl {shlex.join(args)}")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = (result.stdout + result.stderr).rstrip()
    if show and out:
        print(out)
    return out


def wait_phase(kube_cfg: Path, phase: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["kubectl", "--kubeconfig", str(kube_cfg), "-n", "ml", "get", "md", "fraud-scorer",
                              "-o", "jsonpath={.status.phase}"], capture_output=True, text=True).stdout
        if out == phase:
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for phase {phase}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="headway-demo-"))
    with KubeEmulator.running_in_thread() as emulator:
        emulator.start_deployment_controller(delay=1.0)
        kubeconfig = emulator.write_kubeconfig(work / "kubeconfig")
        install_crd(Kube(make_api_client(str(kubeconfig))))
        httproutes = SHARED / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml"
        if httproutes.exists():
            emulator.install_crd(yaml.safe_load(httproutes.read_text()))
        print(f"API server emulator at {emulator.url} (kubeconfig: {kubeconfig})")

        log = open(work / "operator.log", "wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "headway.cli", "operator", "--kubeconfig", str(kubeconfig), "--health-addr", "127.0.0.1:0",
             "--metrics-port", "0"],  # the default safety resync: steps wake the operator when they end
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT / "operator")},
        )
        try:
            first = work / "first-model.yaml"
            first.write_text((ROOT / "examples" / "first-model.yaml").read_text())
            kubectl(kubeconfig, "apply", "-f", str(first))
            kubectl(kubeconfig, "-n", "ml", "wait", "--for=condition=Ready", "md/fraud-scorer", "--timeout=60s")
            kubectl(kubeconfig, "-n", "ml", "get", "md")
            kubectl(kubeconfig, "-n", "ml", "get", "deployments,services,poddisruptionbudgets", "-l", "headway.dev/modeldeployment=fraud-scorer")

            print("\n# A new version, rolled out by canary steps (durations shortened for the demo):")
            canary = yaml.safe_load((ROOT / "examples" / "canary.yaml").read_text())
            canary["spec"]["replicas"] = 3
            canary["spec"]["rollout"]["steps"] = [
                {"canary": {"weight": 10, "duration": "4s"}}, {"pause": {}}, {"canary": {"weight": 50, "duration": "4s"}},
            ]
            second = work / "canary.yaml"
            second.write_text(yaml.safe_dump(canary, sort_keys=False))
            kubectl(kubeconfig, "apply", "-f", str(second))
            for _ in range(3):
                time.sleep(2)
                kubectl(kubeconfig, "-n", "ml", "get", "md")
            wait_phase(kubeconfig, "Paused")
            kubectl(kubeconfig, "-n", "ml", "get", "md")
            kubectl(kubeconfig, "-n", "ml", "get", "md", "fraud-scorer", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].message}")
            print("\n# The manual gate: pass it from kubectl (the git-managed spec is not touched)")
            kubectl(kubeconfig, "-n", "ml", "annotate", "md/fraud-scorer", f"headway.dev/promote-step={int(time.time())}", "--overwrite")
            wait_phase(kubeconfig, "Succeeded")
            kubectl(kubeconfig, "-n", "ml", "get", "md")
            kubectl(kubeconfig, "-n", "ml", "get", "md", "fraud-scorer", "-o", "jsonpath={range .status.history[*]}{.time}  {.event}  {.message}{\"\\n\"}{end}")
            kubectl(kubeconfig, "-n", "ml", "get", "events", "--field-selector", "involvedObject.kind=ModelDeployment",
                    "--sort-by=.metadata.creationTimestamp", "-o", "custom-columns=TIME:.lastTimestamp,TYPE:.type,REASON:.reason,MESSAGE:.message")
            print(f"\nDone. Operator log: {work / 'operator.log'}")
        finally:
            operator.kill()
            operator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
