"""Steering a rollout from kubectl without touching the git-managed spec.

Controls are annotations on the ModelDeployment. Argo CD (and any GitOps tool that
diffs only the fields it manages) does not report an annotation it never applied as
OutOfSync, and the operator itself never writes them: it only records, in status, the
last value it acted upon. A one-shot control therefore acts once per distinct value, so
the commands use a fresh value each time:

    kubectl annotate md/NAME headway.dev/promote="$(date +%s)" --overwrite       # skip to promotion
    kubectl annotate md/NAME headway.dev/promote-step="$(date +%s)" --overwrite  # pass one step / a manual gate
    kubectl annotate md/NAME headway.dev/abort="$(date +%s)" --overwrite         # back to stable
    kubectl annotate md/NAME headway.dev/retry="$(date +%s)" --overwrite         # retry a rolled-back revision
    kubectl annotate md/NAME headway.dev/paused=true --overwrite                 # pause (a state: remove to resume)
    kubectl annotate md/NAME headway.dev/paused-                                 # resume

Recording the handled value in the same status write as the decision it caused makes a
control exactly-once across operator crashes.
"""

from __future__ import annotations

PREFIX = "headway.dev/"
ONE_SHOT = ("promote", "promote-step", "abort", "retry")
PAUSED = PREFIX + "paused"


def pending(annotations: dict[str, str], handled: dict[str, str]) -> dict[str, str]:
    """One-shot controls whose current value has not been acted upon yet: {control: value}."""
    out = {}
    for control in ONE_SHOT:
        value = annotations.get(PREFIX + control)
        if value and handled.get(control) != value:
            out[control] = value
    return out


def paused_by_annotation(annotations: dict[str, str]) -> bool:
    return annotations.get(PAUSED, "").strip().lower() in ("true", "1", "yes")
