"""When a child is applied again: a changed rendering or a hand edit, never server defaults or others' fields."""

from __future__ import annotations

import copy

import pytest

from headway.k8s.apply import _applied, covers, merge_patch_diff, needs_apply, upgraded_managed_fields, with_hash
from headway.planning.naming import ANNOTATION_HASH


def test_merge_patch_diff_is_minimal_and_deletes_with_null() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": True}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "e": [1], "added": "x"}
    assert merge_patch_diff(old, new) == {"b": {"d": 4}, "e": [1], "added": "x", "gone": None}
    assert merge_patch_diff(new, new) == {}


def _deployment(**template_spec: object) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"team": "risk"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"team": "risk"}}, "spec": {
            "containers": [{"name": "model", "image": "a:1", "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}},
                            "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 3000}]}], **template_spec}}},
    }


def _as_served(obj: dict) -> dict:
    """What a real API server hands back: defaults filled in, quantities canonical, others' fields."""
    live = copy.deepcopy(obj)
    live["metadata"].update(resourceVersion="7", uid="u", managedFields=[{"manager": "headway"}])
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "3"
    live["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = "app:apps/Deployment:ml/x"
    pod = live["spec"]["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst")
    container = pod["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    container["resources"]["requests"]["cpu"] = "500m"
    container["ports"][0]["protocol"] = "TCP"
    live["status"] = {"replicas": 2}
    return live


def test_a_served_child_with_defaults_and_foreign_fields_is_as_rendered() -> None:
    desired = with_hash(_deployment())
    assert needs_apply(_as_served(desired), desired) is None


@pytest.mark.parametrize("edit, path", [
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="a:2"), "spec.template.spec.containers"),
    (lambda d: d["spec"].update(replicas=5), "spec.replicas"),
    (lambda d: d["metadata"]["labels"].pop("team"), "metadata.labels.team"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].clear(), "spec.template.spec.containers"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(cpu="2"), "spec.template.spec.containers"),
])
def test_a_hand_edit_of_a_rendered_field_needs_an_apply(edit, path) -> None:
    desired = with_hash(_deployment())
    live = _as_served(desired)
    edit(live)
    assert needs_apply(live, desired) == f"a rendered field was changed by another writer: {path}"


def test_a_container_added_by_someone_else_is_theirs() -> None:
    desired = with_hash(_deployment())
    live = _as_served(desired)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "mesh:1"})
    assert needs_apply(live, desired) is None


def test_a_changed_rendering_needs_an_apply_even_when_live_covers_it() -> None:
    """A field Headway stops rendering is still live: the hash tells, and the apply removes it."""
    old = with_hash(_deployment(nodeSelector={"zone": "a"}))
    assert needs_apply(_as_served(old), with_hash(_deployment())) == "rendering changed: fields removed"
    bigger = with_hash({**_deployment(), "spec": {**_deployment()["spec"], "replicas": 3}})
    assert needs_apply(_as_served(old), bigger) == "rendering changed: spec.replicas"


def test_quantities_compare_by_value_under_requests_and_limits_only() -> None:
    assert covers({"requests": {"cpu": "500m", "memory": "1024Mi"}}, {"requests": {"cpu": "0.5", "memory": "1Gi"}})
    assert covers({"limits": {"nvidia.com/gpu": "1"}}, {"limits": {"nvidia.com/gpu": 1}})
    assert covers({"port": 8080}, {"port": "8080"})
    assert not covers({"requests": {"cpu": "250m"}}, {"requests": {"cpu": "0.5"}})
    assert not covers({"image": "a"}, {"image": "b"})
    assert not covers({"value": "1.0"}, {"value": "1"}), "an env value is a string, not a quantity"
    assert not covers({"enabled": 0}, {"enabled": False})


def test_empty_values_the_server_drops_are_covered() -> None:
    assert covers({"name": "A"}, {"name": "A", "value": ""})
    assert covers({"containers": [{"name": "c"}]}, {"containers": [{"name": "c", "args": []}]})
    assert not covers({"name": "A", "value": "x"}, {"name": "A", "value": ""})


def test_a_list_naming_one_object_twice_is_compared_item_by_item() -> None:
    """Two parentRefs to one Gateway, for its http and https listeners."""
    refs = [{"name": "gw", "sectionName": "http"}, {"name": "gw", "sectionName": "https"}]
    assert covers({"parentRefs": [{**r, "group": "gateway.networking.k8s.io"} for r in refs]}, {"parentRefs": refs})
    assert not covers({"parentRefs": refs[:1]}, {"parentRefs": refs})


def test_what_the_server_changed_after_our_own_apply_is_not_applied_again() -> None:
    """A mutating webhook rewrote a rendered field: applying again would change nothing, and loop."""
    desired = with_hash(_deployment())
    live = _as_served(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "mirror.example.com/a:1"  # the webhook's rewrite
    assert needs_apply(live, desired) == "a rendered field was changed by another writer: spec.template.spec.containers"
    _applied[live["metadata"]["uid"]] = live["metadata"]["resourceVersion"]  # what our apply returned
    try:
        assert needs_apply(live, desired) is None
        live["metadata"]["resourceVersion"] = "8"  # someone wrote it since
        assert needs_apply(live, desired) == "a rendered field was changed by another writer: spec.template.spec.containers"
    finally:
        _applied.clear()


def test_the_fields_0_1_wrote_are_handed_over_to_headways_apply() -> None:
    live = _as_served(with_hash(_deployment()))
    live["metadata"]["managedFields"] = [
        {"manager": "OpenAPI-Generator", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "subresource": "status",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
    ]
    upgraded = upgraded_managed_fields(live)
    assert upgraded is not None
    assert [(e["manager"], e["operation"]) for e in upgraded] == [("headway", "Apply"), ("kube-controller-manager", "Update")]
    assert upgraded[0]["fieldsV1"] == {"f:spec": {}}
    live["metadata"]["managedFields"] = upgraded
    assert upgraded_managed_fields(live) is None  # once


def test_hash_changes_with_content_only() -> None:
    obj = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 1}]}}
    same = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 1}]}}
    other = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 2}]}}
    h = lambda o: with_hash(o)["metadata"]["annotations"][ANNOTATION_HASH]  # noqa: E731
    assert h(obj) == h(same) != h(other)
