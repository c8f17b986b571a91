"""What the user sees: a live terminal view while scenes play, and a summary in plain words.

:class:`LiveView` (rich, on a terminal) redraws a few times a second: the scene and its
narration; the ModelDeployment's phase; the rollout step with a progress bar; the traffic
weights as bars; one row per SLO verdict with its evidence moving towards the test's bound;
live requests by version; the Events as a timeline. :class:`PlainView` (``--no-live``, or
when stdout is not a terminal) prints one line per change instead: phase, step, weights,
verdicts and each new Event, so a log or CI output tells the same story.

:func:`summary` turns the outcomes into sentences: what was rolled back and why (the error
rate, the samples, the test's p-value against its bound), what was promoted, and where the
picture is.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from headway.planning.verdict_types import DEFAULT_ALPHA
from headway.sandbox.session import Session
from headway.sandbox.story import Outcome, Scene, Snapshot, parse_time, seconds

BAR = 28
EVENTS_SHOWN = 8


# -- reading a status ----------------------------------------------------------------------------
def step_info(body: dict[str, Any] | None, now: float | None = None) -> tuple[str, float | None]:
    """("step 2/3: canary 25% for 20s", progress in [0, 1] or None) of the rollout in progress."""
    if not body:
        return "", None
    status = body.get("status") or {}
    rollout = status.get("rollout") or {}
    steps = ((body.get("spec") or {}).get("rollout") or {}).get("steps") or []
    if not rollout or not steps:
        bake = status.get("bake")
        if bake:
            since, until = parse_time(bake.get("since")), parse_time(bake.get("until"))
            if since is not None and until is not None and until > since:
                done = ((now or time.time()) - since) / (until - since)
                return f"baking {bake.get('bento', '')} (the previous version stays ready)", min(max(done, 0.0), 1.0)
        return "", None
    index = int(rollout.get("step", 0))
    if rollout.get("promoting"):
        return f"promoting {rollout.get('bento', '')}", None
    if index >= len(steps):
        return f"step {index + 1}/{len(steps)}", None
    kind, spec = next(iter(steps[index].items()))
    spec = spec if isinstance(spec, dict) else {}
    what = {"canary": f"canary {spec.get('weight', '?')}%", "shadow": f"shadow {spec.get('percent', 100)}% mirrored",
            "pause": "pause (manual gate)"}.get(kind, kind)
    text = f"step {index + 1}/{len(steps)}: {what}"
    progress = None
    started = parse_time(rollout.get("stepStartedAt"))
    if isinstance(spec.get("duration"), str) and started is not None:
        total = seconds(spec["duration"])
        elapsed = (now or time.time()) - started
        text += f" for {spec['duration']}"
        progress = min(max(elapsed / total, 0.0), 1.0) if total > 0 else 1.0
        if progress >= 1.0:
            text += ", waiting for a passing analysis"
    if rollout.get("holdReason"):
        text += f" (held: {rollout['holdReason']})"
    return text, progress


def evidence_strength(verdict: dict[str, Any]) -> float:
    """How far the test's evidence has gone towards its bound: log(1/p) / log(1/alpha), in [0, 1]."""
    p_value = verdict.get("pValue")
    if p_value is None:
        return 0.0
    p_value = max(float(p_value), 1e-300)
    return min(max(math.log(1 / p_value) / math.log(1 / DEFAULT_ALPHA), 0.0), 1.0)


def fmt_rate(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.2f}%"


def fmt_pct(value: Any) -> str:
    """A share in percent, short: 25.5%, 5%, 0.12%."""
    return "-" if value is None else f"{float(value) * 100:.3g}%"


def fmt_p(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2g}"


def bar(fraction: float, width: int = BAR) -> str:
    filled = int(round(min(max(fraction, 0.0), 1.0) * width))
    return "█" * filled + "░" * (width - filled)


def describe_verdict(verdict: dict[str, Any]) -> str:
    """One verdict in words, e.g. 'errorRate Fail: 24.2% of 159 requests failed (allowed 5%; stable 0%);
    p = 0.001 is below the bound 0.05 (e-value 963, 20 needed): the breach is shown'."""
    slo, result = str(verdict.get("slo")), str(verdict.get("result"))
    what = "failed" if slo == "errorRate" else "were slower than the SLO's max" if slo.startswith("latency") else "measured"
    if slo.startswith(("errorRate", "latency")):
        text = f"{slo} {result}: {fmt_pct(verdict.get('value'))} of {verdict.get('samples', 0)} requests {what}"
    else:  # a query SLO: the query's value
        text = f"{slo} {result}: {verdict.get('value')} over {verdict.get('samples', 0)} requests"
    text += f" (allowed {fmt_pct(verdict.get('threshold'))}" if slo.startswith(("errorRate", "latency")) else f" (max {verdict.get('threshold')}"
    if verdict.get("baselineValue") is not None:
        text += f"; stable {fmt_pct(verdict.get('baselineValue'))}" if slo.startswith(("errorRate", "latency")) \
            else f"; stable {verdict.get('baselineValue')}"
    text += ")"
    p_value = verdict.get("pValue")
    if p_value is not None:
        below = float(p_value) < DEFAULT_ALPHA
        text += f"; p = {fmt_p(p_value)} is {'below' if below else 'not below'} the bound {DEFAULT_ALPHA:g}"
        if verdict.get("statistic") is not None:
            e_value = math.exp(min(float(verdict["statistic"]), 700.0))
            text += f" (e-value {e_value:.3g}, {1 / DEFAULT_ALPHA:g} needed)"
        if below:
            text += {"Fail": ": the breach is shown", "Pass": ": shown to meet the SLO"}.get(result, "")
        else:
            text += ": not shown either way yet"
    return text


