"""The deployment plan a ModelDeployment implies, as Markdown a reviewer signs (``headway plan``).

Pure: it reads a parsed spec, the object's name, namespace and annotations, and an approval
policy, and returns text. The CLI reads the manifest, validates it (``parse_spec``,
``check_spec``) and writes the result; nothing here reads a file or the cluster, so the plan
says what the manifest implies, not what the cluster runs (the operator's --prometheus-url,
its allow-list and its price table are not known here).

Escalation contacts come from annotations (``ESCALATION_ANNOTATIONS``); a missing one is
printed as "not set" so that the reviewer notices. Approvals come from an ``ApprovalPolicy``
the caller passes: ``spec.governance`` does not exist yet, so the CLI passes ``NO_APPROVALS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headway.api.spec import (
    Analysis, Autoscaling, Cost, Experiment, ModelDeploymentSpec, Monitoring, Resources, Rollout, RolloutStep, ScalingRules, Slo,
    Traffic,
)
from headway.planning.bake import resolve as resolve_baseline
from headway.planning.capabilities import capabilities_of
from headway.planning.controls import ESCALATION, PREFIX
from headway.planning.verdict_types import DEFAULT_ALPHA, DEFAULT_MARGIN

# The operator knows these are not controls (controls.ESCALATION: never reported as typos).
ANNOTATION_OWNER, ANNOTATION_ESCALATION, ANNOTATION_RUNBOOK, ANNOTATION_PAGER = (PREFIX + name for name in ESCALATION)
# escalation: comma-separated contacts, in the order to call them; runbook: a URL; pager: a service or rotation
# (annotation, what a reviewer reads) in the order the plan lists them.
ESCALATION_ANNOTATIONS: tuple[tuple[str, str], ...] = (
    (ANNOTATION_OWNER, "Owner"),
    (ANNOTATION_ESCALATION, "Escalation contacts"),
    (ANNOTATION_RUNBOOK, "Runbook"),
    (ANNOTATION_PAGER, "Pager"),
)
NOT_SET = "**not set**"
VERDICTS_DOC = "docs/verdicts.md"


@dataclass(frozen=True)
class RequiredApproval:
    """Approvals a role must give before a stage of the rollout."""

    role: str
    count: int = 1
    stage: str = "before promotion"


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who must approve, and where the policy comes from (``spec.governance`` once it exists)."""

    required: tuple[RequiredApproval, ...] = ()
    source: str = "spec.governance"
    risk_tier: str | None = None


NO_APPROVALS = ApprovalPolicy()
STAGE_WORDS = {"BeforeFirstCanary": "before the first canary step", "BeforePromotion": "before promotion"}


def policy_of(spec: ModelDeploymentSpec) -> ApprovalPolicy:
    """spec.governance's approvals (its requiredApprovals, or its risk tier's defaults)."""
    if spec.governance is None:
        return NO_APPROVALS
    required = tuple(RequiredApproval(a.role, a.count, STAGE_WORDS[a.stage]) for a in spec.governance.policy())
    source = "spec.governance.requiredApprovals" if spec.governance.required_approvals is not None else "spec.governance.riskTier"
    return ApprovalPolicy(required, source, spec.governance.risk_tier)


# --- words -------------------------------------------------------------------------------------


def percent(share: float) -> str:
    """0.01 -> "1%", 0.9 -> "90%", 0.0025 -> "0.25%"."""
    return f"{round(share * 100, 6):g}%"


def _number(value: float) -> str:
    return f"{value:g}"


def _code(text: str) -> str:
    return f"`{text}`"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def slo_name(slo: Slo) -> str:
    if slo.error_rate is not None:
        return "errorRate"
    if slo.latency is not None:
        return "latency"
    assert slo.query is not None
    return slo.query.name


def slo_bound(slo: Slo) -> str:
    """The SLO's bound in words: "error rate ≤ 1%", "p99 latency ≤ 250ms", "precision ≥ 90%"."""
    if slo.error_rate is not None:
        return f"error rate ≤ {percent(slo.error_rate.max)}"
    if slo.latency is not None:
        return f"p{_number(slo.latency.percentile)} latency ≤ {slo.latency.max}"
    query = slo.query
    assert query is not None
    if query.numerator is not None:  # a ratio: one-sided, a share in [0, 1]
        if query.min is not None:
            return f"{query.name} ≥ {percent(query.min)}"
        assert query.max is not None
        return f"{query.name} ≤ {percent(query.max)}"
    bounds = []
    if query.min is not None:
        bounds.append(f"≥ {_number(query.min)}")
    if query.max is not None:
        bounds.append(f"≤ {_number(query.max)}")
    return f"{query.name} " + " and ".join(bounds)


