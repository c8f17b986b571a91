"""The picture of a sandbox run: weights, error rate and latency over time, every decision marked.

Hand-written SVG (no plotting library): three panels sharing the time axis —

1. traffic: the stable and candidate weights (the applied split, from status.traffic) and the
   mirrored share, in percent;
2. error rate per version, as Prometheus measured it (5 s rate of 5xx over all requests),
   with the errorRate SLO's max as a dashed red line;
3. latency per version at the percentile of the first latency SLO (p99 without one), with
   that SLO's max as a dashed red line.

Vertical lines mark the operator's decisions (status.history: RolloutStarted, StepStarted,
RolledBack, Promoted, ...), labelled, red for rollbacks and green for promotions; scene
starts are grey lines with their numbered titles at the top (cut to the room before the
next one; the whole title is the label's tooltip).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from headway.sandbox.story import Decision, Sample, Timeline

WIDTH, PANEL_HEIGHT, GAP, LEFT, RIGHT, TOP = 1000, 150, 46, 70, 150, 60
COLORS = {"stable": "#2e7d32", "candidate": "#8e24aa", "previous": "#6d4c41", "mirror": "#00838f"}
DECISION_COLORS = {"RolledBack": "#c62828", "Promoted": "#2e7d32", "Aborted": "#c62828", "BakeBreach": "#c62828"}
MARKED = {"RolloutStarted", "StepStarted", "StepCompleted", "PromotionStarted", "Promoted", "RolledBack", "Aborted",
          "BakeStarted", "BakeCompleted", "BakeBreach", "Deployed", "SpecRejected", "AnalysisRestarted"}


def _nice_max(value: float) -> float:
    for bound in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if value <= bound:
            return bound
    return value


def render_svg(timeline: Timeline, key: str, title: str = "") -> str:
    """The SVG document for ModelDeployment ``key`` ("namespace/name")."""
    samples: Sequence[Sample] = timeline.samples.get(key, [])
    decisions: Sequence[Decision] = [d for d in timeline.decisions.get(key, []) if d.event in MARKED]
    end = max([s.t for s in samples] + [d.t for d in decisions] + [1.0])
    start = min([s.t for s in samples] + [d.t for d in decisions] + [0.0])
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + 3 * PANEL_HEIGHT + 2 * GAP + 50

    def x(t: float) -> float:
        return LEFT + (t - start) / max(end - start, 1e-9) * plot_w

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{escape(title or "Headway sandbox: " + key)}</text>',
    ]
    starts = [(t, scene) for t, scene in timeline.scenes if start <= t <= end]
    for n, (t, scene) in enumerate(starts):
        # Numbered, and cut to the room before the next scene's start (about 6 px a character).
        room = (x(starts[n + 1][0]) if n + 1 < len(starts) else LEFT + plot_w + RIGHT) - x(t) - 8
        label = f"{n + 1}. {scene}"
        if len(label) * 6.2 > room:
            label = label[:max(int(room / 6.2) - 1, 2)].rstrip() + "…"
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP - 14}" x2="{x(t):.1f}" y2="{TOP + 3 * PANEL_HEIGHT + 2 * GAP}" stroke="#90a4ae" stroke-width="1.5"/>')
        out.append(f'<text x="{x(t) + 3:.1f}" y="{TOP - 16}" fill="#455a64">{escape(label)}<title>{escape(scene)}</title></text>')

    variants = sorted({v for s in samples for v in list(s.error_rate) + list(s.latency)} | {"stable"})
    limits = timeline.limits.get(key, {})
    max_error = _nice_max(max([r for s in samples for r in s.error_rate.values()] + [0.01, limits.get("errorRate", 0.0) * 1.2]))
    max_latency = _nice_max(max([v for s in samples for v in s.latency.values()] + [0.05, limits.get("latency", 0.0) * 1.2]))
    percentile = timeline.percentile.get(key, 99.0)
    panels: list[tuple[str, float, Callable[[float], str], list[tuple[str, str, list[tuple[float, float]]]]]] = [
        ("traffic (%)", 100.0, lambda v: f"{v:.0f}", [
            ("stable", COLORS["stable"], [(s.t, float(s.weights.get("stable", 0))) for s in samples]),
            ("candidate", COLORS["candidate"], [(s.t, float(s.weights.get("candidate", 0))) for s in samples]),
            ("mirrored", COLORS["mirror"], [(s.t, float(s.mirror)) for s in samples]),
        ]),
        ("error rate", max_error, lambda v: f"{v * 100:g}%", [
            (v, COLORS.get(v, "#455a64"), [(s.t, s.error_rate[v]) for s in samples if v in s.error_rate]) for v in variants]),
        (f"latency p{percentile:g}", max_latency, lambda v: f"{v * 1000:.0f}ms", [
            (v, COLORS.get(v, "#455a64"), [(s.t, s.latency[v]) for s in samples if v in s.latency]) for v in variants]),
    ]
    for i, (label, top_value, fmt, series) in enumerate(panels):
        y0 = TOP + i * (PANEL_HEIGHT + GAP)

        def y(v: float, y0: float = y0, top_value: float = top_value) -> float:
            return y0 + PANEL_HEIGHT - min(max(v / top_value, 0.0), 1.0) * PANEL_HEIGHT

        out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="#fafafa" stroke="#b0bec5"/>')
        out.append(f'<text x="{LEFT}" y="{y0 - 5}" font-weight="bold">{escape(label)}</text>')
        for fraction in (0.0, 0.5, 1.0):
            value = top_value * fraction
            out.append(f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{LEFT + plot_w}" y2="{y(value):.1f}" stroke="#eceff1"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#546e7a">{fmt(value)}</text>')
        limit = limits.get({1: "errorRate", 2: "latency"}.get(i, ""))
        if limit is not None:  # the SLO's max: what the operator judges against
            out.append(f'<line x1="{LEFT}" y1="{y(limit):.1f}" x2="{LEFT + plot_w}" y2="{y(limit):.1f}" stroke="#c62828" '
                       'stroke-width="1" stroke-dasharray="6 3"/>')
            out.append(f'<text x="{LEFT + plot_w - 4}" y="{y(limit) - 3:.1f}" text-anchor="end" fill="#c62828">SLO max {fmt(limit)}</text>')
        legend_y = y0 + 14
        for name, color, points in series:
            if not points:
                continue
            path = _step_path(points, x, y) if i == 0 else _line_path(points, x, y)
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            out.append(f'<line x1="{LEFT + plot_w + 12}" y1="{legend_y - 4}" x2="{LEFT + plot_w + 30}" y2="{legend_y - 4}" stroke="{color}" stroke-width="3"/>')
            out.append(f'<text x="{LEFT + plot_w + 34}" y="{legend_y}">{escape(name)}</text>')
            legend_y += 16
    bottom = TOP + 3 * PANEL_HEIGHT + 2 * GAP
    for n, decision in enumerate(decisions):
        color = DECISION_COLORS.get(decision.event, "#78909c")
        strong = decision.event in DECISION_COLORS
        out.append(f'<line x1="{x(decision.t):.1f}" y1="{TOP}" x2="{x(decision.t):.1f}" y2="{bottom}" stroke="{color}" '
                   f'stroke-width="{2 if strong else 1}" stroke-dasharray="{"none" if strong else "4 3"}">'
                   f'<title>{escape(decision.event + ": " + decision.message)}</title></line>')
        label_y = bottom + 14 + (n % 3) * 12
        weight = ' font-weight="bold"' if strong else ""
        out.append(f'<text x="{x(decision.t) + 2:.1f}" y="{label_y}" fill="{color}" font-size="10"{weight}>{escape(decision.event)}</text>')
    ticks = 10
    for k in range(ticks + 1):
        t = start + (end - start) * k / ticks
        out.append(f'<text x="{x(t):.1f}" y="{height - 4}" text-anchor="middle" fill="#546e7a">{t:.0f}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _line_path(points: list[tuple[float, float]], x: Callable[[float], float], y: Callable[[float], float]) -> str:
    return " ".join(("M" if i == 0 else "L") + f"{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points))


def _step_path(points: list[tuple[float, float]], x: Callable[[float], float], y: Callable[[float], float]) -> str:
    """Weights change in steps: hold each value until the next sample."""
    parts: list[str] = []
    for i, (t, v) in enumerate(points):
        if i == 0:
            parts.append(f"M{x(t):.1f},{y(v):.1f}")
        else:
            parts.append(f"H{x(t):.1f} V{y(v):.1f}")
    return " ".join(parts)
