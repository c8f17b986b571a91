"""`headway audit md/NAME`: every decision of a ModelDeployment's rollouts, from its RolloutRecords.

    headway audit md/fraud-scorer -n ml                        # Markdown: a section per rollout, a table of its decisions
    headway audit md/fraud-scorer -n ml --since 7d --format csv  # one row per decision, the evidence as JSON
    headway audit md/fraud-scorer -n ml --format json          # the records themselves (a List, like kubectl -o json)

The records are the operator's (api/record.py): one per rollout, the last N kept (``--rollout-records``),
written from ``status.history`` after each status write, so they hold what the operator decided, in
the order it decided it, with the evidence it decided on. This command only reads them (it needs get
on the ModelDeployment and list on rolloutrecords in its namespace), with the kubeconfig and context
kubectl would use.

The rendering (``render_*``, ``summarize``, ``select``) is pure; ``fetch`` is the only I/O.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import headway
from headway.api import record
from headway.api.types import parse_duration
from headway.planning.conditions import rfc3339

FORMATS = ("markdown", "json", "csv")
CSV_COLUMNS = ["modelDeployment", "namespace", "record", "rolloutRevision", "bento", "outcome", "time", "event", "revision",
               "message", "evidence"]
KINDS = {"md", "modeldeployment", "modeldeployments", "modeldeployment.serving.headway.dev", "modeldeployments.serving.headway.dev"}


class AuditError(Exception):
    """What went wrong, in words for the person running the command."""


# --- arguments -----------------------------------------------------------------------------------


def parse_target(text: str) -> str:
    """The ModelDeployment's name from ``md/NAME`` (or ``modeldeployment/NAME``, or a bare NAME)."""
    kind, slash, name = text.rpartition("/")
    if slash and kind.lower() not in KINDS:
        raise AuditError(f"{text!r}: audit reads the records of a ModelDeployment: give md/NAME, not {kind}/...")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 253:
        raise AuditError(f"{text!r}: {name!r} is not a ModelDeployment name (lowercase letters, digits, '-' and '.')")
    return name


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration back from now (30m, 24h, 7d, 1h30m) or a time (RFC 3339, or a date: midnight UTC)."""
    days = re.fullmatch(r"(\d+)d", text.strip())
    if days:
        return now - timedelta(days=int(days.group(1)))
    try:
        return now - parse_duration(text.strip())
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(f"--since {text!r}: neither a duration (30m, 24h, 7d) nor a time (2024-05-01T00:00:00Z, 2024-05-01)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# --- reading -------------------------------------------------------------------------------------


def fetch(kube: Any, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ModelDeployment and its RolloutRecords (I/O). AuditError says what is missing."""
    from headway.k8s.client import ApiError, Kind
    from headway.k8s.records import ROLLOUT_RECORD
    from headway.planning.naming import LABEL_MD

    MODEL_DEPLOYMENT = Kind(headway.GROUP, headway.VERSION, headway.PLURAL, headway.KIND)

    where = f"{namespace}/{name}"
    try:
        md = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if md is None:
            if not kube.serves(MODEL_DEPLOYMENT):
                raise AuditError(f"the API server does not serve {MODEL_DEPLOYMENT.plural}.{MODEL_DEPLOYMENT.group}: is Headway installed?")
            raise AuditError(f"ModelDeployment {where} not found")
        try:
            listed = kube.list_raw(ROLLOUT_RECORD, namespace, f"{LABEL_MD}={name}").get("items", [])
        except ApiError as exc:
            if exc.status == 404:
                raise AuditError(f"the API server does not serve {record.CRD_NAME}: apply crds/{record.CRD_NAME}.yaml "
                                 "(Helm installs CRDs on the first install only)") from None
            raise
    except ApiError as exc:
        if exc.status in (401, 403):
            raise AuditError(f"not allowed ({exc.status} {exc.reason}): audit needs get on modeldeployments and list on "
                             f"rolloutrecords in namespace {namespace}: {exc.message}") from None
        raise AuditError(f"the API server answered {exc.status} {exc.reason}: {exc.message}") from None
    uid = md.get("metadata", {}).get("uid")
    records = [r for r in listed if (r.get("spec") or {}).get("modelDeployment") == name
               and (r.get("spec") or {}).get("modelDeploymentUID") in (uid, None)]
    if not records:
        raise AuditError(f"no RolloutRecords for ModelDeployment {where}: the operator writes one per rollout (its first "
                         "version included) when run with --rollout-records above 0; none has been written yet, or all were deleted")
    return md, records