def slo_meaning(slo: Slo) -> str:
    """What is counted, and whether a verdict on it can roll back."""
    if slo.error_rate is not None:
        return "HTTP 5xx among requests (bentoml_service_request_total); tested"
    if slo.latency is not None:
        slower = percent((100 - slo.latency.percentile) / 100)
        return (f"at most {slower} of requests slower than {slo.latency.max} "
                "(bentoml_service_request_duration_seconds buckets); tested")
    query = slo.query
    assert query is not None
    if query.numerator is not None:
        if query.min is not None:
            return (f"numerator's share of the denominator's events, at least {percent(query.min)}: tested as at most "
                    f"{percent(1 - query.min)} of them outside the numerator; minRequests counts the denominator's events")
        return "numerator's share of the denominator's events; tested; minRequests counts the denominator's events"
    return "a PromQL value, **untested**: out of bounds it holds the rollout (Inconclusive) but never rolls back"


# --- sections ----------------------------------------------------------------------------------


def _where(name: str, namespace: str | None) -> str:
    return f"{namespace}/{name}" if namespace else f"{name} (namespace not set: the one it is applied to)"


def _kubectl_annotate(name: str, namespace: str | None, annotation: str) -> str:
    ns = f" -n {namespace}" if namespace else ""
    return f'kubectl annotate md/{name}{ns} headway.dev/{annotation}="$(date +%s)" --overwrite'


def _replicas(spec: ModelDeploymentSpec) -> str:
    if spec.autoscaling is not None:
        return f"{spec.autoscaling.min_replicas}–{spec.autoscaling.max_replicas} replicas, autoscaled"
    if spec.replicas is not None:
        return f"{_plural(spec.replicas, 'replica')}"
    return "1 replica"


def _provider_words(traffic: Traffic | None) -> str:
    if traffic is None:
        return "the in-cluster Service only"
    return {"gatewayApi": "Gateway API", "istio": "Istio", "none": "the in-cluster Service only"}[traffic.provider]


def _summary(name: str, spec: ModelDeploymentSpec) -> str:
    model = spec.model
    served = f"{_code(model.bento)} (image {_code(model.image)}) is served by {_replicas(spec)} through {_provider_words(spec.traffic)}"
    if spec.experiment is not None:
        arms = ", ".join(f"{v.name} {v.weight}%" for v in spec.experiment.variants)
        how = f"an A/B/n experiment splits traffic ({arms}) instead of a rollout"
    else:
        steps = spec.rollout.steps if spec.rollout is not None else []
        if steps:
            how = f"a new version goes through {_plural(len(steps), 'step')} ({', '.join(_step_short(s) for s in steps)})"
        else:
            how = "a new version replaces the stable one in place (no rollout steps)"
    slos = spec.analysis.slos if spec.analysis is not None else []
    if spec.analysis is None:
        judged = "no SLO analysis judges it and nothing rolls back automatically"
    else:
        count = _plural(len(slos), "SLO") if slos else "the implicit traffic verdict (no SLOs listed)"
        judged = f"judged against {count}, rolled back after {_plural(spec.analysis.failure_limit, 'consecutive failed verdict')}"
    bake = ""
    if spec.rollout is not None and spec.rollout.bake_time and spec.rollout.steps and spec.experiment is None:
        bake = f", then baked for {spec.rollout.bake_time} after promotion"
    return f"{served}; {how}{bake}; {judged}."


def _step_short(step: RolloutStep) -> str:
    if step.shadow is not None:
        return f"shadow {step.shadow.percent}%"
    if step.canary is not None:
        return f"canary {step.canary.weight}%"
    assert step.pause is not None
    return f"pause {step.pause.duration}" if step.pause.duration else "manual gate"


