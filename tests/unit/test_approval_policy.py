"""ModelApproval: its model, its CRD, and the admission policy that vouches for the approver.

The chart is rendered by Helm's own engine (as tests/unit/test_chart.py does); the policy's CEL
expressions are then evaluated with ``common-expression-language`` (the library the project's
CRD validator uses, operator/headway/sandbox/apiserver/crdschema.py) against the variables a
kube-apiserver gives a ValidatingAdmissionPolicy: ``request`` (operation, userInfo), ``object``,
``oldObject`` and ``params`` (the roles ConfigMap as stored), plus the policy's ``variables``.

CEL functions: the policy uses ``split``, ``trim`` and ``join`` from cel-go's extended strings
library (github.com/google/cel-go/ext, ``ext.Strings``), which every Kubernetes CEL environment
includes (k8s.io/apiserver/pkg/cel/environment/base.go; "Kubernetes CEL libraries" in
https://kubernetes.io/docs/reference/using-api/cel/). The Rust-based library lacks them; the
project's implementations (crdschema.K8S_CEL_FUNCTIONS, written to ext.Strings' definitions) are
registered, and a test pins that the policy needs nothing else.

What a real API server does that is simulated here: it evaluates every validation and reports the
first failed one ("ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request:
<message>"); a messageExpression that fails or yields an empty string falls back to ``message``;
an expression that errors denies the request (failurePolicy Fail). docs/governance.md says how to
try the same policy on a real API server (Kubernetes 1.30+).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml
from kubernetes import client
from pydantic import ValidationError

import headway
from headway.api import approval
from headway.api.approval import ModelApproval, ModelApprovalSpec
from headway.api.serving import ModelSpec
from headway.planning.naming import revision_of
from headway.sandbox.apiserver.crdschema import K8S_CEL_FUNCTIONS, CrdValidator, assert_structural, load_crd
from tests.support.helm import template

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "headway"
CRD_PATH = ROOT / "crds" / f"{approval.CRD_NAME}.yaml"

ROLES = {"ml-lead": ["ml-leads"], "risk": ["risk-officers", "cro-office"]}
VALUES = {"governance": {"roles": ROLES}}
NAMESPACE = "ml"
REVISION = "3f9a0c1b2d"
DIGEST = "9b" * 32

# Named functions the CEL standard library and its macros provide (cel-go and the Rust crate alike).
STANDARD = {"has", "size", "exists", "all", "map", "filter", "contains", "startsWith", "endsWith", "matches", "string", "int"}
# ext.Strings, in every Kubernetes CEL environment; implemented for the library in crdschema.
EXT_STRINGS = {"split", "trim", "join"}


# ---------------------------------------------------------------------------------------------
# the rendered chart


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return template(CHART, VALUES)


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(docs, "ValidatingAdmissionPolicy")


@pytest.fixture(scope="module")
def binding(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(docs, "ValidatingAdmissionPolicyBinding")


@pytest.fixture(scope="module")
def params(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return stored(_one(docs, "ConfigMap"))


def stored(configmap: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap as the API server stores and hands it to the policy: a null or empty
    ``data`` is absent (Go's omitempty), metadata as given."""
    out = copy.deepcopy(configmap)
    if not out.get("data"):
        out.pop("data", None)
    return out


# ---------------------------------------------------------------------------------------------
# a small ValidatingAdmissionPolicy evaluator


def _evaluate(expression: str, variables: dict[str, Any]) -> Any:
    context = cel.Context(variables=variables, functions=K8S_CEL_FUNCTIONS)
    return cel.compile(expression).execute(context)


def _matches(policy: dict[str, Any], operation: str) -> bool:
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    return any(
        operation in r["operations"]
        and headway.GROUP in r["apiGroups"]
        and headway.VERSION in r["apiVersions"]
        and approval.PLURAL in r["resources"]
        for r in rules
    )