# --- selecting and rendering (pure) --------------------------------------------------------------


def order(obj: dict[str, Any]) -> tuple[str, str, str]:
    """Oldest rollout first. Times are to the second: of two rollouts that began in the same second,
    the one that finished first began first (one rollout ends before the next begins)."""
    spec = obj.get("spec") or {}
    return str(spec.get("startedAt", "")), str(spec.get("finishedAt") or "~"), str((obj.get("metadata") or {}).get("name", ""))


def select(records: list[dict[str, Any]], since: datetime | None = None) -> list[dict[str, Any]]:
    """The records oldest rollout first, each with its decisions (and approvals) at or after ``since``;
    records left with no decision are dropped."""
    cutoff = rfc3339(since) if since is not None else None
    out = []
    for obj in sorted(records, key=order):
        spec = dict(obj.get("spec") or {})
        if cutoff is not None:
            spec["decisions"] = [d for d in spec.get("decisions") or [] if str(d.get("time", "")) >= cutoff]
            spec["approvals"] = [a for a in spec.get("approvals") or [] if str(a.get("time", "")) >= cutoff]
            if not spec["decisions"]:
                continue
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        out.append({"apiVersion": f"{headway.GROUP}/{headway.VERSION}", "kind": record.KIND, "metadata": meta, "spec": spec})
    return out


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _analysis(analysis: dict[str, Any]) -> str:
    text = f"analysis {analysis.get('result', '?')}"
    if analysis.get("error"):
        return f"{text}: metrics unavailable: {analysis['error']}"
    verdicts = []
    for v in analysis.get("verdicts") or []:
        if not isinstance(v, dict):
            continue
        line = f"{v.get('variant', 'candidate')}/{v.get('slo')}={v.get('result')}"
        if v.get("value") is not None and v.get("threshold") is not None:
            line += f" ({_number(v['value'])} vs {_number(v['threshold'])}, n={v.get('samples', 0)})"
        verdicts.append(line)
    return f"{text}: {', '.join(verdicts)}" if verdicts else text


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}={_short(v, 30)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = f"[{', '.join(_short(v, 30) for v in value)}]" if all(not isinstance(v, (dict, list)) for v in value) else f"[{len(value)} items]"
    else:
        text = _number(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(evidence: dict[str, Any] | None, limit: int = 300) -> str:
    """The evidence of a decision in one line: traffic, the analysis' verdicts, approvals; the rest as key=value."""
    if not evidence:
        return ""
    parts = []
    for key, value in evidence.items():
        if key == "weights" and isinstance(value, dict):
            parts.append("weights " + " ".join(f"{k}={v}" for k, v in value.items()))
        elif key == "mirror" and isinstance(value, dict):
            parts.append(f"mirror {value.get('percent')}% to {value.get('variant')}")
        elif key == "analysis" and isinstance(value, dict):
            parts.append(_analysis(value))
        elif key == "approvals" and isinstance(value, list):
            parts.append("approved by " + ", ".join(f"{a.get('approver')} ({a.get('role')})" for a in value if isinstance(a, dict)))
        elif key == "approval" and isinstance(value, dict):
            comment = f': "{value["comment"]}"' if value.get("comment") else ""
            parts.append(f"{value.get('decision', '?')} by {value.get('approver')} ({value.get('role')}){comment}")
        elif key == "evidenceDigest" and isinstance(value, str):
            parts.append(f"evidence {value[:12]}…")
        else:
            parts.append(f"{key}={_short(value)}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_json(records: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": records}, indent=2, ensure_ascii=False) + "\n"


def render_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for obj in records:
        spec, meta = obj["spec"], obj["metadata"]
        for d in spec.get("decisions") or []:
            evidence = json.dumps(d["evidence"], sort_keys=True, separators=(",", ":"), ensure_ascii=False) if d.get("evidence") else ""
            writer.writerow([spec.get("modelDeployment", ""), meta.get("namespace", ""), meta.get("name", ""), spec.get("revision", ""),
                             spec.get("bento", ""), spec.get("outcome", ""), d.get("time", ""), d.get("event", ""), d.get("revision") or "",
                             d.get("message", ""), evidence])
    return out.getvalue()


def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _approval_line(a: dict[str, Any]) -> str:
    what = f"{a.get('approver') or '?'} ({a.get('role') or '?'}): {a.get('decision', '?')}"
    details = [d for d in (a.get("stage"), f"ModelApproval {a['approval']}" if a.get("approval") else None,
                           f"evidence {a['evidenceDigest']}" if a.get("evidenceDigest") else None, f"at {a.get('time')}") if d]
    comment = f' — "{a["comment"]}"' if a.get("comment") else ""
    return f"{what}, {', '.join(details)}{comment}"


def render_markdown(records: list[dict[str, Any]], namespace: str, name: str, since: datetime | None = None) -> str:
    lines = [f"# Audit trail: ModelDeployment {namespace}/{name}", ""]
    scope = f"decisions since {rfc3339(since)}" if since is not None else "every decision recorded"
    lines += [f"{len(records)} rollout{'s' if len(records) != 1 else ''} (RolloutRecords, oldest first), {scope}.", ""]
    for index, obj in enumerate(records, 1):
        spec, meta = obj["spec"], obj["metadata"]
        lines += [f"## {index}. {spec.get('bento') or '?'} ({spec.get('revision')}): {spec.get('outcome')}", ""]
        facts = [f"- Record: `{meta.get('name')}`"]
        stable = spec.get("stable")
        if isinstance(stable, dict):
            facts.append(f"- Rolled over: {stable.get('bento')} ({stable.get('revision')})")
        facts.append(f"- Started: {spec.get('startedAt')}; " + (f"finished: {spec['finishedAt']}" if spec.get("finishedAt") else "in progress"))
        for a in spec.get("approvals") or []:
            facts.append(f"- Approval: {_approval_line(a)}")
        if spec.get("dropped"):
            facts.append(f"- Dropped: {spec['dropped']} decisions (the oldest after the first), to keep the record within its bounds")
        if spec.get("incomplete"):
            facts.append(f"- Incomplete: {spec['incomplete']}")
        lines += facts + ["", "| Time | Event | Revision | Message | Evidence |", "| --- | --- | --- | --- | --- |"]
        for d in spec.get("decisions") or []:
            lines.append("| " + " | ".join(_cell(v) for v in (d.get("time", ""), d.get("event", ""), d.get("revision") or "",
                                                               d.get("message", ""), summarize(d.get("evidence")))) + " |")
        lines.append("")
    return "\n".join(lines)


# --- the command ---------------------------------------------------------------------------------


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace kubectl would use: the context's, else the pod's own (in a cluster), else default."""
    from kubernetes import config as k8s_config

    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
        if namespace:
            return str(namespace)
    except (k8s_config.ConfigException, OSError, TypeError):
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as f:
                return f.read().strip() or "default"
        except OSError:
            pass
    return "default"


def main(argv: list[str], now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(prog="headway audit", description="Print every decision of a ModelDeployment's rollouts (its "
                                     "RolloutRecords): time, event, revision, message and evidence, for an auditor.")
    parser.add_argument("target", metavar="md/NAME", help="the ModelDeployment")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--since", metavar="DURATION|TIME", help="only decisions since then: 30m, 24h, 7d, or 2024-05-01T00:00:00Z")
    parser.add_argument("-o", "--format", choices=FORMATS, default="markdown",
                        help="markdown (a section per rollout), csv (a row per decision) or json (the records); default markdown")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--context", help="kubeconfig context (default: its current one)")
    args = parser.parse_args(argv)
    now = now or datetime.now(timezone.utc)
    try:
        name = parse_target(args.target)
        since = parse_since(args.since, now) if args.since else None
        namespace = args.namespace or default_namespace(args.kubeconfig, args.context)
        kube = _connect(args.kubeconfig, args.context)
        _, records = _fetch(kube, namespace, name)
    except AuditError as exc:
        print(f"headway audit: {exc}", file=sys.stderr)
        return 1
    chosen = select(records, since)
    if args.format == "json":
        sys.stdout.write(render_json(chosen))
    elif args.format == "csv":
        sys.stdout.write(render_csv(chosen))
    else:
        sys.stdout.write(render_markdown(chosen, namespace, name, since))
    return 0


def _connect(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes.config import ConfigException

    from headway.k8s.client import Kube, make_api_client

    if kubeconfig and not os.path.isfile(kubeconfig):
        raise AuditError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        return Kube(make_api_client(kubeconfig, context))
    except (ConfigException, OSError, TypeError) as exc:
        raise AuditError(f"no usable kubeconfig{f' context {context}' if context else ''}: {exc}") from None


def _fetch(kube: Any, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import urllib3

    try:
        return fetch(kube, namespace, name)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise AuditError(f"cannot reach the API server: {exc}") from None