def _resources(resources: Resources | None) -> str:
    if resources is None or not (resources.requests or resources.limits or resources.gpus):
        return "not set (the namespace's defaults apply)"
    parts = []
    if resources.requests:
        parts.append("requests " + ", ".join(f"{k} {v}" for k, v in resources.requests.items()))
    if resources.limits:
        parts.append("limits " + ", ".join(f"{k} {v}" for k, v in resources.limits.items()))
    if resources.gpus:
        parts.append(f"{_plural(resources.gpus, 'NVIDIA GPU')} per pod")
    return "; ".join(parts)


def _rules(rules: ScalingRules | None) -> str | None:
    if rules is None:
        return None
    parts = []
    if rules.stabilization_window_seconds is not None:
        parts.append(f"stabilisation {rules.stabilization_window_seconds}s")
    if rules.max_percent_per_minute is not None:
        parts.append(f"at most {rules.max_percent_per_minute}% per minute")
    if rules.max_pods_per_minute is not None:
        parts.append(f"at most {_plural(rules.max_pods_per_minute, 'pod')} per minute")
    return ", ".join(parts) or None


def _autoscaling(scaling: Autoscaling) -> list[str]:
    engine = {"hpa": "HorizontalPodAutoscaler", "keda": "KEDA ScaledObject"}[scaling.chosen_engine]
    chosen = "" if scaling.engine != "auto" else " (engine auto)"
    lines = [
        f"- **Autoscaling**: {engine}{chosen} per variant, {scaling.min_replicas}–{scaling.max_replicas} replicas; "
        f"on {', '.join(m.target for m in scaling.metrics)}" + (" (the largest replica count wins)" if len(scaling.metrics) > 1 else ""),
    ]
    if any(m.needs_keda for m in scaling.metrics):
        lines.append("  - request metrics are Prometheus queries: KEDA and the operator's Prometheus are needed")
    behavior = scaling.behavior
    if behavior is not None:
        for direction, rules in (("scale up", behavior.scale_up), ("scale down", behavior.scale_down)):
            if (said := _rules(rules)) is not None:
                lines.append(f"  - {direction}: {said}")
    if scaling.scale_to_zero:
        lines.append("  - experiment variants that carry nothing scale to zero")
    lines.append("  - a change to spec.autoscaling rolls out like a model change (through the steps)")
    return lines


def _cost(cost: Cost | None) -> list[str]:
    if cost is None:
        return ["- **Cost**: no cost labels or budget (spec.cost not set)"]
    labels = ", ".join(f"{k}={v}" for k, v in cost.labels.items()) or "none"
    lines = [f"- **Cost labels**: {labels}"]
    if cost.monthly_budget is None:
        lines.append("- **Budget**: none")
    else:
        how = ("enforced: maxReplicas is capped to what fits, never below minReplicas" if cost.enforce
               else "reported only (WithinBudget=False and a Warning Event), not enforced")
        lines.append(f"- **Budget**: {_number(cost.monthly_budget)} per month, projected at maxReplicas, in the price table's currency; {how}")
        if cost.enforce and cost.max_increase is not None:
            lines.append(f"- **Cost per prediction**: a candidate that raises the cost per 1,000 predictions by more than "
                         f"{_number(cost.max_increase)}% is held")
    return lines


def _env(spec: ModelDeploymentSpec) -> str | None:
    if not spec.model.env:
        return None
    names = []
    for env in spec.model.env:
        source = env.value_from
        if source is not None and source.secret_key_ref is not None:
            names.append(f"{_code(env.name)} (Secret {source.secret_key_ref.name}, key {source.secret_key_ref.key})")
        elif source is not None and source.config_map_key_ref is not None:
            names.append(f"{_code(env.name)} (ConfigMap {source.config_map_key_ref.name}, key {source.config_map_key_ref.key})")
        else:
            names.append(f"{_code(env.name)} (literal value)")
    return ", ".join(names)


def _serving(name: str, spec: ModelDeploymentSpec) -> list[str]:
    model = spec.model
    lines = ["## Serving", "", f"- **Bento**: {_code(model.bento)}", f"- **Image**: {_code(model.image)} (port {model.port})",
             f"- **Resources per pod**: {_resources(spec.resources)}"]
    if spec.autoscaling is not None:
        lines += _autoscaling(spec.autoscaling)
    elif spec.replicas is not None:
        lines.append(f"- **Replicas**: {spec.replicas} (fixed)")
    else:
        lines.append("- **Replicas**: 1 (neither replicas nor autoscaling is set)")
    if (env := _env(spec)) is not None:
        lines.append(f"- **Environment**: {env}")
    if model.node_selector:
        lines.append("- **Node selector**: " + ", ".join(f"{k}={v}" for k, v in model.node_selector.items()))
    if model.service_account_name:
        lines.append(f"- **Service account**: {model.service_account_name}")
    lines += _cost(spec.cost)
    return lines


