"""The chart's notification settings: what the operator is told, and the one Secret permission it gets for them.

Rendered by Helm's own engine (helm-python-sdk), offline, like tests/unit/test_chart.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from headway import config as cfg
from tests.support.helm import HelmValuesError, lint, template

CHART = Path(__file__).resolve().parents[2] / "charts" / "headway"
SINKS = [
    {"name": "slack-ml", "type": "slack", "secret": {"name": "headway-notify", "key": "slack-ml"}},
    {"name": "pager", "type": "pagerduty", "secret": {"name": "headway-pagerduty", "key": "routing-key"},
     "url": "https://events.eu.pagerduty.com", "events": ["RolledBack", "Promoted", "DataDrift", "DataDriftCleared"]},
    {"name": "audit-hook", "type": "webhook", "secret": {"name": "headway-notify", "key": "audit"}, "namespaces": ["team-a"],
     "signingSecret": {"name": "headway-webhook-signing", "key": "audit"}},
]
VALUES = {"notifications": {"sinks": SINKS, "maxAgeSeconds": 300, "timeoutSeconds": 5, "cluster": "prod-eu"}}


def container_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def notification_rbac(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"].endswith("-notifications")]


@pytest.mark.parametrize("mode", [{}, {"watchNamespaces": ["team-a", "team-b"]}])
def test_sinks_reach_the_operator_as_it_parses_them(mode: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = template(CHART, {**mode, **VALUES})
    env = container_env(docs)
    assert env["HEADWAY_NOTIFICATION_SECRET_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}  # the operator's own
    assert env["HEADWAY_NOTIFICATION_MAX_AGE_SECONDS"] == "300" and env["HEADWAY_NOTIFICATION_TIMEOUT_SECONDS"] == "5"
    assert env["HEADWAY_NOTIFICATION_CLUSTER"] == "prod-eu"
    assert {k for k in env if k.startswith("HEADWAY_NOTIFICATION")} <= set(cfg.ENV.values())
    # What `headway operator` makes of that environment (the pod's namespace filled in as the kubelet does).
    for name, value in env.items():
        if name.startswith("HEADWAY_NOTIFICATION"):
            monkeypatch.setenv(name, "headway-system" if isinstance(value, dict) else value)
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser)
    notifications = cfg.from_args(parser.parse_args([])).notifications
    assert [(s.name, s.type, s.secret.name, s.secret.key) for s in notifications.sinks] == [
        ("slack-ml", "slack", "headway-notify", "slack-ml"), ("pager", "pagerduty", "headway-pagerduty", "routing-key"),
        ("audit-hook", "webhook", "headway-notify", "audit")]
    assert notifications.sinks[1].url == "https://events.eu.pagerduty.com" and notifications.sinks[2].namespaces == ("team-a",)
    signing = notifications.sinks[2].signing_secret
    assert signing is not None and (signing.name, signing.key) == ("headway-webhook-signing", "audit")
    assert notifications.secret_namespace == "headway-system" and notifications.max_age_seconds == 300
    assert notifications.timeout_seconds == 5 and notifications.cluster == "prod-eu"


@pytest.mark.parametrize("mode", [{}, {"watchNamespaces": ["team-a", "team-b"]}])
def test_the_operator_may_get_exactly_the_sinks_secrets_in_its_own_namespace(mode: dict[str, Any]) -> None:
    docs = template(CHART, {**mode, **VALUES}, namespace="ops", release="ml")
    role, binding = notification_rbac(docs)
    assert role["kind"] == "Role" and role["metadata"] == {**role["metadata"], "name": "ml-headway-notifications", "namespace": "ops"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                              "resourceNames": ["headway-notify", "headway-pagerduty", "headway-webhook-signing"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ml-headway-notifications"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ml-headway", "namespace": "ops"}]
    client.V1Role.model_validate(role)
    client.V1RoleBinding.model_validate(binding)
    # No other rule anywhere mentions Secrets.
    others = [r for d in docs if d["kind"] in ("Role", "ClusterRole") and d not in (role,) for r in d["rules"]]
    assert not any("secrets" in r["resources"] for r in others)
    assert not lint(CHART, {**mode, **VALUES}).errors


def test_without_sinks_nothing_is_rendered_for_notifications() -> None:
    docs = template(CHART, {})
    assert notification_rbac(docs) == []
    assert not [k for k in container_env(docs) if k.startswith("HEADWAY_NOTIFICATION")]
    assert notification_rbac(template(CHART, {**VALUES, "rbac": {"create": False}})) == []


@pytest.mark.parametrize(("sink", "complaint"), [
    ({"name": "x", "type": "email", "secret": {"name": "s", "key": "k"}}, "/notifications/sinks/0/type"),
    ({"name": "x", "type": "slack", "secret": {"name": "s"}}, "/notifications/sinks/0/secret"),
    ({"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "channel": "#ml"}, "channel"),
    ({"name": "Slack", "type": "slack", "secret": {"name": "s", "key": "k"}}, "/notifications/sinks/0/name"),
    ({"name": "x", "type": "pagerduty", "secret": {"name": "s", "key": "k"}, "url": "events.pagerduty.com"}, "/notifications/sinks/0/url"),
    ({"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "events": ["Rollback"]}, "/notifications/sinks/0/events/0"),
    ({"name": "x", "type": "webhook", "secret": {"name": "s", "key": "k"}, "signingSecret": {"name": "s"}},
     "/notifications/sinks/0/signingSecret"),
    ({"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "signingSecret": {"name": "s", "key": "k"}},
     "/notifications/sinks/0/signingSecret"),  # a webhook's only
])
def test_the_schema_refuses_bad_sinks(sink: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmValuesError) as raised:
        template(CHART, {"notifications": {"sinks": [sink]}})
    assert complaint in str(raised.value)


def test_the_schema_knows_every_notified_event() -> None:
    """The chart's list of events and the operator's are the same list."""
    import json

    from headway.planning.notifications import NOTIFIED

    schema = json.loads((CHART / "values.schema.json").read_text())
    events = schema["properties"]["notifications"]["properties"]["sinks"]["items"]["properties"]["events"]["items"]["enum"]
    assert events == list(NOTIFIED)
