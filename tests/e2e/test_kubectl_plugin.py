"""End to end: the installed ``kubectl-headway`` executable, run by kubectl, against the API server and the operator.

``kubectl headway ...`` finds the console script on PATH (kubectl's plugin mechanism), reads and
patches the ModelDeployment the real operator process rolls out, and ``get --watch`` (a watch of
the API, run in a subprocess with a pipe for stdout: a block per change) prints the step the
operator moved to. The approval commands run against the emulator as a user of a governance role
(a bearer token the emulator issued, RBAC as the chart's approver role grants), on a status
carrying ``status.governance``. Against a real cluster (HEADWAY_E2E_KUBECONFIG) the rollout test
runs unchanged.
"""

from __future__ import annotations

import os
import pty
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from headway.api import approval
from headway.reconciler import MODEL_DEPLOYMENT
from headway.sandbox.apiserver import KubeEmulator
from headway.k8s.client import Kind, Kube, make_api_client
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, TIMEOUT, Env, install_crd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

BIN = Path(sys.executable).parent
V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
# Steps an hour long: nothing moves on its own, only promote-step does.
STEPS = [{"canary": {"weight": 10, "duration": "1h"}}, {"canary": {"weight": 50, "duration": "1h"}}, {"pause": {}}]
APPROVALS = Kind("serving.headway.dev", "v1alpha1", "modelapprovals", "ModelApproval")
DIGEST = "9b2c6f0e4d1a8b7c3e5f9a0d2b4c6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d"


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    if not (BIN / "kubectl-headway").exists():
        pytest.fail(f"{BIN / 'kubectl-headway'} is missing: install the package (hack/setup.sh runs uv pip install -e .)")


def plugin_env(kubeconfig: Path) -> dict[str, str]:
    """What a user's shell has: the kubeconfig in $KUBECONFIG and the plugin on PATH."""
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60, env=plugin_env(kubeconfig))


def as_from_a_shell() -> None:
    """Run in the child before it starts: Ctrl-C reaches it as it does from a user's shell. The test
    process's own signal state (a signal ignored or blocked by something else in it) is inherited
    across exec and must not decide what the plugin does on Ctrl-C."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signals_of(pid: int) -> str:
    """The kernel's view of a process's signals (pending, blocked, ignored, caught), for a failure message."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return "".join(line for line in status if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "(gone)"


def ctrl_c(proc: subprocess.Popen[Any]) -> int | None:
    """Ctrl-C: the exit code, or None with the process left running (the caller kills it)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


class Lines:
    """A subprocess's stdout, read line by line in a thread, so a test can wait for a line without blocking."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.seen, self._queue = proc, [], queue.Queue()  # type: ignore[var-annotated]
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(TIMEOUT)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)

    def wait(self, what: str, match: Callable[[str], bool]) -> str:
        def probe() -> str | None:
            while not self._queue.empty():
                line = self._queue.get()
                self.seen.append(line)
                if match(line):
                    return line
            if self.proc.poll() is not None and self._queue.empty():
                raise AssertionError(f"the watch exited ({self.proc.returncode}) before {what}:\n{''.join(self.seen)}")
            return None
        return wait_for(what, probe)


@pytest.fixture()
def rollout(env: Env) -> Iterator[Env]:
    """fraud at 3.2.0, then 3.3.0 rolling out: step 1/3 (canary 10%) running."""
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": TRAFFIC, "rollout": {"steps": STEPS}})
    env.wait_phase("fraud", "Succeeded")
    env.patch_spec("fraud", {"model": V2})
    wait_for("step 1 running", lambda: (env.status("fraud").get("rollout") or {}).get("stepStartedAt"))
    yield env


