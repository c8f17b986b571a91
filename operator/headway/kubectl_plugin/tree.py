"""``kubectl headway get``: a ModelDeployment drawn as a summary and a tree, as plain text.

Pure: the text is a function of the ModelDeployment object, its ModelApprovals and ``now``
(time left in a step, ages), so it is tested as golden text. The look follows ``kubectl argo
rollouts get rollout`` (pkg/kubectl-argo-rollouts/cmd/get in argoproj/argo-rollouts): a few
``Key: value`` lines, then a tree with NAME, STATUS and INFO columns drawn with ``├──``/``└──``
and its status icons (✔ ok, ✖ bad, ◌ progressing, ◷ waiting, ॥ paused, ⚠ warning, • not yet).
What it adds for a model: each SLO's measured value against its bound and how far the evidence
has gone towards Pass or Fail (``evidence.py``), the approvals, the cost, the last decisions.

Colour is added afterwards (``colorize``) to the icons alone, so the layout never depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from headway.api.status import VariantStatus
from headway.kubectl_plugin import evidence as ev
from headway.kubectl_plugin.view import AWAITING_APPROVAL, Approval, Governance, Model, ago, duration_text, read, step_label, step_time
from headway.planning import controls as ctl
from headway.planning import steps as step_table
from headway.planning.bake import describe_bake
from headway.planning.conditions import parse_time

OK, BAD, PROGRESSING, WAITING, PAUSED, WARNING, NEUTRAL, UNKNOWN = "✔", "✖", "◌", "◷", "॥", "⚠", "•", "?"
MD, VARIANT, STEPS, ANALYSIS, APPROVALS, HISTORY, BAKE = "⟳", "⧉", "#", "α", "☑", "≡", "♨"
HISTORY_SHOWN = 5
HISTORY_WIDTH = 160  # a history message is cut here: the full text is in status.history

PHASE_ICONS = {
    "Pending": WAITING, "Progressing": PROGRESSING, "Paused": PAUSED, AWAITING_APPROVAL: PAUSED, "Promoting": PROGRESSING,
    "Succeeded": OK, "RolledBack": BAD, "Degraded": WARNING, "Failed": BAD,
}
RESULT_ICONS = {"Pass": OK, "Fail": BAD, "Inconclusive": PROGRESSING}
STAGES = {"BeforeFirstCanary": "before the first canary", "BeforePromotion": "before promotion"}
# ANSI colours of the icons, as argo-rollouts colours them (cmd/get/get.go colorMapping).
COLORS = {OK: 32, BAD: 31, WARNING: 31, PROGRESSING: 94, WAITING: 33, UNKNOWN: 33}


@dataclass
class Node:
    """One row of the tree: icon and name, a status, free text; ``notes`` are lines under it."""

    icon: str
    name: str
    status: str = ""
    info: str = ""
    notes: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)


def render(obj: dict[str, object], approvals: Sequence[dict[str, object]], now: datetime) -> str:
    """The whole ``get`` output for one ModelDeployment object (as the API returns it)."""
    model = read(obj)  # type: ignore[arg-type]
    listed = [Approval.parse(a) for a in approvals]  # type: ignore[arg-type]
    lines = _summary(model, now)
    lines.append("")
    lines += _table(_tree(model, listed, now))
    return "\n".join(lines) + "\n"


def colorize(text: str) -> str:
    """The same text with its status icons coloured for a terminal."""
    for icon, code in COLORS.items():
        text = text.replace(icon, f"\x1b[{code}m{icon}\x1b[0m")
    return text


# --- summary ------------------------------------------------------------------------------------


def _summary(m: Model, now: datetime) -> list[str]:
    rows: list[tuple[str, str]] = [("Name:", m.name), ("Namespace:", m.namespace)]
    if not m.has_status:
        rows.append(("Status:", f"{WAITING} no status yet (the operator has not reconciled this ModelDeployment)"))
    else:
        rows.append(("Status:", f"{PHASE_ICONS.get(m.phase, UNKNOWN)} {m.phase or 'Unknown'}"))
        if message := _message(m):
            rows.append(("Message:", message))
    if m.generation is not None and m.status.observed_generation is not None and m.status.observed_generation < m.generation:
        rows.append(("", f"{WAITING} spec generation {m.generation} not acted on yet (status is of generation "
                         f"{m.status.observed_generation})"))
    rows += _strategy(m, now)
    if m.status.traffic is not None and m.status.traffic.split:
        rows.append(("  Traffic:" if rows[-1][0].startswith("  ") else "Traffic:", m.status.traffic.split))
    if m.status.cost is not None:
        rows.append(("Cost:", _cost(m)))
    if m.spec_problems:
        rows.append(("Spec:", f"{BAD} unreadable by this plugin: " + "; ".join(m.spec_problems)))
    if m.unreadable:
        rows.append(("", f"{WARNING} status fields this plugin cannot read (a newer operator?): {', '.join(m.unreadable)}"))
    return [f"{key:<15}{value}".rstrip() for key, value in rows]


def _message(m: Model) -> str:
    """The condition that explains the phase: Degraded when set, else Progressing, else Ready."""
    by_type = {c.type: c for c in m.status.conditions}
    for kind in ("Degraded", "Progressing", "Ready"):
        c = by_type.get(kind)
        if c is not None and c.message and (kind != "Degraded" or c.status == "True"):
            return c.message
    return ""


def _strategy(m: Model, now: datetime) -> list[tuple[str, str]]:
    spec, status = m.spec, m.status
    if spec is None:
        return []
    if spec.experiment is not None:
        return [("Strategy:", f"Experiment ({len(spec.experiment.variants)} variants)")]
    steps = m.steps
    if not steps:
        return [("Strategy:", "Replace (no rollout steps: a new version updates stable in place)")]
    rows = [("Strategy:", f"Canary ({len(steps)} step{'s' if len(steps) > 1 else ''})")]
    rollout = status.rollout
    if rollout is not None:
        if rollout.promoting:
            rows.append(("  Step:", f"{len(steps)}/{len(steps)} done, promoting"))
        else:
            k = min(rollout.step, len(steps) - 1)
            rows.append(("  Step:", f"{k + 1}/{len(steps)} {step_label(steps[k])}{_step_clock(m, now)}"))
    return rows


def _step_clock(m: Model, now: datetime) -> str:
    rollout = m.status.rollout
    assert rollout is not None
    steps = m.steps
    k = min(rollout.step, len(steps) - 1)
    if not rollout.step_started_at:
        return f", not started: {_not_started(m)}"
    clock = step_time(m, now)
    paused = ", paused" if rollout.paused_at else ""
    if clock is None:
        return f", waiting for promote-step{paused}" if step_table.duration(steps[k]) is None else paused
    _, left = clock
    if left.total_seconds() > 0:
        return f", {duration_text(left)} left{paused}"
    if m.phase == AWAITING_APPROVAL:
        return f", duration passed: waiting for approvals{paused}"
    if step_table.analysed(steps[k]) and m.spec is not None and m.spec.analysis is not None:
        return f", duration passed: waiting for a passing analysis{paused}"
    return f", duration passed{paused}"


def _not_started(m: Model) -> str:
    rollout = m.status.rollout
    assert rollout is not None
    if rollout.hold_reason:
        return f"holding ({rollout.hold_reason})"
    if m.phase == AWAITING_APPROVAL:
        return "waiting for approvals"
    if rollout.paused_at:
        return "paused"
    return "waiting for the candidate to be ready"


def _cost(m: Model) -> str:
    c = m.status.cost
    assert c is not None
    text = (f"{c.hourly:.4g} {c.currency}/h now; {c.monthly_projected:.4g} {c.currency}/month projected, "
            f"{c.monthly_at_max:.4g} at maxReplicas")
    if c.monthly_budget is not None:
        text += f" (budget {c.monthly_budget:.4g}" + (f": {WARNING} over by {c.over_budget_by:.4g})" if c.over_budget_by else ")")
    if c.per_thousand_predictions is not None:
        text += f"; {c.per_thousand_predictions:.3g} per 1000 predictions"
    return text


# --- tree ---------------------------------------------------------------------------------------


def _tree(m: Model, approvals: list[Approval], now: datetime) -> Node:
    root = Node(MD, m.name, f"{PHASE_ICONS.get(m.phase, UNKNOWN)} {m.phase}" if m.has_status else f"{WAITING} NoStatus")
    status = m.status
    variants: list[tuple[VariantStatus, str]] = []
    if status.stable is not None:
        variants.append((status.stable, "stable"))
    if status.candidate is not None:
        variants.append((status.candidate, "candidate"))
    if status.variants:  # an experiment: its arms are the variants (stable is the arm serving spec.model)
        variants = [(v, v.name) for v in status.variants]
    mirror = status.traffic.mirror_percent if status.traffic is not None else 0
    for v, role in variants:
        root.children.append(_variant(v, mirror if role == "candidate" and status.rollout is not None else 0))
    if status.bake is not None:
        root.children.append(_bake(m, now))
    if status.rollout is not None and m.steps:
        root.children.append(_steps(m, now))
    if status.rolled_back is not None:
        rb = status.rolled_back
        root.children.append(Node(BAD, f"rolled back {rb.bento}", f"{BAD} {rb.reason}", f"{ago(rb.at, now)}; revision {rb.revision}",
                                  [rb.message] if rb.message else []))
    if status.analysis is not None:
        root.children.append(_analysis(m, now))
    if status.experiment_decision is not None:
        d = status.experiment_decision
        icon = OK if d.result == "Winner" else NEUTRAL if d.result == "NoDifference" else PROGRESSING
        root.children.append(Node(icon, f"decision on {d.metric}", f"{icon} {d.result}",
                                  (f"winner {d.winner}" if d.winner else "") + (", promoted" if d.promoted else ""),
                                  [d.reason] if d.reason else []))
    if status.monitoring is not None:
        node = _monitoring(m)
        if node is not None:
            root.children.append(node)
    if m.governance is not None:
        root.children.append(_governance(m, m.governance, approvals, now))
    pending = _pending_controls(m, now)
    if pending is not None:
        root.children.append(pending)
    if status.problems:
        root.children.append(Node(WARNING, "spec problems", f"{WARNING} InvalidSpec", "nothing is applied until they are fixed",
                                  [f"{p.field}: {p.message}" for p in status.problems]))
    if status.history:
        root.children.append(_history(m, now))
    return root


def _variant(v: VariantStatus, mirror: int) -> Node:
    if v.replicas == 0:
        state = f"{NEUTRAL} ScaledToZero"
    elif v.available and v.ready_replicas >= v.replicas:
        state = f"{OK} Available"
    elif v.ready_replicas > 0:
        state = f"{PROGRESSING} Progressing"
    else:
        state = f"{WAITING} NotReady"
    info = f"rev:{v.revision}  ready:{v.ready_replicas}/{v.replicas}  weight:{v.weight}%"
    if mirror:
        info += f"  mirror:{mirror}%"
    return Node(VARIANT, f"{v.name} {v.bento}", state, info)


def _steps(m: Model, now: datetime) -> Node:
    rollout = m.status.rollout
    assert rollout is not None
    steps = m.steps
    node = Node(STEPS, "steps", "", f"rollout started {ago(rollout.started_at, now)}" if rollout.started_at else "")
    for k, step in enumerate(steps):
        label = f"{k + 1}/{len(steps)} {step_label(step)}"
        if rollout.promoting or k < rollout.step:
            node.children.append(Node(OK, label, f"{OK} Done"))
        elif k > rollout.step:
            node.children.append(Node(NEUTRAL, label))
        elif rollout.paused_at:
            node.children.append(Node(PAUSED, label, f"{PAUSED} Paused", _step_clock(m, now).lstrip(", ")))
        elif not rollout.step_started_at:
            node.children.append(Node(WAITING, label, f"{WAITING} Waiting", _not_started(m)))
        elif m.phase == AWAITING_APPROVAL:
            node.children.append(Node(PAUSED, label, f"{PAUSED} {AWAITING_APPROVAL}", _step_clock(m, now).lstrip(", ")))
        elif step_table.duration(step) is None:
            node.children.append(Node(PAUSED, label, f"{PAUSED} Paused", "manual gate: kubectl headway promote-step"))
        else:
            node.children.append(Node(PROGRESSING, label, f"{PROGRESSING} Running", _step_clock(m, now).lstrip(", ")))
    if rollout.promoting:
        node.children.append(Node(PROGRESSING, "promotion", f"{PROGRESSING} Promoting", f"stable rolls to {rollout.bento}"))
    return node


def _bake(m: Model, now: datetime) -> Node:
    bake = m.status.bake
    assert bake is not None
    previous = m.status.previous_model.bento if m.status.previous_model is not None else None
    until = parse_time(bake.until)
    left = f"{duration_text(until - now)} left" if until > now else "ending"
    return Node(BAKE, f"bake {bake.bento}", f"{PROGRESSING} Baking", f"until {bake.until} ({left})",
                [describe_bake(bake, previous)])


def _analysis(m: Model, now: datetime) -> Node:
    a = m.status.analysis
    assert a is not None
    spec_slos = list(m.spec.analysis.slos) if m.spec is not None and m.spec.analysis is not None else []
    icon = RESULT_ICONS.get(a.result, UNKNOWN)
    where = {"step": "step window", "bake": "bake window", "experiment": "experiment window"}[a.purpose]
    info = f"{where} {ago(a.window_start, now).removesuffix(' ago')}, {a.runs} run{'s' if a.runs != 1 else ''}"
    if m.spec is not None and m.spec.analysis is not None:
        info += f", Fails in a row {a.consecutive_failures}/{m.spec.analysis.failure_limit}"
    candidate = m.status.candidate.revision if m.status.candidate is not None else None
    if a.purpose == "step" and candidate is not None and a.revision != candidate:
        info += f"; of revision {a.revision}"
    notes = [f"{WARNING} metrics not read: {a.error}"] if a.error else []
    node = Node(ANALYSIS, "analysis", f"{icon} {a.result}", info, notes)
    variants = {v.variant for v in a.verdicts}
    for v in a.verdicts:
        shown = ev.show(v, ev.spec_slo(v.slo, spec_slos), len(spec_slos), a)
        name = v.slo if len(variants) == 1 else f"{v.variant} {v.slo}"
        icon = RESULT_ICONS.get(v.result, UNKNOWN)
        node.children.append(Node(icon, name, f"{icon} {v.result}", shown.measured, [shown.evidence] if shown.evidence else []))
    return node


def _monitoring(m: Model) -> Node | None:
    mon = m.status.monitoring
    assert mon is not None
    notes = []
    if mon.drifted:
        notes.append(f"{WARNING} data drift in {', '.join(mon.drifted)} (stable {mon.revision or ''})".rstrip())
    if mon.error:
        notes.append(f"{WARNING} {mon.error}")
    p = mon.prediction
    if p is None and not notes:
        return None
    status, info = "", ""
    if p is not None:
        icon = RESULT_ICONS.get(p.result, UNKNOWN)
        status, info = f"{icon} {p.result}", p.message
    return Node(ANALYSIS, "predictions vs stable" if p is not None else "monitoring", status, info, notes)


def _governance(m: Model, g: Governance, listed: list[Approval], now: datetime) -> Node:
    if g.rejected is not None:
        status = f"{BAD} Rejected"
    elif g.waiting_for:
        status = f"{PAUSED} {AWAITING_APPROVAL}"
    else:
        status = f"{OK} Approved" if g.approved_stages else f"{NEUTRAL} NotYetNeeded"
    parts = [f"risk tier {g.risk_tier}"] if g.risk_tier else []
    if g.stage:
        parts.append(f"waits {STAGES.get(g.stage, g.stage)}" if g.waiting_for else f"stage {STAGES.get(g.stage, g.stage)}")
    if g.evidence_digest:
        parts.append(f"evidence {g.evidence_digest[:12]}")
    node = Node(APPROVALS, "approvals", status, ", ".join(parts))
    if g.rejected is not None:
        r = g.rejected
        node.notes.append(f"{BAD} rejected by {r.approver} ({r.role}){': ' + repr(r.comment) if r.comment else ''}")
    missing = dict(g.waiting_for)
    counted_names = {a.name for a in g.approvals}
    roles = list(dict.fromkeys([p.role for p in g.policy] + [a.role for a in g.approvals] + list(missing)))
    for role in roles:
        rules = [p for p in g.policy if p.role == role]
        need = max((p.count for p in rules), default=0)
        have = [a for a in g.approvals if a.role == role and a.decision == "approve"]
        when = ", ".join(dict.fromkeys(STAGES.get(p.stage, p.stage) for p in rules))
        if missing.get(role):
            row = Node(WAITING, role, f"{WAITING} Waiting", f"{missing[role]} more needed" + (f" ({when})" if when else ""))
        elif have:
            row = Node(OK, role, f"{OK} Approved", f"{len(have)}/{need}" + (f" ({when})" if when else ""))
        else:
            row = Node(NEUTRAL, role, "", f"{len(have)}/{need}" + (f" ({when})" if when else ""))
        for a in g.approvals:
            if a.role == role:
                icon = OK if a.decision == "approve" else BAD
                comment = f": {a.comment!r}" if a.comment else ""
                row.children.append(Node(icon, a.approver, f"{icon} {a.decision}", f"{ago(a.at, now)}{comment}"))
        node.children.append(row)
    revision = g.revision or (m.status.candidate.revision if m.status.candidate is not None else "")
    counted_people = {a.approver: a.role for a in g.approvals}
    for obj in listed:
        if obj.model_deployment != m.name or obj.revision != revision or obj.name in counted_names:
            continue
        if obj.decision == "reject" and g.rejected is not None and g.rejected.name == obj.name:
            continue
        if g.evidence_digest and obj.evidence_digest != g.evidence_digest:
            why = f"not counted: made for other evidence ({obj.evidence_digest[:12]})"
        elif obj.approver in counted_people:
            why = f"not counted: {obj.approver} already counts for {counted_people[obj.approver]}"
        else:
            why = "not counted yet"
        node.children.append(Node(UNKNOWN, f"{obj.approver} ({obj.role})", f"{UNKNOWN} {obj.decision}",
                                  f"{why}; ModelApproval {obj.name}"))
    return node


def _pending_controls(m: Model, now: datetime) -> Node | None:
    """Controls set but not acted on yet: waiting for the operator, or for the step they were given for."""
    pending = ctl.pending(m.annotations, m.status.controls)
    deferred = {d.control: d for d in m.status.deferred_controls}
    paused = ctl.paused_by_annotation(m.annotations)
    if not pending and not paused and not (m.spec is not None and m.spec.paused):
        return None
    node = Node(WAITING, "controls")
    for control, value in pending.items():
        d = deferred.get(control)
        why = (f"waits for its step (bound to {d.bento}, {d.revision}), set {ago(d.since, now)}" if d is not None and d.value == value
               else "not handled by the operator yet")
        node.children.append(Node(WAITING, f"{control}={value}", f"{WAITING} Pending", why))
    if paused:
        node.children.append(Node(PAUSED, "paused=true", f"{PAUSED} Set", "kubectl headway resume removes it"))
    if m.spec is not None and m.spec.paused:
        node.children.append(Node(PAUSED, "spec.paused", f"{PAUSED} Set", "from git: change it there to resume"))
    return node


def _history(m: Model, now: datetime) -> Node:
    entries = m.status.history[-HISTORY_SHOWN:]
    node = Node(HISTORY, "history", "", f"last {len(entries)} of {len(m.status.history)}")
    for h in entries:
        message = h.message if len(h.message) <= HISTORY_WIDTH else h.message[: HISTORY_WIDTH - 1] + "…"
        node.children.append(Node("", f"{ago(h.time, now)}", h.event, message))
    return node


# --- layout -------------------------------------------------------------------------------------


def _table(root: Node) -> list[str]:
    rows: list[tuple[str, str, str, str, list[str]]] = []  # (prefix+name, status, info, note prefix, notes)

    def walk(node: Node, prefix: str, sub: str) -> None:
        label = f"{node.icon} {node.name}" if node.icon else node.name
        rows.append((prefix + label, node.status, node.info, sub + ("│  " if node.children else "   "), node.notes))
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            walk(child, sub + ("└──" if last else "├──"), sub + ("   " if last else "│  "))

    walk(root, "", "")
    name_width = max(len(r[0]) for r in rows) + 2
    status_width = max(len(r[1]) for r in rows) + 2
    out = [f"{'NAME':<{name_width}}{'STATUS':<{status_width}}INFO"]
    for name, status, info, note_prefix, notes in rows:
        out.append(f"{name:<{name_width}}{status:<{status_width}}{info}".rstrip())
        out += [f"{note_prefix}  {note}".rstrip() for note in notes]
    return out