# -- the live view -------------------------------------------------------------------------------
class LiveView:
    """The rich live view; see the module docstring."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live: Live | None = None
        self.header = ""
        self.scene_text: Text = Text()
        self.notes: list[str] = []  # the current scene's
        self.run_notes: list[str] = []  # said before the first scene (--fault, --service): shown throughout
        self.finished: list[str] = []
        self.in_scene = False

    def start(self, session: Session) -> None:
        self.header = (f"run {session.run_id} · API {session.emulator.url if session.emulator else '-'} · "
                       f"Prometheus {session.prometheus.url if session.prometheus else '-'}\n"
                       f"kubectl --kubeconfig {session.kubeconfig} get md -A")
        self.console.print(Panel(self.header, title="Headway sandbox", border_style="cyan"))
        self.live = Live(Text("starting…"), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def scene(self, index: int, count: int, scene: Scene) -> None:
        self.scene_text = Text.assemble((f"Scene {index + 1}/{count}: {scene.title}", "bold"), "\n", (scene.narration, "italic"))
        self.notes = []
        self.in_scene = True

    def note(self, text: str) -> None:
        (self.notes if self.in_scene else self.run_notes).append(text)

    def outcome(self, outcome: Outcome) -> None:
        mark = "✔" if outcome.ok else "✘"
        line = f"{mark} {outcome.scene.title}: {outcome.result} after {outcome.seconds:.0f}s"
        if outcome.decision is not None:
            line += f" — {outcome.decision.message}"
        self.finished.append(line)
        if self.live is not None:
            self.live.console.print(Text(line, style="green" if outcome.ok else "red"))

    def update(self, snapshot: Snapshot) -> None:
        if self.live is not None:
            self.live.update(self.render(snapshot))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def render(self, snap: Snapshot) -> RenderableType:
        parts: list[RenderableType] = []
        if snap.scene is not None:
            parts.append(self.scene_text)
        for note in self.run_notes + self.notes:
            parts.append(Text(f"note: {note}", style="yellow"))
        body = snap.body or {}
        status = body.get("status") or {}
        meta = body.get("metadata") or {}
        title = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(f"phase {status.get('phase') or 'Pending'}", style=_phase_style(status.get("phase"))),
                     f"stable {(status.get('stable') or {}).get('bento', '-')}",
                     f"candidate {(status.get('candidate') or {}).get('bento', '-')}")
        parts.append(head)
        text, progress = step_info(body)
        if text:
            parts.append(Text(f"{text}  " + (f"{bar(progress, 20)} {progress * 100:3.0f}%" if progress is not None else "")))
        parts.append(self._weights(status))
        verdicts = (status.get("analysis") or {}).get("verdicts") or []
        if verdicts:
            parts.append(self._verdicts(verdicts))
        parts.append(self._load(snap))
        parts.append(self._events(snap.events))
        return Panel(Group(*parts), title=title, subtitle=f"t = {snap.t:.0f}s", border_style="blue")

    @staticmethod
    def _weights(status: dict[str, Any]) -> RenderableType:
        traffic = status.get("traffic") or {}
        grid = Table.grid(padding=(0, 1))
        rows = [("stable", int(traffic.get("stableWeight", 100)), "green"), ("candidate", int(traffic.get("candidateWeight", 0)), "magenta")]
        if traffic.get("mirrorPercent"):
            rows.append(("mirrored", int(traffic["mirrorPercent"]), "cyan"))
        for name, weight, style in rows:
            grid.add_row(Text(f"{name:>9}"), Text(bar(weight / 100), style=style), Text(f"{weight:3d}%"))
        return grid

    def _verdicts(self, verdicts: list[dict[str, Any]]) -> RenderableType:
        """One row per SLO; fits 80 columns: short headings, no variant column when only the
        candidate is judged, and an evidence bar as wide as the terminal leaves room for. With
        several variants (an experiment) on a narrow terminal, the stable column goes and
        Inconclusive is shortened."""
        with_variant = any(str(v.get("variant", "candidate")) != "candidate" for v in verdicts)
        tight = with_variant and self.console.width < 100
        slo_width = max([len(str(v.get("slo"))) for v in verdicts] + [3])
        fixed = slo_width + 6 + 7 + 5 + 6 + 2 * 8 + 4  # SLO, value, allowed, n, p; gaps; the panel's edges
        fixed += 8 if tight else 12 + 6  # result (Inconclusive), stable
        if with_variant:
            fixed += max(len(str(v.get("variant", ""))) for v in verdicts) + 2
        width = min(max(self.console.width - fixed, 5), 14)
        table = Table(title=f"SLO verdicts (evidence: the test's way to its bound p < {DEFAULT_ALPHA:g})", title_justify="left",
                      expand=False, box=None, pad_edge=False)
        columns = ["SLO", *(["variant"] if with_variant else []), "result", "value", "allowed",
                   *([] if tight else ["stable"]), "n", "evidence", "p"]
        for column in columns:
            table.add_column(column, no_wrap=True, justify="right" if column in ("value", "allowed", "stable", "n", "p") else "left")
        for v in verdicts:
            result = str(v.get("result"))
            style = {"Pass": "green", "Fail": "red"}.get(result, "yellow")
            table.add_row(str(v.get("slo")), *([str(v.get("variant", ""))] if with_variant else []),
                          Text("Inconcl." if tight and result == "Inconclusive" else result, style=style),
                          fmt_pct(v.get("value")), fmt_pct(v.get("threshold")),
                          *([] if tight else [fmt_pct(v.get("baselineValue"))]), str(v.get("samples", 0)),
                          Text(bar(evidence_strength(v), width), style=style), fmt_p(v.get("pValue")))
        return table

    @staticmethod
    def _load(snap: Snapshot) -> RenderableType:
        words = []
        for variant, counts in snap.load.items():
            words.append(f"{variant}: {counts['answered']} answered, {counts['errors']} errors"
                         + (f", {counts['mirrored']} mirrored" if counts.get("mirrored") else ""))
        live = ""
        if snap.sample is not None and snap.sample.error_rate:
            live = " · Prometheus (5s): " + ", ".join(
                f"{v} {r * 100:.1f}% errors" + (f" p{snap.percentile:g} {snap.sample.latency[v] * 1000:.0f}ms" if v in snap.sample.latency else "")
                for v, r in sorted(snap.sample.error_rate.items()))
        return Text("requests " + ("; ".join(words) or "none yet") + live, style="dim")

    @staticmethod
    def _events(events: list[dict[str, Any]]) -> RenderableType:
        table = Table(title="Events", title_justify="left", box=None, show_header=False, pad_edge=False, expand=True)
        shown = events[-EVENTS_SHOWN:]
        reason_width = min(max([len(str(e.get("reason"))) for e in shown] + [6]), 18)
        table.add_column("time", style="dim", no_wrap=True, width=8)
        table.add_column("reason", no_wrap=True, width=reason_width, overflow="ellipsis")
        table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)  # one line each: the view fits a terminal
        for event in shown:
            when = (event.get("lastTimestamp") or event.get("eventTime") or "")[11:19]
            style = "red" if event.get("type") == "Warning" else ""
            table.add_row(when, Text(str(event.get("reason")), style=style or "bold"), str(event.get("message", "")).splitlines()[0][:200] if event.get("message") else "")
        return table


def _phase_style(phase: Any) -> str:
    return {"Succeeded": "bold green", "RolledBack": "bold red", "Failed": "bold red", "Degraded": "bold yellow"}.get(str(phase), "bold cyan")


# -- the plain view --------------------------------------------------------------------------------
class PlainView:
    """One line per change; for logs, CI and terminals without live redraws."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.last: dict[str, str] = {}
        self.seen_events: set[str] = set()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, session: Session) -> None:
        self.say(f"Headway sandbox {session.run_id}: API server {session.emulator.url if session.emulator else '-'}, "
                 f"Prometheus {session.prometheus.url if session.prometheus else '-'}")
        self.say(f"  kubectl --kubeconfig {session.kubeconfig} get md -A")

    def scene(self, index: int, count: int, scene: Scene) -> None:
        self.say(f"\n== Scene {index + 1}/{count}: {scene.title}")
        if scene.narration:
            self.say(f"   {scene.narration}")
        self.last = {}

    def note(self, text: str) -> None:
        self.say(f"   note: {text}")

    def update(self, snapshot: Snapshot) -> None:
        body = snapshot.body or {}
        status = body.get("status") or {}
        traffic = status.get("traffic") or {}
        step, _ = step_info(body)
        lines = {
            "phase": f"phase {status.get('phase') or 'Pending'}" + (f", {step}" if step else ""),
            "weights": f"weights stable {traffic.get('stableWeight', 100)}% candidate {traffic.get('candidateWeight', 0)}%"
                       + (f", mirrored {traffic['mirrorPercent']}%" if traffic.get("mirrorPercent") else ""),
            "verdicts": "; ".join(f"{v.get('slo')} {v.get('result')} {fmt_rate(v.get('value'))}/{v.get('samples', 0)}"
                                  for v in (status.get("analysis") or {}).get("verdicts") or []),
        }
        for key, text in lines.items():
            if text and self.last.get(key) != text:
                self.last[key] = text
                self.say(f"   [{snapshot.t:6.1f}s] {text}")
        for event in snapshot.events:
            uid = str(event["metadata"].get("uid") or event["metadata"]["name"])
            if uid not in self.seen_events:
                self.seen_events.add(uid)
                self.say(f"   [{snapshot.t:6.1f}s] event {event.get('type', '')} {event.get('reason')}: {event.get('message', '')}")

    def outcome(self, outcome: Outcome) -> None:
        self.say(f"   => {'ok' if outcome.ok else 'NOT AS EXPECTED'}: {outcome.result} after {outcome.seconds:.0f}s")

    def stop(self) -> None:
        pass