def test_get_promote_step_and_watch_through_kubectl(rollout: Env) -> None:
    env = rollout
    shown = kubectl(env.kubeconfig, "headway", "get", "md/fraud", "-n", env.namespace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:3] == ["Name:          fraud", f"Namespace:     {env.namespace}", "Status:        ◌ Progressing"]
    assert re.search(r"^  Step:        1/3 canary 10% 1h, (59m|1h) left$", shown.stdout, re.M), shown.stdout
    assert re.search(r"├──⧉ candidate fraud_scorer:3\.3\.0 +✔ Available +rev:\w{10}  ready:1/1  weight:10%$", shown.stdout, re.M), shown.stdout
    assert re.search(r"│  ├──◌ 1/3 canary 10% 1h +◌ Running +(59m|1h) left$", shown.stdout, re.M), shown.stdout

    with subprocess.Popen(["kubectl-headway", "get", "modeldeployment/fraud", "--watch", "--namespace", env.namespace],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plugin_env(env.kubeconfig),
                          preexec_fn=as_from_a_shell) as watch:
        out = Lines(watch)
        try:
            out.wait("the first block", lambda line: line.startswith("  Step:        1/3"))

            # Refused: nothing is rolled back, so a retry would be ignored by the operator.
            refused = kubectl(env.kubeconfig, "headway", "retry", "md/fraud", "-n", env.namespace)
            assert (refused.returncode, refused.stdout) == (1, "") and "retry: nothing is rolled back" in refused.stderr

            done = kubectl(env.kubeconfig, "headway", "promote-step", "md", "fraud", "-n", env.namespace)
            assert done.returncode == 0, done.stderr
            assert re.fullmatch(r"promote-step: fraud leaves step 1/3 \(canary 10%\), (59m|1h) before its end for step 2/3 "
                                r"\(canary 50%: stable=50 candidate=50\)\n", done.stdout), done.stdout

            out.wait("the block of step 2", lambda line: line.startswith("  Step:        2/3 canary 50% 1h"))
            signals = signals_of(watch.pid)
            code = ctrl_c(watch)
            assert code == 0, f"exit {code} after Ctrl-C; signals before it:\n{signals}"
        finally:
            if watch.poll() is None:
                watch.kill()
            out.join()

    body = env.md("fraud")
    revision = body["status"]["candidate"]["revision"]
    assert body["metadata"]["annotations"]["headway.dev/promote-step"] == revision  # bound to the candidate it was given for
    assert "kubectl-headway" in {f["manager"] for f in body["metadata"].get("managedFields", [])}
    wait_for("the route at 50%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 50, "fraud-candidate": 50})  # follows the status

    # The same command again: its value is the bento tag now (the revision was handled), and it passes step 2.
    again = kubectl(env.kubeconfig, "headway", "promote-step", "md/fraud", "-n", env.namespace)
    assert again.returncode == 0 and "leaves step 2/3 (canary 50%)" in again.stdout and "for step 3/3 (a manual gate" in again.stdout
    wait_for("the manual gate", lambda: env.status("fraud").get("phase") == "Paused")
    assert env.md("fraud")["metadata"]["annotations"]["headway.dev/promote-step"] == "fraud_scorer:3.3.0"


# --- approvals and who you are --------------------------------------------------------------------------


def test_emulator_answers_selfsubjectreview_as_the_real_api_server(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    """kubectl auth whoami reads the emulator's answer; an issued token is the user it names (201, stored nowhere)."""
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "admin")
    who = kubectl(kubeconfig, "auth", "whoami")
    assert who.returncode == 0, who.stderr
    assert re.search(r"^Username\s+kubernetes-admin$", who.stdout, re.M) and "system:masters" in who.stdout
    token = kube_emulator.token_for("carol", ["risk-officers"])
    url = str(kube_emulator.url).rstrip("/") + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    answer = requests.post(url, json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 201
    assert answer.json()["status"]["userInfo"] == {"username": "carol", "groups": ["risk-officers", "system:authenticated"]}
    assert requests.post(url, json={"kind": "Pod"}, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 400


def governed(kube_emulator: KubeEmulator, tmp_path: Path) -> tuple[Kube, str, Path]:
    """fraud awaiting approval (its status written as the operator writes it), and carol's kubeconfig:
    a member of risk-officers, granted what the chart's approver role grants."""
    admin = Kube(make_api_client(str(kube_emulator.write_kubeconfig(tmp_path / "admin"))))
    install_crd(admin)
    kube_emulator.install_crd(approval.build_crd())
    ns = "ml"
    kube_emulator.create_namespace(ns)
    admin.create(MODEL_DEPLOYMENT, ns, {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": "ModelDeployment",
                                        "metadata": {"name": "fraud", "namespace": ns},
                                        "spec": {"model": V2, "rollout": {"steps": STEPS}}})
    revision = "5d8bcc5ca5"
    status = {
        "phase": "AwaitingApproval",
        "stable": {"name": "stable", "bento": V1["bento"], "image": V1["image"], "revision": "969d8cbaff", "replicas": 2,
                   "readyReplicas": 2, "available": True, "weight": 90},
        "candidate": {"name": "candidate", "bento": V2["bento"], "image": V2["image"], "revision": revision, "replicas": 1,
                      "readyReplicas": 1, "available": True, "weight": 10},
        "governance": {"riskTier": "high", "revision": revision, "stage": "BeforePromotion", "evidenceDigest": DIGEST,
                       "policy": [{"role": "risk", "count": 1, "stage": "BeforePromotion"}],
                       "waitingFor": [{"role": "risk", "missing": 1}], "approvals": []},
    }
    admin.merge_patch(MODEL_DEPLOYMENT, ns, "fraud", {"status": status}, subresource="status")
    rbac = Kind("rbac.authorization.k8s.io", "v1", "roles", "Role")
    admin.create(rbac, ns, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "approver", "namespace": ns},
                            "rules": [{"apiGroups": ["serving.headway.dev"], "resources": ["modelapprovals"], "verbs": ["create", "get", "list", "watch"]},
                                      {"apiGroups": ["serving.headway.dev"], "resources": ["modeldeployments"], "verbs": ["get", "list", "watch"]}]})
    binding = Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    admin.create(binding, ns, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                               "metadata": {"name": "approvers", "namespace": ns},
                               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approver"},
                               "subjects": [{"kind": "Group", "name": "risk-officers", "apiGroup": "rbac.authorization.k8s.io"}]})
    carol = kube_emulator.write_kubeconfig(tmp_path / "carol", namespace=ns, token=kube_emulator.token_for("carol", ["risk-officers"]))
    return admin, ns, carol


