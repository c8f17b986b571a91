"""Fault specs as typed on the command line, the fault middleware, and faults in a user's service.

The last test serves a small user service (written to a temp dir) through the fault
wrapper with a real ``bentoml serve`` and checks that BentoML's own metrics count the
injected 500s and delays, as the verdicts read them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from headway.sandbox.faults import (
    DELAY_FRACTION_VAR,
    DELAY_MS_VAR,
    ERROR_RATE_VAR,
    SEED_VAR,
    TARGET_VAR,
    FaultMiddleware,
    FaultSpec,
    parse_fault_spec,
)
from headway.sandbox.processes import EXAMPLE_SERVICE, FAULT_WRAPPER, BentoServer, parse_samples


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("errors=5%", FaultSpec(error_rate=0.05)),
    ("latency=+300ms@10%", FaultSpec(delay_ms=300, delay_fraction=0.1)),
    ("errors=5%,latency=+300ms@10%", FaultSpec(error_rate=0.05, delay_ms=300, delay_fraction=0.1)),
    (" errors = 5% , latency = +300ms @ 10% ", FaultSpec(error_rate=0.05, delay_ms=300, delay_fraction=0.1)),
    ("latency=300ms", FaultSpec(delay_ms=300)),
    ("latency=+1.5s@50%", FaultSpec(delay_ms=1500, delay_fraction=0.5)),
    ("errors=0.5%", FaultSpec(error_rate=0.005)),
    ("errors=100%", FaultSpec(error_rate=1.0)),
    ("errors=0%", FaultSpec()),
    ("ERRORS=5%", FaultSpec(error_rate=0.05)),
    ("delay=+20ms", FaultSpec(delay_ms=20)),
    ("errors=5%,seed=7", FaultSpec(error_rate=0.05, seed=7)),
    ("shift=+1.5", FaultSpec(shift=1.5)),
    ("errors=1%,shift=-0.5", FaultSpec(error_rate=0.01, shift=-0.5)),
    ("none", FaultSpec()),
])
def test_parse_good_specs(text: str, expected: FaultSpec) -> None:
    spec = FaultSpec.parse(text)
    assert spec == expected
    assert parse_fault_spec(text) == spec
    assert FaultSpec.parse(str(spec)) == spec  # str() is the command-line form


@pytest.mark.parametrize(("text", "message"), [
    ("latency=+300ms@150%", "latency=+300ms@150%: the share after @ must be a percentage between 0 and 100"),
    ("latency=+300ms@ten", "latency=+300ms@ten: the share after @ must be a percentage"),
    ("latency=+300ms@", "latency=+300ms@: the share after @ must be a percentage"),
    ("latency=+300", "latency=+300: the added latency must be a duration such as +300ms"),
    ("latency=fast", "latency=fast: the added latency must be a duration"),
    ("latency=-300ms", "latency=-300ms: the added latency must be a duration"),
    ("latency=+700s", "latency=+700s: the added latency must be at most 600s"),
    ("errors=5", "errors=5: the error share must be a percentage such as 5%"),
    ("errors=0.05", "errors=0.05: the error share must be a percentage such as 5%"),
    ("errors=150%", "errors=150%: the error share must be a percentage between 0 and 100"),
    ("errors=-5%", "errors=-5%: the error share must be a percentage such as 5%"),
    ("errors=5%,latency=+300ms@150%", "latency=+300ms@150%: the share after @"),
    ("errors=5%,bogus=3", "bogus=3: unknown fault 'bogus'"),
    ("errors", "errors: expected NAME=VALUE"),
    ("=5%", "=5%: expected NAME=VALUE"),
    ("errors=5%,,latency=+1ms", "empty part between commas"),
    ("errors=5%,errors=6%", "errors=6%: errors given twice"),
    ("seed=x", "seed=x: the seed must be a whole number"),
    ("shift=lots", "shift=lots: the shift is a number of logits"),
    ("shift=+25", "shift=+25: the shift must be between -20 and +20 logits"),
    ("", "empty fault spec"),
    ("   ", "empty fault spec"),
])
def test_parse_bad_specs_name_the_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        FaultSpec.parse(text)
    assert message in str(info.value), str(info.value)


def test_env_round_trip() -> None:
    spec = FaultSpec.parse("errors=5%,latency=+300ms@10%,seed=3")
    env = spec.to_env()
    assert env == {ERROR_RATE_VAR: "0.05", DELAY_MS_VAR: "300", DELAY_FRACTION_VAR: "0.1", SEED_VAR: "3"}
    assert FaultSpec.from_env(env) == spec
    assert FaultSpec().to_env() == {} and FaultSpec.from_env({}) == FaultSpec()
    assert FaultSpec.parse("latency=+300ms").to_env() == {DELAY_MS_VAR: "300"}  # share 100 %: the default
    shifted = FaultSpec.parse("shift=+1.5")
    assert shifted.to_env() == {"HEADWAY_FAULT_SHIFT": "1.5"} and FaultSpec.from_env(shifted.to_env()) == shifted
    assert shifted and str(shifted) == "shift=+1.5" and FaultSpec.parse(str(shifted)) == shifted
    assert not FaultSpec() and not FaultSpec(delay_fraction=0.5) and FaultSpec(error_rate=0.01) and FaultSpec(delay_ms=1)


@pytest.mark.parametrize(("env", "message"), [
    ({ERROR_RATE_VAR: "1.5"}, "HEADWAY_FAULT_ERROR_RATE=1.5 is not a fraction"),
    ({DELAY_FRACTION_VAR: "-0.1"}, "HEADWAY_FAULT_DELAY_FRACTION=-0.1 is not a fraction"),
    ({DELAY_MS_VAR: "soon"}, "HEADWAY_FAULT_DELAY_MS='soon' is not a number"),
    ({DELAY_MS_VAR: "nan"}, "HEADWAY_FAULT_DELAY_MS='nan' is not a finite number"),
    ({SEED_VAR: "1.5"}, "HEADWAY_FAULT_SEED='1.5' is not a whole number"),
])
def test_bad_env_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        FaultSpec.from_env(env)


def test_bento_server_validates_behaviour_and_picks_what_to_serve(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown behaviour variables"):
        BentoServer({"HEADWAY_FAULT_ERRORS": "0.1"}, workdir=tmp_path / "a")
    with pytest.raises(ValueError, match="HEADWAY_FAULT_ERROR_RATE=2.0 is not a fraction"):
        BentoServer({ERROR_RATE_VAR: "2"}, workdir=tmp_path / "b")

    example = BentoServer(FaultSpec(error_rate=0.1), workdir=tmp_path / "c")  # the example reads the variables itself
    args, env, _ = example.command()
    assert args[args.index("serve") + 1] == EXAMPLE_SERVICE and env[ERROR_RATE_VAR] == "0.1" and TARGET_VAR not in env

    plain = BentoServer({}, workdir=tmp_path / "d", service="svc:Model", working_dir=tmp_path)  # no faults: as it is
    args, env, cwd = plain.command()
    assert args[args.index("serve") + 1] == "svc:Model" and TARGET_VAR not in env and cwd == tmp_path.resolve()

    wrapped = BentoServer(FaultSpec(delay_ms=50), workdir=tmp_path / "e", service="svc:Model", working_dir=tmp_path)
    args, env, _ = wrapped.command()
    assert wrapped.wrapped and args[args.index("serve") + 1] == FAULT_WRAPPER
    assert env[TARGET_VAR] == "svc:Model" and env[DELAY_MS_VAR] == "50"
    assert args[args.index("--working-dir") + 1] == str(tmp_path.resolve())


# -- the middleware, without a server -------------------------------------------------------------
async def _call(app: Any, path: str, method: str = "POST", kind: str = "http") -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": kind, "path": path, "method": method}, receive, send)
    return int(sent[0]["status"]) if sent else 0


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_middleware_faults_api_paths_only_and_reproducibly() -> None:
    spec = FaultSpec(error_rate=0.3, delay_ms=1, delay_fraction=0.5, seed=4)
    first, second = FaultMiddleware(_ok, spec, ["/predict"]), FaultMiddleware(_ok, spec, ["/predict"])
    codes = [await _call(first, "/predict") for _ in range(200)]
    assert codes == [await _call(second, "/predict") for _ in range(200)]  # same seed, same sequence
    assert set(codes) == {200, 500} and 40 <= codes.count(500) <= 80
    assert first.injected_errors == codes.count(500) and 70 <= first.injected_delays <= 130
    assert {await _call(first, p) for p in ("/livez", "/readyz", "/metrics", "/docs")} == {200}
    assert await _call(first, "/predict/") in (200, 500)  # a trailing slash is the same route
    quiet = FaultMiddleware(_ok, FaultSpec(), ["/predict"])
    assert {await _call(quiet, "/predict") for _ in range(20)} == {200}
    anything = FaultMiddleware(_ok, FaultSpec(error_rate=1.0))  # no paths: every POST
    assert await _call(anything, "/x") == 500 and await _call(anything, "/x", method="GET") == 200


async def test_middleware_delays_before_answering() -> None:
    slow = FaultMiddleware(_ok, FaultSpec(delay_ms=120), ["/predict"])
    started = time.monotonic()
    assert await asyncio.wait_for(_call(slow, "/predict"), 5) == 200
    assert time.monotonic() - started >= 0.11


# -- a user's service behind the wrapper, really served ------------------------------------------
USER_SERVICE = '''
import bentoml


@bentoml.service(name="user_echo", workers=1, logging={"access": {"enabled": False}})
class Echo:
    @bentoml.api
    def predict(self, x: float) -> float:
        return 2 * x
'''


@pytest.mark.realparts
def test_faults_in_a_user_service_are_counted_by_bentoml_metrics(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "user_echo_service.py").write_text(textwrap.dedent(USER_SERVICE))
    delay_ms = 250
    server = BentoServer(FaultSpec.parse(f"errors=30%,latency=+{delay_ms}ms@40%,seed=5"), workdir=tmp_path / "server",
                         label="user", service="user_echo_service:Echo", working_dir=project)
    assert server.wrapped
    try:
        server.start(timeout=90)  # /readyz is not faulted, or this could fail
        codes, slow = [], 0
        for i in range(60):
            started = time.monotonic()
            response = server.post("/predict", {"x": i})
            slow += time.monotonic() - started >= delay_ms / 1000.0
            codes.append(response.status_code)
            if response.status_code == 200:
                assert response.json() == 2 * i  # the user's own handler answered
            else:
                assert "injected failure" in response.text
        errors = codes.count(500)
        assert set(codes) == {200, 500} and 8 <= errors <= 32 and 10 <= slow <= 40, (codes, slow)

        text = server.metrics_text()
        totals = {(labels["endpoint"], labels["http_response_code"]): value
                  for labels, value in parse_samples(text, "bentoml_service_request_total")}
        assert totals[("/predict", "500")] == errors and totals[("/predict", "200")] == 60 - errors
        assert {labels["service_name"] for labels, _ in parse_samples(text, "bentoml_service_request_total")} == {"user_echo"}

        buckets: dict[float, float] = {}  # summed over the other labels (http_response_code)
        for labels, value in parse_samples(text, "bentoml_service_request_duration_seconds_bucket"):
            if labels["endpoint"] == "/predict":
                buckets[float(labels["le"])] = buckets.get(float(labels["le"]), 0.0) + value
        count = sum(v for labels, v in parse_samples(text, "bentoml_service_request_duration_seconds_count")
                    if labels["endpoint"] == "/predict")
        assert count == 60
        # Slower than the delay on the server: every delayed call (and a call slower than that on the
        # server is slower still at the client, so never more than the client saw). A busy machine can
        # slow an undelayed call at the client, hence a small margin the other way.
        server_slow = count - buckets[delay_ms / 1000.0]
        assert 10 <= server_slow <= slow and slow - server_slow <= 3, (buckets, slow)
    finally:
        server.stop()
    assert not server.running()



def build_bento(project: Path, home: Path) -> Path:
    """``bentoml build`` of USER_SERVICE in ``project`` into the store ``home``: the bento's directory."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "user_echo_service.py").write_text(textwrap.dedent(USER_SERVICE))
    (project / "bentofile.yaml").write_text('service: "user_echo_service:Echo"\ninclude: ["user_echo_service.py"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENTOML_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true")
    bentoml_cli = [str(Path(sys.executable).with_name("bentoml"))]
    subprocess.run([*bentoml_cli, "build", "."], cwd=project, env=env, check=True, capture_output=True, timeout=180)
    (path,) = [p for p in (home / "bentos" / "user_echo").iterdir() if (p / "bento.yaml").is_file()]
    return path


@pytest.mark.realparts
def test_a_built_bento_is_served_as_it_is_and_with_faults(tmp_path: Path) -> None:
    """``--service <bento directory>``: the built bento answers with the user's handler, and the
    fault wrapper loads the same directory and faults it."""
    bento = build_bento(tmp_path / "project", tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"  # not the project: the bento carries its own source
    elsewhere.mkdir()
    for faults, expect_errors in ((None, False), (FaultSpec.parse("errors=50%,seed=3"), True)):
        server = BentoServer(faults, workdir=tmp_path / "server", label="bento", service=str(bento), working_dir=elsewhere)
        assert server.wrapped == expect_errors
        try:
            server.start(timeout=90)
            responses = [server.post("/predict", {"x": i}) for i in range(30)]
        finally:
            server.stop()
        answered = [(i, r.json()) for i, r in enumerate(responses) if r.status_code == 200]
        assert all(value == 2 * i for i, value in answered) and answered
        errors = sum(r.status_code == 500 for r in responses)
        assert (5 <= errors <= 25) if expect_errors else errors == 0, [r.status_code for r in responses]


# -- what the data plane serves for a Deployment -------------------------------------------------
def _deployment(name: str, image: str, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": {}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"headway.dev/revision": "r1"}},
                                                 "spec": {"containers": [{"name": "bentoml", "image": image, "env": env or []}]}}}}