def _traffic(name: str, namespace: str | None, traffic: Traffic | None) -> list[str]:
    lines = ["## Traffic", ""]
    service = f"the Service {_code(name)}" + (f" in {namespace}" if namespace else "")
    if traffic is None or traffic.provider == "none":
        why = "no spec.traffic" if traffic is None else "provider none"
        lines += [f"- **Provider**: in-cluster Service only ({why}): no route object; clients reach {service}",
                  "- Canary weights are replica ratios of the pods behind that Service (5% of 3 replicas is 1 pod, about 33%); "
                  "shadow steps and a mirrored bake baseline are not possible"]
        return lines
    if traffic.provider == "gatewayApi":
        gw = traffic.gateway_api
        assert gw is not None
        refs = []
        for ref in gw.parent_refs:
            what = f"{ref.namespace or namespace or '<namespace>'}/{ref.name}"
            extra = [f"{ref.kind or 'Gateway'}"]
            if ref.section_name:
                extra.append(f"listener {ref.section_name}")
            if ref.port:
                extra.append(f"port {ref.port}")
            refs.append(f"{_code(what)} ({', '.join(extra)})")
        hostnames = ", ".join(_code(h) for h in gw.hostnames) or "none (every hostname the Gateway's listeners accept)"
        lines += ["- **Provider**: Gateway API (one HTTPRoute; weighted backendRefs, RequestMirror for shadow steps)",
                  f"- **Parent refs**: {', '.join(refs)}", f"- **Hostnames**: {hostnames}", f"- **Path prefix**: {_code(gw.path_prefix)}"]
        return lines
    istio = traffic.istio
    assert istio is not None
    gateways = ", ".join(_code(g) for g in istio.gateways) or "none (mesh traffic only)"
    lines += ["- **Provider**: Istio (one VirtualService; weighted routes, mirroring for shadow steps)",
              f"- **Hosts**: {', '.join(_code(h) for h in istio.hosts)}", f"- **Gateways**: {gateways}"]
    return lines


def _gated(spec: ModelDeploymentSpec, step: RolloutStep) -> str:
    if step.pause is not None:
        return "no"
    gates = []
    if spec.analysis is not None:
        gates.append("SLO verdicts")
    mon = spec.monitoring
    if mon is not None and mon.compare is not None and mon.compare.gate:
        gates.append("prediction comparison")
    return "yes: " + " and ".join(gates) if gates else "no (no spec.analysis)"


def _step_row(i: int, spec: ModelDeploymentSpec, step: RolloutStep, name: str, namespace: str | None) -> str:
    if step.shadow is not None:
        kind, traffic = "shadow", f"{step.shadow.percent}% of requests mirrored; its answers are discarded (users see stable's)"
        duration = f"at least {step.shadow.duration}"
    elif step.canary is not None:
        kind, traffic = "canary", f"{step.canary.weight}% of live traffic (stable {100 - step.canary.weight}%)"
        duration = f"at least {step.canary.duration}"
    else:
        assert step.pause is not None
        kind, traffic = "pause", "unchanged (the step before's)"
        duration = (step.pause.duration if step.pause.duration
                    else f"until a person promotes it: `{_kubectl_annotate(name, namespace, 'promote-step')}`")
    return f"| {i} | {kind} | {_md_cell(traffic)} | {duration} | {_gated(spec, step)} |"