def run_plugin(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kubectl-headway"), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECONFIG": str(kubeconfig)})


def test_approve_creates_a_model_approval_as_the_requesting_user(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    admin, ns, carol = governed(kube_emulator, tmp_path)
    shown = run_plugin(carol, "get", "fraud")  # the context's namespace
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^└──☑ approvals +॥ AwaitingApproval +risk tier high, waits before promotion, evidence 9b2c6f0e4d1a$", shown.stdout, re.M)
    assert re.search(r"^   └──◷ risk +◷ Waiting +1 more needed \(before promotion\)$", shown.stdout, re.M), shown.stdout

    missing = run_plugin(carol, "approve", "md/fraud")
    assert missing.returncode == 2 and "--role" in missing.stderr
    bad = run_plugin(carol, "approve", "md/fraud", "--role", "Risk Officers")
    assert bad.returncode == 1 and bad.stderr.startswith("error: --role: String should match pattern")

    done = run_plugin(carol, "approve", "md/fraud", "--role", "risk", "--comment", "PSI within bounds")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("approve: carol approves fraud_scorer:3.3.0 (5d8bcc5ca5) as risk on the evidence 9b2c6f0e4d1a; with it "
                           "no approval is missing: the rollout goes on once the operator counts it\n"
                           "modelapproval.serving.headway.dev/fraud-5d8bcc5ca5-risk-carol created\n")
    created = admin.get(APPROVALS, ns, "fraud-5d8bcc5ca5-risk-carol")
    assert created is not None and created["spec"] == {
        "modelDeployment": "fraud", "revision": "5d8bcc5ca5", "evidenceDigest": DIGEST, "role": "risk", "approver": "carol",
        "decision": "approve", "comment": "PSI within bounds"}
    assert {f["manager"] for f in created["metadata"]["managedFields"]} == {"kubectl-headway"}

    # Changing one's mind is a new record beside the first (approvals are immutable).
    rejected = run_plugin(carol, "reject", "md/fraud", "--role", "risk")
    assert rejected.returncode == 0, rejected.stderr
    assert "the operator aborts its rollout" in rejected.stdout
    names = sorted(a["metadata"]["name"] for a in admin.list(APPROVALS, ns))
    assert len(names) == 2 and names[0] == "fraud-5d8bcc5ca5-risk-carol" and names[1].startswith("fraud-5d8bcc5ca5-risk-carol-")

    # No evidence digest: nothing was asked, so nothing is created.
    admin.merge_patch(MODEL_DEPLOYMENT, ns, "fraud", {"status": {"governance": None}}, subresource="status")
    refused = run_plugin(carol, "approve", "md/fraud", "--role", "risk")
    assert refused.returncode == 1 and "no evidence digest" in refused.stderr
    assert len(admin.list(APPROVALS, ns)) == 2


def test_watch_in_a_terminal_redraws_in_colour_and_ctrl_c_exits_0(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    """On a terminal the screen is cleared and drawn again (every second, for the time left), icons in colour."""
    _, _, carol = governed(kube_emulator, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    master, terminal = pty.openpty()
    seen = bytearray()

    def drawn_twice() -> bool:
        while select.select([master], [], [], 0.05)[0]:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:  # the terminal closed
                break
        return seen.count(b"\x1b[H\x1b[2J") >= 2

    with subprocess.Popen([str(BIN / "kubectl-headway"), "get", "md/fraud", "--watch"], stdout=terminal, stderr=subprocess.PIPE,
                          env={**env, "KUBECONFIG": str(carol), "TERM": "xterm"}, preexec_fn=as_from_a_shell) as proc:
        os.close(terminal)
        try:
            wait_for("two drawings on the terminal", drawn_twice)
            signals = signals_of(proc.pid)
            code = ctrl_c(proc)
            assert code == 0, f"exit {code} after Ctrl-C; signals before it:\n{signals}"
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
    text = seen.decode(errors="replace")
    assert "\x1b[33m◷\x1b[0m risk" in text and "Status:        ॥ AwaitingApproval" in text


def test_a_user_without_rights_reads_the_servers_refusal(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    _, ns, _ = governed(kube_emulator, tmp_path)
    mallory = kube_emulator.write_kubeconfig(tmp_path / "mallory", namespace=ns, token=kube_emulator.token_for("mallory"))
    denied = run_plugin(mallory, "pause", "md/fraud")
    assert denied.returncode == 1
    assert denied.stderr == ('Error from server (Forbidden): modeldeployments.serving.headway.dev "fraud" is forbidden: User "mallory" '
                             'cannot get resource "modeldeployments" in API group "serving.headway.dev" in the namespace "ml"\n')
    missing = run_plugin(mallory, "get", "md/nope", "--kubeconfig", str(kube_emulator.write_kubeconfig(tmp_path / "admin2")), "-n", ns)
    assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): modeldeployments.serving.headway.dev "nope" not found\n')