def test_dataplane_behaviour_and_service_per_deployment() -> None:
    from headway.sandbox.dataplane import DataPlane

    plane = DataPlane(None, "ns", {"img:v2": {ERROR_RATE_VAR: "0.3"}}, default_behaviour=FaultSpec(delay_ms=5),  # type: ignore[arg-type]
                      deployment_behaviours={"md-candidate": FaultSpec.parse("errors=5%")},
                      services={"md-stable": "mine:Other"}, service="mine:Model")
    key, image, _ = plane._desired(_deployment("md-candidate", "img:v2"))
    assert key is not None and dict(key[3]) == {ERROR_RATE_VAR: "0.05"} and key[4] == "mine:Model"  # the Deployment's wins
    key, _, _ = plane._desired(_deployment("md-stable", "img:v2"))
    assert key is not None and dict(key[3]) == {ERROR_RATE_VAR: "0.3"} and key[4] == "mine:Other"  # the image's
    key, _, _ = plane._desired(_deployment("md-other", "img:v1", [{"name": SEED_VAR, "value": "9"}]))
    assert key is not None and dict(key[3]) == {DELAY_MS_VAR: "5", SEED_VAR: "9"}  # default + the container's env

    before, _, _ = plane._desired(_deployment("md-candidate", "img:v2"))
    plane.set_behaviour("md-candidate", FaultSpec.parse("latency=+300ms@10%"))
    plane.set_service("md-candidate", "mine:Better")
    after, _, _ = plane._desired(_deployment("md-candidate", "img:v2"))
    assert after != before and dict(after[3]) == {DELAY_MS_VAR: "300", DELAY_FRACTION_VAR: "0.1"} and after[4] == "mine:Better"
    plane.set_behaviour("md-candidate", None)
    plane.set_service("md-candidate", None)
    back, _, _ = plane._desired(_deployment("md-candidate", "img:v2"))
    assert back is not None and dict(back[3]) == {ERROR_RATE_VAR: "0.3"} and back[4] == "mine:Model"
    with pytest.raises(ValueError, match="unknown behaviour variables"):
        plane.set_behaviour("md-candidate", {"HEADWAY_FAULT_ERRORS": "1"})
    with pytest.raises(ValueError, match="is not a fraction"):
        DataPlane(None, "ns", {"img": {ERROR_RATE_VAR: "5"}})  # type: ignore[arg-type]