# -- the summary ---------------------------------------------------------------------------------
def summary(outcomes: list[Outcome]) -> list[str]:
    """What happened, in sentences."""
    lines: list[str] = []
    for i, outcome in enumerate(outcomes, 1):
        scene, status = outcome.scene, outcome.status
        head = f"{i}. {scene.title} ({scene.bento}): "
        if outcome.result == "serving":
            stable = outcome.load.get("stable", {})
            lines.append(head + f"deployed and serving; it answered {stable.get('answered', 0)} live requests meanwhile, "
                         f"{stable.get('errors', 0)} of them with errors"
                         + (f", {stable['rejected']} refused (4xx: check --endpoint/--payload)" if stable.get("rejected") else "") + ".")
        elif outcome.result == "rolledBack":
            rolled = status.get("rolledBack") or {}
            lines.append(head + f"rolled back automatically by the operator {outcome.seconds:.0f}s after it was applied, "
                         f"reason {rolled.get('reason', '?')}; {(status.get('stable') or {}).get('bento', '?')} kept serving.")
            evidence = (outcome.decision.evidence if outcome.decision else None) or {}
            for verdict in (evidence.get("analysis") or {}).get("verdicts") or []:
                if verdict.get("result") == "Fail":
                    lines.append("   evidence: " + describe_verdict(verdict))
            predictions = (evidence.get("analysis") or {}).get("predictions")
            if predictions and predictions.get("result") == "Fail":
                lines.append("   evidence: predictions " + str(predictions.get("message", "")))
            candidate = outcome.load.get("candidate", {})
            if candidate:
                answered, errors = candidate.get("answered", 0), candidate.get("errors", 0)
                share = f" ({errors / answered:.0%})" if answered else ""
                stable_bento = (status.get("stable") or {}).get("bento", "stable")
                if answered or not candidate.get("mirrored"):
                    lines.append(f"   what users saw: while it had its canary share it answered {answered} live requests, {errors} of them "
                                 f"with errors{share}; then all traffic went back to {stable_bento}.")
                else:
                    lines.append(f"   what users saw: nothing; it answered only mirrored requests ({candidate.get('mirrored', 0)}), "
                                 f"users got {stable_bento}'s answers.")
        elif outcome.result == "promoted":
            candidate = outcome.load.get("candidate", {})
            lines.append(head + f"promoted {outcome.seconds:.0f}s after it was applied; every step passed its analysis "
                         f"({candidate.get('answered', 0)} live and {candidate.get('mirrored', 0)} mirrored requests "
                         f"answered by it as the candidate, {candidate.get('errors', 0)} errors).")
            evidence = (outcome.decision.evidence if outcome.decision else None) or {}
            for verdict in (evidence.get("analysis") or {}).get("verdicts") or []:
                lines.append("   evidence: " + describe_verdict(verdict))
        elif outcome.result == "settled":
            lines.append(head + f"settled in phase {status.get('phase')} after {outcome.seconds:.0f}s"
                         + (f", stable {(status.get('stable') or {}).get('bento')}" if status.get("stable") else "") + ".")
            if outcome.decision is not None:
                lines.append(f"   last decision: {outcome.decision.event}: {outcome.decision.message}")
        else:
            lines.append(head + f"did not end as expected ({scene.expect}): {outcome.result}; phase {status.get('phase')}.")
        if not outcome.ok and outcome.result != scene.expect:
            if outcome.result in ("serving", "rolledBack", "promoted", "settled"):
                lines.append(f"   expected {scene.expect}, but it was {outcome.result}.")
    return lines