def _experiment(experiment: Experiment) -> list[str]:
    lines = ["An A/B/n experiment replaces the rollout: long-running variants with fixed weights.", "",
             "| variant | weight | serves |", "|---|---:|---|"]
    for v in experiment.variants:
        serves = _code(v.model.bento) if v.model is not None else "spec.model"
        lines.append(f"| {v.name} | {v.weight}% | {serves} |")
    lines.append("")
    for rule in experiment.match:
        kind, match = ("header", rule.header) if rule.header is not None else ("cookie", rule.cookie)
        assert match is not None
        lines.append(f"- {kind} {_code(f'{match.name}: {match.value}')} is pinned to {rule.variant}")
    if experiment.decide is None:
        lines.append("- No winner is decided (no experiment.decide)")
    else:
        d = experiment.decide
        then = "promoted to stable" if d.promote_winner else "recorded only (not promoted)"
        lines.append(f"- Winner on {d.metric}: a fixed-sample test at significance {_number(d.significance)} once every "
                     f"variant has {d.min_samples} requests; the winner is {then}")
    return lines


def _bake(name: str, spec: ModelDeploymentSpec, rollout: Rollout) -> list[str]:
    if not rollout.bake_time:
        return ["- **Bake**: none (no bakeTime): once promoted, the previous version is removed and nothing judges the new stable"]
    if not rollout.steps:
        return [f"- **Bake**: bakeTime {rollout.bake_time} is set, but without rollout steps there is no promotion and no bake"]
    baseline = resolve_baseline(spec)
    lines = [f"- **Bake**: for {rollout.bake_time} after promotion the previous version stays available as "
             f"{_code(name + '-previous')}"]
    if spec.analysis is None:
        lines[0] += "; no spec.analysis: nothing judges the bake and the previous version gets no traffic"
        return lines
    if baseline.fed:
        users = "users never see its answers" if not baseline.live else "users see its answers"
        lines[0] += (f", fed {baseline.describe()} ({users}), and the new stable is judged against it with the verdicts of a step")
    else:
        lines[0] += ", without traffic (bakeBaseline none): the new stable is judged alone against the SLOs"
    return lines


def _rollout(name: str, namespace: str | None, spec: ModelDeploymentSpec) -> list[str]:
    lines = ["## Rollout", ""]
    if spec.paused:
        lines += ["- **Paused** (spec.paused: true): the rollout stays where it is until spec.paused is false", ""]
    if spec.experiment is not None:
        return lines + _experiment(spec.experiment)
    lines.append("A rollout starts when spec.model or spec.autoscaling changes; other changes (resources, replicas, cost labels) "
                 "apply at once as a rolling update.")
    lines.append("")
    rollout = spec.rollout or Rollout()
    if not rollout.steps:
        lines.append("- **Steps**: none: a new version replaces the stable Deployment in place (rolling update); no step is analysed")
    else:
        lines += ["| # | step | candidate's traffic | duration | gated by analysis |", "|---:|---|---|---|---|"]
        lines += [_step_row(i, spec, step, name, namespace) for i, step in enumerate(rollout.steps, 1)]
        lines += ["", "A step starts when the candidate has the pods its share needs, and ends when its duration has passed "
                  "and (when gated) the analysis passes. After the last step the candidate is promoted: stable rolls to it, "
                  "then takes 100% and the candidate is removed."]
        lines.append("")
    lines += _bake(name, spec, rollout)
    return lines


def _slos(analysis: Analysis | None) -> list[str]:
    lines = ["## SLOs", ""]
    if analysis is None:
        return lines + ["**None** (spec.analysis not set): no verdict gates any step, steps advance on their duration alone, "
                        "and nothing rolls back automatically."]
    if analysis.slos:
        lines += ["| SLO | bound | what is measured |", "|---|---|---|"]
        lines += [f"| {slo_name(s)} | {slo_bound(s)} | {_md_cell(slo_meaning(s))} |" for s in analysis.slos]
    else:
        lines.append("No SLOs listed: the implicit traffic verdict only (a Fail when the candidate's error rate is shown worse "
                     "than stable's).")
    source = (analysis.prometheus.url if analysis.prometheus is not None and analysis.prometheus.url
              else "the operator's --prometheus-url")
    lines += ["", f"- **Measured** every {analysis.interval} from {source}, the candidate against stable over the same window",
              f"- **minRequests**: {analysis.min_requests}: fewer requests in a verdict's window (for a ratio SLO: events of its "
              "denominator) is Inconclusive, never a Pass",
              "", f"**What the statistics guarantee** ({VERDICTS_DOC}, \"The false-rollback budget\"): over the whole rollout "
              f"(every analysed step and the bake) a version that meets every tested SLO and is no worse than stable (within a "
              f"{percent(DEFAULT_MARGIN)} margin) gets a failed verdict with probability at most {percent(DEFAULT_ALPHA)}, so it is "
              f"rolled back by the analysis with probability at most {percent(DEFAULT_ALPHA)}, whatever failureLimit; a step passes "
              f"an SLO that is breached throughout with probability at most {percent(DEFAULT_ALPHA)}. A Pass means the SLO is shown "
              "to hold, not merely that no breach was seen; an incident stable shares is Inconclusive, never blamed on the "
              "candidate. Assumed: independent pods × intervals (independent requests without per-pod series) and a "
              "spec.analysis that does not change during the rollout; not covered: onInconclusive rollback."]
    untested = [s.query.name for s in analysis.slos if s.query is not None and s.query.promql is not None]
    if untested:
        lines.append("")
        lines.append(f"**Untested**: {', '.join(untested)} (promql values): outside their bounds they hold the rollout but never "
                     "roll back; prefer a numerator/denominator ratio.")
    return lines


