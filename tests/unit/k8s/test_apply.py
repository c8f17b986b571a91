"""Patch construction: what a changed child's update removes and keeps."""

from __future__ import annotations

from headway.k8s.apply import build_update_patch, merge_patch_diff, removals, with_hash
from headway.planning.naming import ANNOTATION_HASH


def test_merge_patch_diff_is_minimal_and_deletes_with_null() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": True}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "e": [1], "added": "x"}
    assert merge_patch_diff(old, new) == {"b": {"d": 4}, "e": [1], "added": "x", "gone": None}
    assert merge_patch_diff(new, new) == {}


def test_removals_nulls_only_what_desired_lacks() -> None:
    assert removals({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"x": 1}}) == {"b": {"x": 1, "y": None}, "a": None}


def test_update_patch_removes_stale_labels_but_keeps_foreign_annotations() -> None:
    live = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "resourceVersion": "42", "labels": {"team": "old", "keep": "no"},
                     "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"team": "old"}},
                                              "spec": {"nodeSelector": {"zone": "a"}, "containers": [{"name": "c", "image": "a"}]}}},
    }
    desired = with_hash({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"team": "new"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"team": "new"}}, "spec": {"containers": [{"name": "c", "image": "b"}]}}},
    })
    patch = build_update_patch(live, desired)
    assert patch["metadata"]["resourceVersion"] == "42"  # stale reads fail with 409
    assert patch["metadata"]["labels"] == {"team": "new", "keep": None}
    assert "deployment.kubernetes.io/revision" not in patch["metadata"]["annotations"]  # left to its owner
    assert ANNOTATION_HASH in patch["metadata"]["annotations"]
    assert patch["spec"]["template"]["spec"]["nodeSelector"] is None
    assert patch["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "b"}]


def test_hash_changes_with_content_only() -> None:
    obj = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 1}]}}
    same = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 1}]}}
    other = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 2}]}}
    h = lambda o: with_hash(o)["metadata"]["annotations"][ANNOTATION_HASH]  # noqa: E731
    assert h(obj) == h(same) != h(other)