def denials(
    policy: dict[str, Any],
    params: dict[str, Any],
    *,
    operation: str = "CREATE",
    username: str = "alice",
    groups: list[str] | None = None,
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> list[str]:
    """The messages of every failed validation, in the policy's order ([] = admitted)."""
    if not _matches(policy, operation):
        return []
    user: dict[str, Any] = {"username": username, "uid": "0b9c"}
    if groups:  # the request omits an empty list (omitempty)
        user["groups"] = groups
    request = {
        "operation": operation,
        "userInfo": user,
        "namespace": NAMESPACE,
        "name": (obj or old or {}).get("metadata", {}).get("name", ""),
        "kind": {"group": headway.GROUP, "version": headway.VERSION, "kind": approval.KIND},
        "resource": {"group": headway.GROUP, "version": headway.VERSION, "resource": approval.PLURAL},
    }
    env: dict[str, Any] = {"request": request, "object": obj, "oldObject": old, "params": params, "variables": {}}
    for variable in policy["spec"].get("variables", []):
        env["variables"] = {**env["variables"], variable["name"]: _evaluate(variable["expression"], env)}
    failed = []
    for validation in policy["spec"]["validations"]:
        try:
            result = _evaluate(validation["expression"], env)
        except Exception as exc:  # noqa: BLE001 - failurePolicy Fail: an error denies
            failed.append(f"expression '{validation['expression']}' resulted in error: {exc}")
            continue
        assert isinstance(result, bool), validation["expression"]
        if result:
            continue
        message = ""
        if "messageExpression" in validation:
            try:
                message = str(_evaluate(validation["messageExpression"], env)).strip()
            except Exception:  # noqa: BLE001 - the server falls back to message
                message = ""
        failed.append(message or validation.get("message") or f"failed expression: {validation['expression']}")
    return failed


def denial(policy: dict[str, Any], binding: dict[str, Any], params: dict[str, Any], **request: Any) -> str | None:
    """What kubectl shows after "is forbidden: " (the first failed validation), or None."""
    failed = denials(policy, params, **request)
    if not failed:
        return None
    name = policy["metadata"]["name"]
    return f"ValidatingAdmissionPolicy '{name}' with binding '{binding['metadata']['name']}' denied request: {failed[0]}"


def approval_object(
    *, approver: str = "alice", role: str = "ml-lead", decision: str = "approve", comment: str | None = None, name: str = "fraud-scorer-3f9a0c1b2d-ml-lead"
) -> dict[str, Any]:
    spec = {
        "modelDeployment": "fraud-scorer",
        "revision": REVISION,
        "evidenceDigest": DIGEST,
        "role": role,
        "approver": approver,
        "decision": decision,
    }
    if comment is not None:
        spec["comment"] = comment
    return {
        "apiVersion": f"{headway.GROUP}/{headway.VERSION}",
        "kind": approval.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": "7d1e", "creationTimestamp": "2026-11-29T10:00:00Z"},
        "spec": spec,
    }


# ---------------------------------------------------------------------------------------------
# who may approve


def test_the_right_user_in_the_right_group_is_admitted(policy: dict[str, Any], params: dict[str, Any]) -> None:
    assert denials(policy, params, username="alice", groups=["ml-leads", "system:authenticated"], obj=approval_object()) == []
    # Any group of the role will do (risk: risk-officers or cro-office), and so will a rejection.
    risk = approval_object(approver="carol", role="risk", decision="reject", comment="PSI too high on income")
    assert denials(policy, params, username="carol", groups=["system:authenticated", "cro-office"], obj=risk) == []


def test_a_forged_approver_is_denied_with_the_message(policy: dict[str, Any], binding: dict[str, Any], params: dict[str, Any]) -> None:
    # alice is an ml-lead, but signs as bob.
    forged = approval_object(approver="bob")
    assert denials(policy, params, username="alice", groups=["ml-leads"], obj=forged) == [
        "approver must be the requesting user (alice), not bob"
    ]
    assert denial(policy, binding, params, username="alice", groups=["ml-leads"], obj=forged) == (
        "ValidatingAdmissionPolicy 'headway-approvals' with binding 'headway-approvals' denied request: "
        "approver must be the requesting user (alice), not bob"
    )


def test_a_user_outside_the_roles_groups_is_denied(policy: dict[str, Any], params: dict[str, Any]) -> None:
    # alice is an ml-lead, not a risk officer.
    obj = approval_object(role="risk")
    assert denials(policy, params, username="alice", groups=["ml-leads", "system:authenticated"], obj=obj) == [
        "alice is not in a group of role risk (risk-officers, cro-office)"
    ]
    # No groups at all (the request then has no groups field): denied, not an error.
    assert denials(policy, params, username="alice", groups=None, obj=obj) == [
        "alice is not in a group of role risk (risk-officers, cro-office)"
    ]


def test_group_membership_is_exact_not_a_substring(policy: dict[str, Any], params: dict[str, Any]) -> None:
    obj = approval_object(role="risk")
    for groups in (["risk"], ["risk-officers-readonly"], ["officers"], ["risk-officers,cro-office"], ["Risk-Officers"]):
        assert denials(policy, params, groups=groups, obj=obj) == ["alice is not in a group of role risk (risk-officers, cro-office)"], groups


def test_an_unknown_role_is_denied(policy: dict[str, Any], params: dict[str, Any]) -> None:
    obj = approval_object(role="auditor")
    assert denials(policy, params, groups=["ml-leads", "auditors"], obj=obj) == [
        "role auditor is not a governance role: ConfigMap headway-system/headway-approval-roles maps no groups to it"
    ]


def test_no_roles_configured_denies_every_approval(policy: dict[str, Any]) -> None:
    """governance.roles empty (the default): the ConfigMap has no data; nothing is admitted, without errors."""
    empty = stored(_one(template(CHART), "ConfigMap"))
    assert "data" not in empty
    assert denials(policy, empty, groups=["ml-leads"], obj=approval_object()) == [
        "role ml-lead is not a governance role: ConfigMap headway-system/headway-approval-roles maps no groups to it"
    ]


def test_a_forged_approver_outside_the_role_reads_the_approver_first(
    policy: dict[str, Any], binding: dict[str, Any], params: dict[str, Any]
) -> None:
    """The server reports the first failed validation: identity before role."""
    obj = approval_object(approver="bob", role="risk")
    assert denials(policy, params, groups=["ml-leads"], obj=obj) == [
        "approver must be the requesting user (alice), not bob",
        "alice is not in a group of role risk (risk-officers, cro-office)",
    ]
    message = denial(policy, binding, params, groups=["ml-leads"], obj=obj)
    assert message is not None and message.endswith("approver must be the requesting user (alice), not bob")


def test_a_hand_edited_configmap_with_spaces_still_matches(policy: dict[str, Any], params: dict[str, Any]) -> None:
    edited = copy.deepcopy(params)
    edited["data"]["risk"] = " risk-officers , cro-office,,"
    obj = approval_object(role="risk")
    assert denials(policy, edited, groups=["cro-office"], obj=obj) == []
    assert denials(policy, edited, groups=["ml-leads"], obj=obj) == ["alice is not in a group of role risk (risk-officers, cro-office)"]


def test_a_service_account_cannot_approve_for_a_person(policy: dict[str, Any], params: dict[str, Any]) -> None:
    """A GitOps controller applying an approval from git is the requester, not the approver named in it."""
    sa = "system:serviceaccount:argocd:argocd-application-controller"
    failed = denials(policy, params, username=sa, groups=["system:serviceaccounts", "ml-leads"], obj=approval_object())
    assert failed == [f"approver must be the requesting user ({sa}), not alice"]


# ---------------------------------------------------------------------------------------------
# immutability


def test_an_update_changing_spec_is_denied(policy: dict[str, Any], params: dict[str, Any]) -> None:
    old = approval_object(decision="reject")
    new = approval_object(decision="approve")
    # Even by the approver themself, in the right group.
    assert denials(policy, params, operation="UPDATE", groups=["ml-leads"], obj=new, old=old) == [
        "the spec of a ModelApproval is immutable: create a new ModelApproval instead"
    ]
    commented = approval_object(comment="on second thought")
    assert denials(policy, params, operation="UPDATE", groups=["ml-leads"], obj=commented, old=approval_object()) != []


def test_an_update_of_metadata_only_is_admitted(policy: dict[str, Any], params: dict[str, Any]) -> None:
    """Labels, annotations, finalizers: anyone RBAC lets (e.g. the operator) may set them; spec stays."""
    old = approval_object()
    new = approval_object()
    new["metadata"]["labels"] = {"headway.dev/revision": REVISION}
    new["metadata"]["finalizers"] = ["headway.dev/approval"]
    operator = "system:serviceaccount:headway-system:headway"
    assert denials(policy, params, operation="UPDATE", username=operator, groups=["system:serviceaccounts"], obj=new, old=old) == []


def test_delete_is_left_to_rbac(policy: dict[str, Any], params: dict[str, Any]) -> None:
    assert not _matches(policy, "DELETE") and not _matches(policy, "CONNECT")
    assert _matches(policy, "CREATE") and _matches(policy, "UPDATE")


# ---------------------------------------------------------------------------------------------
# the policy's shape


def test_policy_binding_and_params_fit_together(policy: dict[str, Any], binding: dict[str, Any], params: dict[str, Any]) -> None:
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": [headway.GROUP],
        "apiVersions": [headway.VERSION],
        "operations": ["CREATE", "UPDATE"],
        "resources": [approval.PLURAL],
    }
    assert all(v["reason"] == "Forbidden" for v in spec["validations"])
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["paramRef"] == {
        "name": params["metadata"]["name"],
        "namespace": params["metadata"]["namespace"],
        "parameterNotFoundAction": "Deny",  # the ConfigMap deleted: every approval refused
    }
    assert "matchResources" not in binding["spec"]  # cluster mode: every namespace