def _rollback(name: str, namespace: str | None, spec: ModelDeploymentSpec) -> list[str]:
    lines = ["## Rollback triggers", ""]
    analysis = spec.analysis
    if analysis is None:
        lines.append("- **Failed SLO verdicts**: none (no spec.analysis): no SLO rolls anything back")
    else:
        lines.append(f"- **Failed verdicts**: the candidate rolls back after {_plural(analysis.failure_limit, 'consecutive failed verdict')} "
                     f"(failureLimit {analysis.failure_limit}): all traffic to stable, the candidate to zero replicas, phase RolledBack, "
                     "a Warning Event with the evidence")
        if analysis.on_inconclusive == "hold":
            what = "the rollout holds (phase Degraded) while stable keeps serving; nothing rolls back"
        else:
            what = f"the candidate rolls back (outside the {percent(DEFAULT_ALPHA)} bound: a rollback asked for when the analysis cannot conclude)"
        lines.append(f"- **Inconclusive verdicts**: after {analysis.inconclusive_limit} in a row (inconclusiveLimit), "
                     f"onInconclusive {analysis.on_inconclusive}: {what}")
    mon = spec.monitoring
    if mon is not None and mon.compare is not None and mon.compare.gate:
        lines.append(f"- **Prediction comparison**: answers shown to differ from stable's by more than {percent(mon.compare.max_difference)} "
                     "(total variation) roll the candidate back (reason FailedAnalysis)")
    rollout = spec.rollout
    if rollout is not None and rollout.bake_time and rollout.steps and spec.experiment is None and analysis is not None:
        baseline = resolve_baseline(spec)
        if baseline.fed:
            bake = ("a failed verdict shown against the previous version restores it (FailedBake); a breach both versions share "
                    "is Inconclusive and restores nothing; a breach not compared with it (previous version not serving yet, or "
                    "fewer than minRequests of its requests) ")
        else:
            bake = "a breach is never compared with the previous version: it "
        if rollout.rollback_without_baseline:
            bake += "restores the previous version (rollbackWithoutBaseline)"
        else:
            bake += "is reported (Warning Event BakeBreach, phase Degraded) and the new stable keeps serving"
        lines.append(f"- **During the bake** ({rollout.bake_time}): {bake}")
    lines.append(f"- **Manual abort**: `{_kubectl_annotate(name, namespace, 'abort')}` (all traffic to stable, the candidate to "
                 "zero replicas; during the promotion it restores the previous version)")
    lines.append("- **Not a rollback**: a candidate that loses its pods gets no traffic and the rollout holds (Degraded) until it recovers")
    return lines