def test_the_data_plane_passes_the_containers_env_resolved_as_the_kubelet_does() -> None:
    """spec.model.env reaches the model server: values, and ConfigMap or Secret keys (what a
    recorder's HEADWAY_PROFILE_JSON needs); a missing key keeps the pod from starting."""
    import base64

    from headway.sandbox.dataplane import DataPlane

    class Objects:
        def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
            assert namespace == "ns"
            return {("configmaps", "profile"): {"data": {"profile.json": '{"version": 1}'}},
                    ("secrets", "token"): {"data": {"t": base64.b64encode(b"s3cret").decode()}}}.get((kind.plural, name))

    plane = DataPlane(Objects(), "ns", {})  # type: ignore[arg-type]
    env = [{"name": "MODE", "value": "fast"}, {"name": "BENTOML_HOME", "value": "/home/bentoml"}, {"name": "HF_HOME", "value": "/tmp/hf"},
           {"name": "HEADWAY_PROFILE_JSON", "valueFrom": {"configMapKeyRef": {"name": "profile", "key": "profile.json"}}},
           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}},
           {"name": "EXTRA", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}}}]
    key, _, _ = plane._desired(_deployment("md-stable", "img:v1", env))  # type: ignore[arg-type]
    assert key is not None and dict(key[5]) == {"MODE": "fast", "HEADWAY_PROFILE_JSON": '{"version": 1}', "TOKEN": "s3cret"}
    missing = _deployment("md-stable", "img:v1", [{"name": "P", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x"}}}])  # type: ignore[list-item]
    assert plane._desired(missing)[0] is None and not plane.serves_template(missing)
    server = BentoServer(None, label="x", env=dict(key[5]))
    try:
        args, server_env, _ = server.command()
        assert server_env["HEADWAY_PROFILE_JSON"] == '{"version": 1}' and server_env["MODE"] == "fast"
        assert server_env["BENTOML_HOME"] != "/home/bentoml"  # the container's paths are not this machine's
    finally:
        server.stop()