def test_params_are_the_roles_comma_joined(params: dict[str, Any]) -> None:
    assert params["metadata"] == {**params["metadata"], "name": "headway-approval-roles", "namespace": "headway-system"}
    assert params["data"] == {"ml-lead": "ml-leads", "risk": "risk-officers,cro-office"}


def test_namespaced_mode_binds_the_watched_namespaces_only() -> None:
    docs = template(CHART, {**VALUES, "watchNamespaces": ["team-a", "team-b"]})
    selector = _one(docs, "ValidatingAdmissionPolicyBinding")["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}
    assert _one(docs, "ConfigMap")["metadata"]["namespace"] == "headway-system"


def test_the_policy_can_be_switched_off() -> None:
    docs = template(CHART, {"governance": {"approvalPolicy": {"enabled": False}}})
    assert not {d["kind"] for d in docs} & {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap"}


def test_rendered_objects_validate_with_kubernetes_client_models(docs: list[dict[str, Any]]) -> None:
    client.V1ValidatingAdmissionPolicy.model_validate(_one(docs, "ValidatingAdmissionPolicy"))
    client.V1ValidatingAdmissionPolicyBinding.model_validate(_one(docs, "ValidatingAdmissionPolicyBinding"))
    client.V1ConfigMap.model_validate(_one(docs, "ConfigMap"))
    broken = copy.deepcopy(_one(docs, "ValidatingAdmissionPolicyBinding"))
    broken["spec"]["paramRef"]["parameterNotFound"] = "Deny"
    with pytest.raises(ValueError, match="parameterNotFound"):
        client.V1ValidatingAdmissionPolicyBinding.model_validate(broken)


def test_every_expression_uses_only_functions_kubernetes_has(policy: dict[str, Any]) -> None:
    spec = policy["spec"]
    expressions = [v["expression"] for v in spec["variables"]]
    for validation in spec["validations"]:
        expressions.append(validation["expression"])
        if "messageExpression" in validation:
            expressions.append(validation["messageExpression"])
    used: set[str] = set()
    for expression in expressions:
        used |= {f for f in cel.compile(expression).functions() if f[:1].isalpha()}
    assert used <= STANDARD | EXT_STRINGS, used - STANDARD - EXT_STRINGS
    assert EXT_STRINGS <= set(K8S_CEL_FUNCTIONS)


def test_every_validation_has_a_message_naming_the_problem(policy: dict[str, Any]) -> None:
    for validation in policy["spec"]["validations"]:
        assert validation.get("messageExpression") or validation.get("message"), validation
        if "messageExpression" in validation:
            # The server falls back to message only when it has one; the expressions here cannot fail
            # on an admitted-shape object (the CRD requires every field they read).
            assert "object.spec" in validation["messageExpression"]


# ---------------------------------------------------------------------------------------------
# the pydantic model


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = approval_object()["spec"]
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def test_a_valid_spec_parses_and_dumps_as_the_manifest() -> None:
    spec = ModelApprovalSpec.model_validate(_spec(comment="SLOs met in shadow and at 25%"))
    assert spec.model_deployment == "fraud-scorer" and spec.decision == "approve"
    assert spec.dump() == _spec(comment="SLOs met in shadow and at 25%")
    whole = ModelApproval.model_validate(approval_object())
    assert whole.spec.evidence_digest == DIGEST and whole.metadata["name"] == "fraud-scorer-3f9a0c1b2d-ml-lead"


def test_revisions_look_like_the_operators() -> None:
    revision = revision_of(ModelSpec(bento="fraud_scorer:3.2.0", image="registry.example.com/fraud-scorer:3.2.0"))
    assert ModelApprovalSpec.model_validate(_spec(revision=revision)).revision == revision


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"revision": "3F9A0C1B2D"}, "revision"),  # uppercase
        ({"revision": "3f9a0c1b2"}, "revision"),  # 9 characters
        ({"revision": "3f9a0c1b2d0"}, "revision"),  # 11
        ({"revision": "fraud_scorer:3.2.0"}, "revision"),  # a bento tag is not a revision
        ({"evidenceDigest": "9b" * 31}, "evidenceDigest"),
        ({"evidenceDigest": "sha256:" + "9b" * 32}, "evidenceDigest"),
        ({"evidenceDigest": "9B" * 32}, "evidenceDigest"),
        ({"evidenceDigest": None}, "evidenceDigest"),  # required
        ({"decision": "approved"}, "decision"),
        ({"decision": "Approve"}, "decision"),
        ({"role": "Risk"}, "role"),
        ({"role": "r" * 64}, "role"),
        ({"approver": ""}, "approver"),
        ({"approver": "a" * 513}, "approver"),
        ({"modelDeployment": "Fraud_Scorer"}, "modelDeployment"),
        ({"comment": "x" * 1025}, "comment"),
    ],
)
def test_bad_specs_are_refused_naming_the_field_by_pydantic_and_the_crd(
    changes: dict[str, Any], field: str, validator: CrdValidator
) -> None:
    spec = _spec(**changes)
    with pytest.raises(ValidationError) as raised:
        ModelApprovalSpec.model_validate(spec)
    assert [e["loc"][0] for e in raised.value.errors()] == [field]
    obj = {**approval_object(), "spec": spec}
    # The server adds "some validation rules were not checked" after a blocking error (the
    # immutability rule is not run); every other error names the field.
    errors = [e for e in validator.validate(obj) if "validation rules were not checked" not in e]
    assert errors and all(e.startswith(f"spec.{field}") for e in errors), errors