def _monitoring(mon: Monitoring | None) -> list[str]:
    lines = ["## Monitoring", ""]
    if mon is None:
        return lines + ["Not configured (spec.monitoring not set): no data-drift tests and no comparison of the candidate's answers."]
    features = ", ".join(mon.features) or "every feature of the profile"
    lines += [f"- **Reference profile**: ConfigMap {_code(mon.profile.config_map)}, key {_code(mon.profile.key)}",
              f"- **Watched**: {features}" + ("; and the predictions" if mon.prediction else ""),
              f"- **Data drift**: every {mon.interval} the stable's last {mon.window} is tested against the profile; a feature has "
              f"drifted when its test rejects at alpha {_number(mon.alpha)} (Holm across features) and its PSI is at least "
              f"{_number(mon.min_effect)}; fewer than {mon.min_samples} observations are not judged",
              "- Drift is reported (condition DataDrift, an Event), never acted on: the model keeps serving"]
    compare = mon.compare
    if compare is None:
        lines.append("- **Prediction comparison**: none (no compare)")
    else:
        how = ("gate: a shadow or canary step passes only when the answers are shown to differ by less than that"
               if compare.gate else "reported only (no gate)")
        lines.append(f"- **Prediction comparison**: during shadow and canary steps the candidate's answers against the stable's, "
                     f"maxDifference {percent(compare.max_difference)} (total variation); {how}")
        if compare.expected_shift:
            lines.append(f"  - expected to change (left out): {', '.join(_code(b) for b in compare.expected_shift)}")
    return lines


def _approvals(policy: ApprovalPolicy) -> list[str]:
    lines = ["## Approvals", ""]
    if not policy.required:
        if policy.risk_tier is not None:
            return lines + [f"None required ({policy.source}, risk tier {policy.risk_tier})."]
        return lines + [f"None required: no approval policy ({policy.source}) is configured."]
    tier = f" (risk tier {policy.risk_tier})" if policy.risk_tier else ""
    lines.append(f"From {policy.source}{tier}:")
    lines.append("")
    lines += [f"- {_plural(a.count, 'approval')} by role {_code(a.role)}, {a.stage}" for a in policy.required]
    return lines


def _escalation(annotations: Mapping[str, str]) -> list[str]:
    lines = ["## Escalation", "", "| | annotation | value |", "|---|---|---|"]
    missing = 0
    for key, label in ESCALATION_ANNOTATIONS:
        raw = (annotations.get(key) or "").strip()
        if not raw:
            missing += 1
            value = NOT_SET
        elif key == ANNOTATION_ESCALATION:
            value = ", ".join(c.strip() for c in raw.split(",") if c.strip())
        elif key == ANNOTATION_RUNBOOK and not raw.startswith(("https://", "http://")):
            value = f"{raw} (not a URL)"
        else:
            value = raw
        lines.append(f"| {label} | {_code(key)} | {_md_cell(value)} |")
    if missing:
        lines += ["", f"{missing} of {len(ESCALATION_ANNOTATIONS)} escalation annotations are not set."]
    return lines


def _signatures(policy: ApprovalPolicy) -> list[str]:
    roles = [a.role for a in policy.required for _ in range(a.count)] or ["reviewer"]
    return ["## Sign-off", "", "| role | name | date | decision |", "|---|---|---|---|", *[f"| {r} | | | |" for r in roles]]


def signoff_markdown(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str | None = None,
    annotations: Mapping[str, str] | None = None,
    approvals: ApprovalPolicy | None = None,
    ignored: Sequence[tuple[str, str]] = (),
) -> str:
    """The deployment plan of one ModelDeployment as Markdown (``ignored``: fields set but not acted on;
    ``approvals`` None: spec.governance's)."""
    if approvals is None:
        approvals = policy_of(spec)
    # capabilities_of refuses an unknown provider: the spec parsed, so the provider is known.
    capabilities_of(spec.traffic)
    sections = [
        [f"# Deployment plan: {_where(name, namespace)}", "", _summary(name, spec)],
        _serving(name, spec),
        _traffic(name, namespace, spec.traffic),
        _rollout(name, namespace, spec),
        _slos(spec.analysis),
        _rollback(name, namespace, spec),
        _monitoring(spec.monitoring),
        _approvals(approvals),
        _escalation(annotations or {}),
    ]
    if ignored:
        sections.append(["## Not acted on", "", *[f"- {_code(field)}: {why}" for field, why in ignored]])
    sections.append(_signatures(approvals))
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def not_planned_markdown(objects: Sequence[tuple[str, str, str]]) -> str:
    """The other objects of the manifests, as (kind, name, where it was read): listed so the reviewer knows they were seen."""
    if not objects:
        return ""
    return "\n".join(["## Not planned", "", "Only ModelDeployments are planned; these objects were read but are not part of the plan:", "",
                      *[f"- {kind} {_code(name)} ({source})" for kind, name, source in objects]]) + "\n"
