"""ModelDeployment manifests against the generated CRD, as the API server would judge them.

* tests/manifests/invalid/*.yaml: one mistake each; the first line ``# expect: <text>`` names
  a substring of the error the API server returns. A ``# known-bug: <why>`` line marks a
  manifest the current CRD wrongly accepts (a strict xfail: fix the CRD, then drop the line).
* tests/manifests/valid/*.yaml and every ModelDeployment in examples/: accepted by the CRD
  *and* parsed by the operator's pydantic model (both views of the API must agree).
* tests/manifests/invalid/*.yaml are refused by the operator's own parser too
  (``parse_spec`` + ``check_spec``), naming the field the API server names: the operator
  never acts on a spec the API server would refuse (it may read specs the server never
  validated: stored before a rule existed, or written by an emulator).
* The generated CRD, and every published third-party CRD in shared/schemas, is structural.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.planning.validation import check_spec, parse_spec
from headway.sandbox.apiserver.crdschema import CrdValidator, assert_structural, iter_cel_rules, load_crd, load_yaml_documents

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modeldeployments.serving.headway.dev.yaml"
MANIFESTS = ROOT / "tests" / "manifests"
EXAMPLES = ROOT / "examples"
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"

INVALID = sorted((MANIFESTS / "invalid").glob("*.yaml"))
VALID = sorted((MANIFESTS / "valid").glob("*.yaml"))
THIRD_PARTY_CRDS = sorted(SHARED_SCHEMAS.rglob("*.yaml")) if SHARED_SCHEMAS.is_dir() else []

_EXPECT = re.compile(r"^#\s*expect:\s*(?P<text>.+?)\s*$")
_KNOWN_BUG = re.compile(r"^#\s*known-bug:\s*(?P<text>.+?)\s*$")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd(CRD_PATH)


def _header(path: Path) -> tuple[str, str | None]:
    """The `# expect:` text and the optional `# known-bug:` reason of an invalid manifest."""
    lines = path.read_text(encoding="utf-8").splitlines()
    expect = _EXPECT.match(lines[0]) if lines else None
    assert expect, f"{path.name}: the first line must be '# expect: <substring of the error>'"
    bug = next((m.group("text") for line in lines[1:] if line.startswith("#") and (m := _KNOWN_BUG.match(line))), None)
    return expect.group("text"), bug


def _single_document(path: Path) -> dict[str, Any]:
    docs = load_yaml_documents(path)
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{path.name}: expected exactly one YAML mapping"
    return docs[0]  # type: ignore[no-any-return]


def _invalid_params() -> list[Any]:
    params = []
    for path in INVALID:
        _, bug = _header(path)
        marks = [pytest.mark.xfail(reason=f"known CRD bug: {bug}", strict=True)] if bug else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _model_deployments(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in paths:
        for i, doc in enumerate(load_yaml_documents(path)):
            if isinstance(doc, dict) and doc.get("kind") == "ModelDeployment":
                found.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return found


def _example_files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


ACCEPTED = _model_deployments(VALID) + _model_deployments(_example_files())


# --- (a) malformed manifests are rejected, with the error users will see ---------------


def test_there_are_enough_invalid_manifests() -> None:
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", _invalid_params())
def test_invalid_manifest_is_rejected(path: Path, crd: dict[str, Any]) -> None:
    expect, _ = _header(path)
    errors = CrdValidator(crd).validate(_single_document(path))
    assert errors, f"{path.name}: accepted, but should fail with {expect!r}"
    assert any(expect in e for e in errors), f"{path.name}: expected an error containing {expect!r}, got:\n  " + "\n  ".join(errors)


# Invalid manifests the operator does not (and need not) refuse itself, and why.
NOT_THE_OPERATORS_BUSINESS = {
    # The API server answers "no matches for kind": such an object is never stored.
    "api-version-v1beta1": "an unserved version never reaches the operator",
    # ObjectMeta is validated by the API server for every kind; the operator reads only spec.
    "name-uppercase": "metadata.name is the API server's business",
    "namespace-uppercase": "metadata.namespace is the API server's business",
    # Strict field validation is kubectl's choice; other clients get unknown fields pruned,
    # so the operator never sees one (its models ignore unknown fields for the same reason).
    "unknown-field-replica": "unknown fields are pruned before the operator reads the spec",
}


def _crd_fields(errors: list[str]) -> list[str]:
    """The fields the API server names: the text before ': ' of each error that names one."""
    return [e.split(": ", 1)[0] for e in errors if ": " in e and e.startswith(("spec", "metadata"))]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_is_refused_by_the_operator_too(path: Path, crd: dict[str, Any]) -> None:
    """What the CRD refuses, the operator refuses before it writes anything, naming the same field."""
    doc = _single_document(path)
    if path.stem in NOT_THE_OPERATORS_BUSINESS:
        pytest.skip(NOT_THE_OPERATORS_BUSINESS[path.stem])
    crd_fields = _crd_fields(CrdValidator(crd).validate(doc))
    assert crd_fields, f"{path.name}: the CRD names no field; list it in NOT_THE_OPERATORS_BUSINESS with the reason"
    spec, problems = parse_spec(doc.get("spec"))
    if spec is not None:
        problems = check_spec(doc["metadata"]["name"], spec)
    assert problems, f"{path.name}: the operator accepts what the API server refuses ({crd_fields[0]})"
    named = {p.field for p in problems}
    assert crd_fields[0] in named, f"{path.name}: the API server names {crd_fields[0]}, the operator: " + "; ".join(map(str, problems))


def test_every_cel_rule_of_our_crd_evaluates_and_is_exercised(crd: dict[str, Any]) -> None:
    """Each of our rules runs without a library gap, passes on the valid manifests, and is
    violated by at least one invalid manifest (so every rule is covered by a test)."""
    validator = CrdValidator(crd)
    for _, doc in ACCEPTED:
        validator.validate(doc)
    for path in INVALID:
        validator.validate(_single_document(path))
    schema = validator.schema("v1alpha1")
    rules = [(where, rule["rule"].strip()) for where, rule in iter_cel_rules(schema)]
    assert rules, "the CRD has no CEL rules?"
    problems = []
    for where, rule in rules:
        stats = validator.cel_stats.get(rule)
        if stats is None or stats.evaluated == 0:
            problems.append(f"{where}: never evaluated: {rule}")
        elif stats.gaps:
            problems.append(f"{where}: {stats.gaps[0]}")
        elif stats.failed == 0:
            problems.append(f"{where}: no invalid manifest violates: {rule}")
    assert not problems, "\n".join(problems)


# --- (b) good manifests are accepted by the schema and by the operator -------------------


def test_there_are_valid_manifests() -> None:
    assert len(_model_deployments(VALID)) >= 3


@pytest.mark.parametrize(("where", "doc"), ACCEPTED, ids=[where for where, _ in ACCEPTED])
def test_valid_manifest_is_accepted_by_schema_and_model(where: str, doc: dict[str, Any], crd: dict[str, Any]) -> None:
    errors = CrdValidator(crd).validate(doc)
    assert errors == [], f"{where}: rejected by the CRD:\n  " + "\n  ".join(errors)
    spec = ModelDeploymentSpec.model_validate(doc["spec"])
    # ... and by the operator's own checks: a valid example is applied, not reported.
    assert check_spec(doc["metadata"]["name"], spec) == [], where


def test_pydantic_and_schema_agree_on_defaults(crd: dict[str, Any]) -> None:
    """What the API server stores (defaults applied) parses to the same spec as the raw manifest."""
    validator = CrdValidator(crd)
    for where, doc in ACCEPTED:
        stored = validator.apply_defaults(doc)
        assert ModelDeploymentSpec.model_validate(stored["spec"]) == ModelDeploymentSpec.model_validate(doc["spec"]), where


# --- (c) the CRDs are structural ---------------------------------------------------------


def test_generated_crd_is_structural(crd: dict[str, Any]) -> None:
    assert_structural(crd)


@pytest.mark.skipif(not THIRD_PARTY_CRDS, reason="shared/schemas is not beside the repository")
@pytest.mark.parametrize("path", THIRD_PARTY_CRDS, ids=[p.name for p in THIRD_PARTY_CRDS])
def test_published_crds_pass_the_structural_check(path: Path) -> None:
    """Real, accepted CRDs must pass: this keeps assert_structural from being too strict."""
    assert_structural(load_crd(path))