# ---------------------------------------------------------------------------------------------
# the CRD


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd(CRD_PATH)


@pytest.fixture(scope="module")
def validator(crd: dict[str, Any]) -> CrdValidator:
    return CrdValidator(crd)


def test_the_crd_file_is_the_generated_one(crd: dict[str, Any]) -> None:
    assert crd == approval.build_crd()
    assert CRD_PATH.read_text().startswith("# GENERATED by hack/gen_crds.py")


def test_the_crd_is_structural_and_a_valid_crd(crd: dict[str, Any]) -> None:
    assert_structural(crd)
    client.V1CustomResourceDefinition.model_validate(crd)


def test_the_crd_names(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "modelapprovals.serving.headway.dev"
    assert spec["group"] == headway.GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ModelApproval",
        "listKind": "ModelApprovalList",
        "plural": "modelapprovals",
        "singular": "modelapproval",
        "shortNames": ["mda"],
        "categories": ["headway"],
    }
    assert "mda" not in headway.SHORT_NAMES
    (version,) = spec["versions"]
    assert version["name"] == headway.VERSION and version["served"] and version["storage"]
    assert "subresources" not in version  # no status: an approval is a record


def test_printer_columns_for_kubectl_get_mda(crd: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"].upper() for c in columns] == ["MODELDEPLOYMENT", "REVISION", "ROLE", "APPROVER", "DECISION", "AGE"]
    properties = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for column in columns[:-1]:
        assert column["jsonPath"].startswith(".spec.") and column["jsonPath"][len(".spec."):] in properties
    assert columns[-1]["jsonPath"] == ".metadata.creationTimestamp" and columns[-1]["type"] == "date"


def test_the_crd_accepts_a_valid_approval(validator: CrdValidator) -> None:
    assert validator.validate(approval_object()) == []
    assert validator.validate(approval_object(comment="ok", decision="reject")) == []


def test_the_crd_refuses_a_spec_change_on_update(validator: CrdValidator) -> None:
    old = approval_object()
    review = validator.review(approval_object(decision="reject"), headway.VERSION, old=old)
    assert [str(e) for e in review.errors] == [f"spec: Invalid value: {approval.IMMUTABLE_MESSAGE}"]
    relabelled = approval_object()
    relabelled["metadata"]["labels"] = {"team": "risk"}
    assert validator.review(relabelled, headway.VERSION, old=old).errors == []


def test_the_crd_requires_every_field_but_comment(crd: dict[str, Any]) -> None:
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert sorted(spec["required"]) == sorted(["modelDeployment", "revision", "evidenceDigest", "role", "approver", "decision"])
    assert spec["x-kubernetes-validations"] == [{"rule": "self == oldSelf", "message": approval.IMMUTABLE_MESSAGE}]


def test_the_docs_example_is_a_valid_approval(validator: CrdValidator) -> None:
    """The manifest docs/governance.md shows an approver."""
    text = (ROOT / "docs" / "governance.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    example = yaml.safe_load(block)
    assert example["kind"] == approval.KIND
    assert validator.validate(example) == []
    ModelApproval.model_validate(example)
