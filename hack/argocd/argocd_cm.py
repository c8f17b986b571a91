#!/usr/bin/env python3
"""Print the argocd-cm data that installs the ModelDeployment health check and actions (docs/argocd.md).

    .venv/bin/python hack/argocd/argocd_cm.py > argocd-cm-headway.yaml
    kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm-headway.yaml
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent / "serving.headway.dev" / "ModelDeployment"
KEY = "serving.headway.dev_ModelDeployment"  # <group>_<kind>
ACTIONS = ("promote", "promote-step", "abort", "retry", "pause", "resume")


class _Literal(str):
    pass


yaml.SafeDumper.add_representer(_Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|"))


def data() -> dict[str, str]:
    actions = {
        "discovery.lua": _Literal((HERE / "actions" / "discovery.lua").read_text()),
        "definitions": [{"name": a, "action.lua": _Literal((HERE / "actions" / a / "action.lua").read_text())} for a in ACTIONS],
    }
    return {
        f"resource.customizations.health.{KEY}": _Literal((HERE / "health.lua").read_text()),
        f"resource.customizations.actions.{KEY}": _Literal(yaml.safe_dump(actions, sort_keys=False, width=1000)),
    }


if __name__ == "__main__":
    print(yaml.safe_dump({"data": data()}, sort_keys=False, width=1000), end="")
