"""The real operator's /metrics as the Grafana dashboard reads them (charts/headway/dashboards/headway.json).

- a ModelDeployment appears in the dashboard's variables (they list headway_traffic_weight_percent's
  namespace and name) once reconciled, and disappears when it is deleted: its series are forgotten;
- the operator-health panels have data: API request latency by verb, the work queue's waits.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from headway.reconciler import MODEL_DEPLOYMENT
from tests.e2e.harness import IMAGE, Env, wait_for

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {"model": {"bento": "fraud_scorer:3.2.0", "image": IMAGE}, "replicas": 1}


def series(env: Env, metric: str) -> list[str]:
    """The sample lines of ``metric`` (exactly that name) on the operator's /metrics."""
    text = requests.get(f"http://127.0.0.1:{env.operator.metrics_port}/metrics", timeout=2).text
    return [line for line in text.splitlines() if re.match(rf"{re.escape(metric)}[ {{]", line)]


def of(env: Env, name: str, lines: list[str]) -> list[str]:
    """The lines of one ModelDeployment (the exposition orders labels its own way)."""
    return [line for line in lines if f'namespace="{env.namespace}"' in line and f'name="{name}"' in line]


def test_a_deleted_modeldeployment_leaves_the_dashboard(env: Env) -> None:
    env.create_md("fraud", SPEC)
    env.wait_phase("fraud", "Succeeded")
    weights = wait_for("its traffic weight", lambda: of(env, "fraud", series(env, "headway_traffic_weight_percent")))
    assert len(weights) == 1 and 'variant="stable"' in weights[0] and weights[0].endswith(" 100.0")

    # The operator-health panels: every request it sent was timed, and every reconcile waited on the queue first.
    assert env.operator.metric("headway_api_request_duration_seconds_count") > 0
    assert env.operator.metric("headway_api_request_duration_seconds_count", 'verb="patch"') > 0
    assert env.operator.metric("headway_queue_wait_seconds_count") >= 1
    assert series(env, "headway_queue_depth")

    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "fraud")
    wait_for("its series to be forgotten", lambda: not of(env, "fraud", series(env, "headway_traffic_weight_percent")))
