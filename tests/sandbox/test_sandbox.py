"""`headway sandbox` as a user runs it: the three scenes, the clean edges, `down`.

Every test runs the real command (``python -m headway.cli sandbox``) as a child process with
its state under ``tmp_path`` (``HEADWAY_SANDBOX_ROOT``), and checks what a user notices: the
exit status, the summary, the picture, the messages — and that no process it started is
left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headway.sandbox import session as sessions
from tests.sandbox.test_faults import USER_SERVICE, build_bento  # a user's service: class Echo, returns 2 * x

ROOT = Path(__file__).resolve().parents[2]
SCENES = ROOT / "examples" / "sandbox"
HAS_PROMETHEUS = any(os.access(p, os.X_OK) for p in ("/usr/bin/prometheus",)) or bool(os.environ.get("HEADWAY_PROMETHEUS_BINARY"))


def needs_real_parts(test: Any) -> Any:
    """Real Prometheus, BentoML servers and the operator: the e2e and realparts marks."""
    for mark in (pytest.mark.e2e, pytest.mark.realparts,
                 pytest.mark.skipif(not HAS_PROMETHEUS, reason="no Prometheus binary (apt-get install -y --no-install-recommends prometheus)")):
        test = mark(test)
    return test


def sandbox_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWAY_")}
    env.update(HEADWAY_SANDBOX_ROOT=str(root), PYTHONUNBUFFERED="1")
    return env


def run_sandbox(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headway.cli", "sandbox", *args], capture_output=True, text=True,
                          timeout=timeout, env=sandbox_env(root), cwd=root)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def wait(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@needs_real_parts
def test_three_scenes_rollback_then_promotion(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run_sandbox(tmp_path, "--fast", "--no-live", "--out", str(out))
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"

    report = json.loads((out / "summary.json").read_text())
    serving, bad, good = report["scenes"]
    assert [s["result"] for s in report["scenes"]] == ["serving", "rolledBack", "promoted"]
    assert serving["status"]["stable"]["bento"] == "fraud_scorer:1.0.0"

    # The bad version: rolled back by the operator's own analysis, with its evidence.
    assert bad["status"]["phase"] == "RolledBack"
    assert bad["status"]["rolledBack"]["reason"] == "FailedAnalysis"
    assert bad["status"]["stable"]["bento"] == "fraud_scorer:1.0.0"
    assert bad["decision"]["event"] == "RolledBack"
    failed = [v for v in bad["decision"]["evidence"]["analysis"]["verdicts"] if v["result"] == "Fail"]
    error_rate = next(v for v in failed if v["slo"] == "errorRate")
    assert error_rate["value"] > 0.1 and error_rate["samples"] >= 100 and error_rate["pValue"] < 0.05
    assert bad["load"]["candidate"]["errors"] > 0  # live requests really hit the bad servers

    # The good version: shadow, canary steps, promoted on passing analyses.
    assert good["status"]["phase"] == "Succeeded" and good["status"]["stable"]["bento"] == "fraud_scorer:3.0.0"
    events = [d["event"] for d in report["decisions"]["ml/fraud-scorer"] if d["bento"] == "fraud_scorer:3.0.0"]
    assert events.count("StepCompleted") == 3 and "Promoted" in events
    assert good["load"]["candidate"]["mirrored"] > 0  # the shadow step mirrored live requests to it

    # What the user reads and sees.
    assert "rolled back automatically" in result.stdout and "reason FailedAnalysis" in result.stdout
    assert "evidence: errorRate Fail" in result.stdout and "promoted " in result.stdout and "s after it was applied" in result.stdout
    svg = (out / "timeline.svg").read_text()
    assert svg.startswith("<svg") and ">RolledBack</text>" in svg and ">Promoted</text>" in svg

    # Nothing left: every process it started is gone, its state directory removed.
    assert report["pids"] and not [pid for pid in report["pids"] if alive(pid)]
    assert not list(tmp_path.glob("run-*"))


@pytest.fixture()
def kept(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # only if the test failed before `down`
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@needs_real_parts
def test_two_kept_runs_do_not_collide_and_down_stops_both(tmp_path: Path, kept: list[subprocess.Popen[str]]) -> None:
    manifest = str(SCENES / "1-first-version.yaml")
    logs = [tmp_path / f"sandbox-{i}.log" for i in range(2)]
    for i, log in enumerate(logs):
        with log.open("w") as out:
            kept.append(subprocess.Popen([sys.executable, "-m", "headway.cli", "sandbox", "-f", manifest, "--keep", "--no-live",
                                          "--out", str(tmp_path / f"report-{i}")], stdout=out, stderr=subprocess.STDOUT,
                                         text=True, env=sandbox_env(tmp_path), cwd=tmp_path))

    def both_serving() -> list[dict[str, Any]] | None:
        for proc, log in zip(kept, logs):
            assert proc.poll() is None, f"a sandbox exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        states = [s for _, s in sessions.runs(tmp_path) if s]
        with_pods = [s for s in states if any(c["name"].startswith("pod ") for c in s["children"])]
        return with_pods if len(with_pods) == 2 else None

    # Two whole sandboxes (API server, operator, Prometheus, model servers) start side by side: on a
    # loaded machine that took longer than 120 s once. The bound only ends a hung run; the logs say where.
    try:
        states = wait("two sandboxes serving", both_serving, 200)
    except AssertionError:
        print("\n".join(f"----- {log.name} -----\n{log.read_text()[-3000:]}" for log in logs))
        print(f"runs: {sessions.runs(tmp_path)}")
        raise
    assert states[0]["kubeconfig"] != states[1]["kubeconfig"] and states[0]["prometheus"] != states[1]["prometheus"]
    pids = [int(s["pid"]) for s in states] + [int(c["pid"]) for s in states for c in s["children"]]
    assert len(set(pids)) == len(pids)

    result = run_sandbox(tmp_path, "down", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stopped 2 sandbox run(s)" in result.stdout
    for proc in kept:
        assert proc.wait(30) == 130  # stopped as by Ctrl-C, after cleaning up
    wait("every process stopped", lambda: not [pid for pid in pids if alive(pid)], 30)
    assert not list(tmp_path.glob("run-*"))
    assert (tmp_path / "report-0" / "summary.txt").exists()


def test_missing_prometheus_names_the_install_command(tmp_path: Path) -> None:
    result = run_sandbox(tmp_path, "--prometheus", str(tmp_path / "no-prometheus"), "--no-live", timeout=60)
    assert result.returncode == 2
    assert "no executable file there" in result.stderr and "apt-get install -y --no-install-recommends prometheus" in result.stderr
    assert not list(tmp_path.glob("run-*"))  # nothing was started


@pytest.mark.skipif(not HAS_PROMETHEUS, reason="needs a Prometheus binary to get past the first check")
def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_sandbox(tmp_path, "--prometheus-port", str(port), "--no-live", timeout=60)
    assert result.returncode == 2
    assert f"--prometheus-port {port}: port {port} on 127.0.0.1 is in use" in result.stderr


@pytest.mark.skipif(not HAS_PROMETHEUS, reason="needs a Prometheus binary to get past the first check")
def test_a_service_that_does_not_import_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken_service.py").write_text("import a_module_nobody_has\n")
    result = run_sandbox(tmp_path, "--service", "broken_service:Scorer", "--no-live", timeout=120)
    assert result.returncode == 2
    assert "--service broken_service:Scorer: it does not import" in result.stderr
    assert "No module named 'a_module_nobody_has'" in result.stderr
    (tmp_path / "not-a-bento").mkdir()
    result = run_sandbox(tmp_path, "--service", "not-a-bento", "--no-live", timeout=120)
    assert result.returncode == 2
    assert "--service not-a-bento: a directory without bento.yaml, so not a built bento" in result.stderr
    (tmp_path / "broken-bento").mkdir()
    (tmp_path / "broken-bento" / "bento.yaml").write_text("service: nothing_here:Nope\n")
    result = run_sandbox(tmp_path, "--service", "broken-bento", "--no-live", timeout=120)
    assert result.returncode == 2 and "--service broken-bento: the bento does not load" in result.stderr
    assert not list(tmp_path.glob("run-*"))  # nothing was started


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    result = run_sandbox(tmp_path, "--fault", "errors=150%", "--no-live", timeout=60)
    assert result.returncode == 2 and "--fault errors=150%" in result.stderr
    result = run_sandbox(tmp_path, "--fault", "shift=+1", "--service", "mine:Model", "--no-live", timeout=60)
    assert result.returncode == 2 and "shift changes the bundled example's answers" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: serving.headway.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\nspec: {model: {image: y}}\n")
    result = run_sandbox(tmp_path, "-f", str(bad), "--no-live", timeout=60)
    assert result.returncode == 2 and "spec.model.bento is required" in result.stderr
    result = run_sandbox(tmp_path, "apply", "-f", str(bad), timeout=60)
    assert result.returncode == 2 and "no sandbox is running" in result.stderr


# -- a user's own service, its requests, and --fault ---------------------------------------------


BAD_CANARY = """# title: A new version of the user's service, made to fail by --fault
# expect: rolledBack
apiVersion: serving.headway.dev/v1alpha1
kind: ModelDeployment
metadata: {name: doubler, namespace: user}
spec:
  model: {bento: "doubler:2.0.0", image: "registry.example.com/doubler:2.0.0"}
  replicas: 1
  traffic: {provider: gatewayApi, gatewayApi: {parentRefs: [{name: inference, namespace: gateways}]}}
  rollout: {steps: [{canary: {weight: 50, duration: 2m}}]}
  analysis:
    interval: 12s
    minRequests: 100
    failureLimit: 2
    slos: [{errorRate: {max: 0.05}}]
