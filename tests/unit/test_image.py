"""The operator image: hack/Dockerfile, hack/build-image.sh, and the chart's default image.

There is no container engine where the tests run, so the image is checked without building it:

* the Dockerfile is parsed: a pinned base, a build stage that makes the wheel, a runtime stage
  that copies the result and installs no build tools, a numeric non-root USER (the chart's
  runAsUser), and `headway operator` as the entry point (the chart's command);
* ``hack/build-image.sh --dry-run`` prints the exact build and push commands;
* the default image the script builds is the one the chart runs, and the docs say how to change it;
* the Dockerfile's install steps are replayed outside a container: the files its build stage
  copies are built into a wheel, the wheel goes into a fresh virtualenv with binary-only
  dependencies and no pip or setuptools, and ``headway --help`` and ``headway crd`` run there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from headway.api.crd import build_crd
from tests.support.helm import template

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "hack" / "Dockerfile"
SCRIPT = ROOT / "hack" / "build-image.sh"
CHART = ROOT / "charts" / "headway"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# An exact patch release (python:3.11.13-slim-bookworm) and/or a content digest.
PINNED_TAG = re.compile(r"^[\w.-]+(?:/[\w.-]+)*:\d+\.\d+\.\d+[\w.-]*$")
PINNED_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|clang|cargo|rustc|uv|poetry|apt-get install|apk add)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs declared before the first FROM, with their defaults
    stages: list[Stage]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with comments dropped and backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    return out


def parse_dockerfile(text: str) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def resolve(ref: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], ref)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# the Dockerfile


def test_base_images_are_pinned(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        base = resolve(stage.base, dockerfile.args)
        assert PINNED_TAG.match(base.split("@")[0]) or PINNED_DIGEST.match(base), (
            f"FROM {stage.base} (= {base}) is not pinned to an exact version tag or a digest"
        )
        assert ":latest" not in base


def test_the_pin_is_explained(dockerfile: Dockerfile) -> None:
    text = DOCKERFILE.read_text()
    assert "To bump" in text and "digest" in text


def test_multi_stage_build_makes_a_wheel_and_the_runtime_copies_the_result(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    build, runtime = dockerfile.stages[0], dockerfile.stages[-1]
    assert build.name, "the build stage is named, so the runtime stage can copy from it"
    runs = " && ".join(build.all("RUN"))
    assert re.search(r"pip wheel --no-deps \. -w (\S+)", runs), "the build stage builds the operator's wheel"
    assert re.search(r"pip install [^&]*\.whl", runs), "the package is installed from that wheel"
    copies = runtime.all("COPY")
    assert any(c.startswith(f"--from={build.name} ") for c in copies)
    assert not [c for c in copies if not c.startswith("--from=")], "the runtime stage copies no sources"
    assert resolve(runtime.base, dockerfile.args) == resolve(build.base, dockerfile.args), (
        "the virtualenv is copied between stages: both must have the same Python at the same path"
    )


def test_runtime_stage_has_no_build_tools(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stages[-1]
    for run in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(run), f"RUN {run}"
        assert not re.search(r"pip install", run), f"RUN {run}: the runtime stage installs nothing"
    assert any(re.search(r"pip uninstall -y pip setuptools wheel", run) for run in runtime.all("RUN")), (
        "the base image's packaging tools are removed"
    )
    build_runs = " ".join(dockerfile.stages[0].all("RUN"))
    assert re.search(r"/opt/headway/bin/pip uninstall -y pip setuptools", build_runs), "the copied virtualenv has no pip"


def test_user_is_numeric_non_root_and_the_charts(dockerfile: Dockerfile) -> None:
    users = dockerfile.stages[-1].all("USER")
    assert users, "the runtime stage sets USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER {users[-1]}: numeric, so runAsNonRoot can verify it without /etc/passwd"
    uid, gid = int(match.group(1)), int(match.group(2) or match.group(1))
    assert uid != 0 and gid != 0
    values = chart_values()
    assert (values["securityContext"]["runAsUser"], values["securityContext"]["runAsGroup"]) == (uid, gid)


def test_entrypoint_is_headway_operator_like_the_chart(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stages[-1]
    entrypoints = runtime.all("ENTRYPOINT")
    assert entrypoints, "the runtime stage sets ENTRYPOINT"
    entrypoint = json.loads(entrypoints[-1])  # exec form: signals reach the operator, not a shell
    assert entrypoint == ["headway", "operator"]
    assert not runtime.all("CMD")
    docs = template(CHART, {})
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == entrypoint


# ---------------------------------------------------------------------------------------------
# hack/build-image.sh


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "TAG", "CONTAINER_TOOL", "PYTHON_IMAGE")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env={**clean, "CONTAINER_TOOL": "docker", **env},
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_script_is_valid_bash_and_executable() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)
    assert os.access(SCRIPT, os.X_OK)


def test_dry_run_prints_the_default_build_command() -> None:
    result = run_script("--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"docker build -f hack/Dockerfile -t headway:{VERSION} --label org.opencontainers.image.version={VERSION} ."
    ]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["registry.example.com/headway", "0.2.0", "--push"], {},
            ["docker build -f hack/Dockerfile -t registry.example.com/headway:0.2.0 --label org.opencontainers.image.version=0.2.0 .",
             "docker push registry.example.com/headway:0.2.0"],
        ),
        (
            ["--push", "registry.example.com:5000/team/headway:rc1"], {"CONTAINER_TOOL": "podman"},
            ["podman build -f hack/Dockerfile -t registry.example.com:5000/team/headway:rc1 --label org.opencontainers.image.version=rc1 .",
             "podman push registry.example.com:5000/team/headway:rc1"],
        ),
        (
            ["--platform", "linux/amd64"], {"IMAGE": "ghcr.io/acme/headway", "TAG": "dev", "PYTHON_IMAGE": "python:3.11.13-slim-bookworm@sha256:" + "a" * 64},
            ["docker build -f hack/Dockerfile -t ghcr.io/acme/headway:dev --label org.opencontainers.image.version=dev"
             " --platform linux/amd64 --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:" + "a" * 64 + " ."],
        ),
    ],
    ids=["args-push", "image-with-tag-podman", "env"],
)
def test_dry_run_prints_exact_commands(args: list[str], env: dict[str, str], expected: list[str]) -> None:
    result = run_script("--dry-run", *args, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected
    for line in expected:  # copy-pasteable
        assert shlex.join(shlex.split(line)) == line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--push"], "names no registry"),
        (["Registry.Example.com/Headway"], "invalid IMAGE"),
        (["headway", "bad tag"], "invalid TAG"),
        (["a/b:1", "2"], "the tag is given twice"),
        (["--bogus"], "unknown option"),
    ],
)
def test_script_refuses_bad_input(args: list[str], message: str) -> None:
    result = run_script("--dry-run", *args)
    assert result.returncode == 2 and message in result.stderr, result


# ---------------------------------------------------------------------------------------------
# the chart runs what the script builds by default, and the docs say how to change it


def test_chart_default_image_is_what_the_script_builds() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION, "the chart's default tag (appVersion) is pyproject's version"
    values = chart_values()
    assert values["image"]["tag"] == "", "an empty image.tag follows appVersion"
    built = run_script("--dry-run").stdout.split()
    ref = built[built.index("-t") + 1]
    docs = template(CHART, {})
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == ref == f"{values['image']['repository']}:{VERSION}"


def test_docs_say_how_to_build_push_and_point_the_chart_at_the_image() -> None:
    chart_readme = (CHART / "README.md").read_text()
    section = chart_readme.split("\n## The operator image\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("hack/build-image.sh", "--push", "image.repository", "image.tag", "hack/Dockerfile", f"headway:{VERSION}"):
        assert needle in section, f"charts/headway/README.md, 'The operator image': no {needle!r}"
    readme = (ROOT / "README.md").read_text()
    install = readme.split("\n## Install on a cluster\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("hack/build-image.sh", "--push", "image.repository", "image.tag"):
        assert needle in install, f"README.md, 'Install on a cluster': no {needle!r}"


# ---------------------------------------------------------------------------------------------
# the Dockerfile's install steps, replayed outside a container engine


def _build_stage_sources(dockerfile: Dockerfile) -> list[str]:
    sources = []
    for copy in dockerfile.stages[0].all("COPY"):
        words = [w for w in copy.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build the wheel and make a fresh virtualenv")
def test_install_steps_work_outside_docker(dockerfile: Dockerfile, tmp_path: Path) -> None:
    """What the build stage does, with uv in place of pip: copy exactly the files it copies,
    build the wheel, install it with binary-only dependencies into a virtualenv without pip or
    setuptools (what the runtime stage gets), and run the operator's command line from it."""
    src = tmp_path / "src"
    src.mkdir()
    for source in _build_stage_sources(dockerfile):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / source)

    def sh(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=240, check=False)
        assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
        return result

    dist = tmp_path / "dist"
    sh("uv", "build", "--wheel", "--out-dir", dist, src)
    (wheel,) = dist.glob("headway-*.whl")
    assert wheel.name == f"headway-{VERSION}-py3-none-any.whl"
    venv = tmp_path / "venv"
    sh("uv", "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    sh("uv", "pip", "install", "--quiet", "--python", python, "--only-binary", ":all:", wheel)
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    assert not list(Path(site).glob("pip")) and not list(Path(site).glob("setuptools")), "no packaging tools at run time"

    helped = sh(venv / "bin" / "headway", "--help")
    assert "operator" in helped.stdout and "crd" in helped.stdout
    assert "--prometheus-url" in sh(venv / "bin" / "headway", "operator", "--help").stdout
    crd = yaml.safe_load(sh(venv / "bin" / "headway", "crd").stdout)
    assert crd == build_crd(), "the installed wheel prints the CRD of the sources it was built from"