"""


@needs_real_parts
def test_user_service_gets_its_payload_and_a_fault_is_rolled_back(tmp_path: Path) -> None:
    """One short run: the user's service (not the example) answers the --endpoint/--payload
    requests without refusing any; its next version, made to fail 30% of calls by --fault
    (the manifest asks for nothing), is rolled back by the operator with reason FailedAnalysis."""
    (tmp_path / "user_doubler.py").write_text(textwrap.dedent(USER_SERVICE))
    (tmp_path / "bodies.json").write_text(json.dumps([{"x": 1.5}, {"x": -2}, {"x": 40}]))
    first = tmp_path / "first.yaml"
    first.write_text("# title: The user's service, first version\n# expect: serving\n"
                     + BAD_CANARY.split("\n", 2)[2].replace("2.0.0", "1.0.0"))
    (tmp_path / "canary.yaml").write_text(BAD_CANARY)
    out = tmp_path / "report"
    result = run_sandbox(tmp_path, "-f", str(first), "-f", "canary.yaml", "--service", "user_doubler:Echo",
                         "--endpoint", "predict", "--payload", "bodies.json", "--fault", "errors=30%", "--fast",
                         "--no-live", "--out", str(out), timeout=240)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    assert "--fault errors=30%: injected into every new version" in result.stdout
    assert "requests were refused" not in result.stdout

    first_scene, bad = json.loads((out / "summary.json").read_text())["scenes"]
    assert first_scene["result"] == "serving"
    stable = first_scene["load"]["stable"]
    assert stable["answered"] >= 90 and stable["rejected"] == 0 and stable["errors"] == 0  # its own service, valid bodies

    assert bad["result"] == "rolledBack" and bad["status"]["rolledBack"]["reason"] == "FailedAnalysis"
    assert bad["status"]["stable"]["bento"] == "doubler:1.0.0"
    failed = [v for v in bad["decision"]["evidence"]["analysis"]["verdicts"] if v["result"] == "Fail"]
    assert [v["slo"] for v in failed] == ["errorRate"] and failed[0]["value"] > 0.1
    assert bad["load"]["candidate"]["errors"] > 0 and bad["load"]["candidate"]["rejected"] == 0
    assert bad["load"]["stable"]["errors"] == 0  # the fault follows the new version only
    assert "reason FailedAnalysis" in result.stdout


def test_payload_errors_are_named(tmp_path: Path) -> None:
    result = run_sandbox(tmp_path, "--payload", "missing.json", "--no-live", timeout=60)
    assert result.returncode == 2
    assert "--payload missing.json: cannot read it (No such file or directory)" in result.stderr
    (tmp_path / "body.txt").write_text("x=1\n")
    result = run_sandbox(tmp_path, "--payload", "body.txt", "--no-live", timeout=60)
    assert result.returncode == 2 and "--payload body.txt: not JSON" in result.stderr
    assert "give the request body your service expects" in result.stderr
    (tmp_path / "empty.json").write_text("[]")
    result = run_sandbox(tmp_path, "--payload", "empty.json", "--no-live", timeout=60)
    assert result.returncode == 2 and "an empty list" in result.stderr
    assert not list(tmp_path.glob("run-*"))  # nothing was started


@needs_real_parts
def test_a_built_bento_serves_the_first_scene(tmp_path: Path) -> None:
    """``--service <bento directory>``: the sandbox's pods run the user's built bento, which
    answers every request of the first scene."""
    bento = build_bento(tmp_path / "project", tmp_path / "store")
    (tmp_path / "bodies.json").write_text(json.dumps([{"x": 1.5}, {"x": -2}]))
    first = tmp_path / "first.yaml"
    first.write_text("# title: The user's bento, first version\n# expect: serving\n"
                     + BAD_CANARY.split("\n", 2)[2].replace("2.0.0", "1.0.0"))
    out = tmp_path / "report"
    result = run_sandbox(tmp_path, "-f", str(first), "--service", str(bento), "--endpoint", "predict",
                         "--payload", "bodies.json", "--fast", "--no-live", "--out", str(out), timeout=240)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    (scene,) = json.loads((out / "summary.json").read_text())["scenes"]
    stable = scene["load"]["stable"]
    assert scene["result"] == "serving" and stable["answered"] >= 90 and stable["rejected"] == 0 and stable["errors"] == 0


@needs_real_parts
def test_shifted_answers_are_rolled_back_in_the_monitoring_scenes(tmp_path: Path) -> None:
    """examples/monitoring/sandbox with --fault shift=+1.5: the new version's errors and latency
    are good, only its answers moved; the operator's prediction comparison (spec.monitoring.compare,
    the bundled model's recorder, the sandbox's example-profile ConfigMap) rolls it back in shadow."""
    scenes = ROOT / "examples" / "monitoring" / "sandbox"
    out = tmp_path / "report"
    result = run_sandbox(tmp_path, "-f", str(scenes / "1-serving.yaml"), "-f", str(scenes / "2-shifted.yaml"), "--fault", "shift=+1.5",
                         "--fast", "--no-live", "--out", str(out), timeout=240)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    first, shifted = json.loads((out / "summary.json").read_text())["scenes"]
    assert first["result"] == "serving"
    drift = {f["feature"]: f["result"] for f in (first["status"].get("monitoring") or {}).get("features", [])}
    assert set(drift) == {"f0", "f1", "f2", "f3", "prediction"}
    assert shifted["result"] == "rolledBack" and shifted["status"]["rolledBack"]["reason"] == "FailedAnalysis"
    predictions = shifted["decision"]["evidence"]["analysis"]["predictions"]
    assert predictions["result"] == "Fail" and predictions["difference"] > 0.1
    assert "evidence: predictions candidate answers differently from stable" in result.stdout
    assert "what users saw: nothing; it answered only mirrored requests" in result.stdout
