"""Cost: an observation (the operator's price table) plus a status section (``status.cost``).

A pod's hourly price is ``vCPU x prices.vcpu_hour + GiB x prices.gib_hour + GPUs x
prices.gpu_hour``, from ``spec.resources``: the request of each resource, or its limit when
no request is set (Kubernetes then requests the limit); a resource with neither is not
priced. Every variant runs the same pod, so a variant costs its replicas times that price:

- **now**: the replicas its Deployment asks for (``spec.replicas``: what Headway set, or its
  scaler's latest decision), 0 without a Deployment;
- **at max**: its scaler's ``maxReplicas`` (capped by the budget with ``spec.cost.enforce``),
  or its fixed replicas; a variant Headway keeps as it is (draining) counts its replicas now,
  one whose Deployment is about to be removed counts 0;
- **per 1,000 predictions**: when this plan records an analysis measurement, its cost over
  the measured window (at the replicas running now) divided by the thousands of requests the
  measurement counted for it. Without a new measurement the last value stays, as long as the
  variant runs the same revision.

Totals add the variants up; a month is 730 hours. The budget (``spec.cost.monthlyBudget``)
is checked against the total at max: condition ``WithinBudget`` (one Warning Event
``OverBudget`` per change). With ``enforce``, ``max_replicas_cap()`` gives the largest
``maxReplicas`` per variant that fits, never below ``minReplicas``: a budget never stops a
model. Without a price table there is no ``status.cost``, and a budget is ``Unknown``.
Arithmetic is exact (``Decimal``); status holds floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Literal

from headway.api.serving import Resources
from headway.api.spec import ModelDeploymentSpec
from headway.api.status import Condition, CostStatus, ModelDeploymentStatus, VariantCost
from headway.api.types import parse_quantity
from headway.planning.conditions import EventIntent
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, VariantWorkload, revision_of
from headway.planning.observe import DeploymentState
from headway.planning.measure import Measurement

HOURS_PER_MONTH = Decimal(730)
GIB = Decimal(2**30)
PER_1K_DIGITS = Context(prec=6)  # cost per 1,000 predictions: six significant digits
NO_PRICE_TABLE = ("the operator has no price table: set the Helm values prices.vcpuHour, prices.memoryGiBHour, "
                  "prices.gpuHour and prices.currency (flags --price-vcpu-hour, --price-gib-hour, --price-gpu-hour, --currency)")
Triple = tuple[Literal["True", "False", "Unknown"], str, str]


@dataclass(frozen=True)
class Prices:
    """The price table cost is computed from (per hour of one unit), in ``currency``."""

    vcpu_hour: float = 0.0
    gib_hour: float = 0.0  # memory, per GiB
    gpu_hour: float = 0.0
    currency: str = "USD"

    @property
    def configured(self) -> bool:
        return self.vcpu_hour > 0 or self.gib_hour > 0 or self.gpu_hour > 0


def _amount(resources: Resources, name: str) -> Decimal:
    """A resource's request, else its limit, else 0 (an unparsable quantity is a spec problem: 0 here)."""
    value = resources.requests.get(name, resources.limits.get(name))
    if value is None:
        return Decimal(0)
    try:
        return parse_quantity(value)
    except ValueError:
        return Decimal(0)


def pod_hourly(resources: Resources | None, prices: Prices) -> Decimal:
    """What one model pod costs per hour."""
    if resources is None:
        return Decimal(0)
    cpu, memory = _amount(resources, "cpu"), _amount(resources, "memory") / GIB
    return (cpu * Decimal(str(prices.vcpu_hour)) + memory * Decimal(str(prices.gib_hour))
            + resources.gpus * Decimal(str(prices.gpu_hour)))


def priced(prices: Prices | None) -> bool:
    return prices is not None and prices.configured


@dataclass(frozen=True)
class Running:
    """One variant's replicas: now, and the fewest and most it may run (equal when fixed)."""

    name: str
    now: int
    fewest: int
    most: int  # before any budget cap

    def at(self, cap: int | None) -> int:
        """Replicas at its most, with maxReplicas capped at ``cap`` (never below its fewest)."""
        return self.most if cap is None else max(self.fewest, min(self.most, cap))


def bounds(spec: ModelDeploymentSpec, w: VariantWorkload) -> tuple[int, int]:
    """(fewest, most) replicas of a workload: its scaler's bounds with its version's ``maxReplicas``
    (a cap already applied to the scaler does not hide the uncapped maximum), or its fixed replicas."""
    if w.scaler is None:
        return w.replicas, w.replicas
    most = max(w.scaler.max_replicas, w.scaler.settings.max_replicas)
    return w.scaler.min_replicas, max(w.scaler.min_replicas, most)


def running(spec: ModelDeploymentSpec, workloads: Sequence[VariantWorkload], live: Mapping[str, DeploymentState],
            keep: Sequence[str] = ()) -> list[Running]:
    """Every variant that costs something now or at max: the planned ones, then the others still running."""
    def now(name: str) -> int:
        state = live.get(name)
        return state.replicas if state is not None and state.exists else 0

    out = [Running(w.variant, now(w.variant), *bounds(spec, w)) for w in workloads]
    planned = {w.variant for w in workloads}
    for name in sorted(n for n, s in live.items() if s.exists and n not in planned):
        stays = now(name) if name in keep else 0  # kept as it is (draining), or about to be removed
        out.append(Running(name, now(name), stays, stays))
    return out


def _scaled(r: Running, workloads: Sequence[VariantWorkload]) -> bool:
    return any(w.variant == r.name and w.scaler is not None for w in workloads)


def _cap(spec: ModelDeploymentSpec, prices: Prices | None, variants: Sequence[Running], scaled: set[str]) -> int | None:
    cfg, auto = spec.cost, spec.autoscaling
    if cfg is None or not cfg.enforce or cfg.monthly_budget is None or not scaled or prices is None or not priced(prices):
        return None
    month = pod_hourly(spec.resources, prices) * HOURS_PER_MONTH
    budget = Decimal(str(cfg.monthly_budget))

    def fits(cap: int | None) -> bool:
        return month * sum(r.at(cap) if r.name in scaled else r.most for r in variants) <= budget

    if fits(None):
        return None
    floor = max(1, auto.min_replicas) if auto is not None else 1
    top = max(r.most for r in variants if r.name in scaled)
    return next((n for n in range(top - 1, floor - 1, -1) if fits(n)), floor)


def max_replicas_cap(spec: ModelDeploymentSpec, prices: Prices | None, workloads: Sequence[VariantWorkload],
                     live: Mapping[str, DeploymentState] | None = None, keep: Sequence[str] = ()) -> int | None:
    """The ``maxReplicas`` per scaled variant that keeps the monthly projection within the budget.

    None: nothing to cap (no ``spec.cost.enforce``, no budget, no price table, no variant with a
    scaler, or everything fits at ``spec.autoscaling.maxReplicas``). Otherwise the largest N
    such that every scaled variant at ``max(its minReplicas, min(its maxReplicas, N))`` plus
    every fixed variant fits; never below ``max(1, spec.autoscaling.minReplicas)``, which it is
    when even that does not fit (a budget never stops a model). Apply it to a scaler as
    ``max(bounds.min_replicas, min(bounds.max_replicas, cap))``. ``live``/``keep`` add the
    variants still running outside ``workloads`` (draining), as ``status.cost`` counts them.
    """
    variants = running(spec, workloads, live or {}, keep)
    return _cap(spec, prices, variants, {r.name for r in variants if _scaled(r, workloads)})


def _revisions(status: ModelDeploymentStatus) -> dict[str, str]:
    """The revision each variant of a status runs."""
    out = {v.name: v.revision for v in status.variants}
    out |= {name: v.revision for name, v in ((STABLE, status.stable), (CANDIDATE, status.candidate)) if v is not None}
    if status.previous_model is not None:
        out[PREVIOUS] = revision_of(status.previous_model)
    return out


def _per_1k(value: Decimal) -> float:
    return float(PER_1K_DIGITS.create_decimal(value))


def _measured(m: Measurement | None, hourly: Mapping[str, Decimal]) -> dict[str, tuple[Decimal, Decimal]]:
    """(cost over the window, requests) per variant the measurement counted requests for."""
    if m is None or m.error is not None:
        return {}
    hours = Decimal(str((m.taken_at - m.request.window_start).total_seconds())) / 3600
    out = {}
    for name, data in m.data.items():
        total = data.requests.total if data is not None else None
        if hours > 0 and total is not None and total > 0 and hourly.get(name, Decimal(0)) > 0:
            out[name] = (hourly[name] * hours, Decimal(str(total)))
    return out


def cost_status(spec: ModelDeploymentSpec, prices: Prices, variants: Sequence[Running], cap: int | None, scaled: set[str],
                previous: ModelDeploymentStatus, measurement: Measurement | None,
                revisions: Mapping[str, str]) -> CostStatus:
    """``status.cost`` (without the budget fields). ``measurement``: one recorded in this plan, else None;
    ``revisions``: what each variant runs now (a per-prediction cost is kept only for the same revision)."""
    pod = pod_hourly(spec.resources, prices)
    hourly = {r.name: pod * r.now for r in variants}
    at_max = {r.name: pod * (r.at(cap) if r.name in scaled else r.most) for r in variants}
    measured = _measured(measurement, hourly)
    old = {v.name: v.per_thousand_predictions for v in previous.cost.variants} if previous.cost is not None else {}
    old_revisions = _revisions(previous)

    def per_1k(name: str) -> float | None:
        if name in measured:
            spent, requests = measured[name]
            return _per_1k(spent / (requests / 1000))
        same = name in revisions and old_revisions.get(name) == revisions[name]
        return old.get(name) if same else None

    total_per_1k = previous.cost.per_thousand_predictions if previous.cost is not None else None
    if measured:
        spent, requests = sum((s for s, _ in measured.values()), Decimal(0)), sum((n for _, n in measured.values()), Decimal(0))
        total_per_1k = _per_1k(spent / (requests / 1000))
    now_total, max_total = sum(hourly.values(), Decimal(0)), sum(at_max.values(), Decimal(0))
    return CostStatus(
        currency=prices.currency, hourly=float(now_total), hourly_at_max=float(max_total),
        monthly_projected=float(now_total * HOURS_PER_MONTH), monthly_at_max=float(max_total * HOURS_PER_MONTH),
        per_thousand_predictions=total_per_1k, capped_max_replicas=cap,
        variants=[VariantCost(name=r.name, replicas=r.now, hourly=float(hourly[r.name]), hourly_at_max=float(at_max[r.name]),
                              per_thousand_predictions=per_1k(r.name)) for r in variants],
    )


def _money(value: float | Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _budget(spec: ModelDeploymentSpec, cost: CostStatus, variants: Sequence[Running], scaled: set[str]) -> tuple[CostStatus, Triple]:
    """The budget fields of ``cost`` and the WithinBudget condition."""
    budget = Decimal(str(spec.cost.monthly_budget if spec.cost and spec.cost.monthly_budget is not None else 0))
    at_max, cap, c = Decimal(str(cost.monthly_at_max)), cost.capped_max_replicas, cost.currency
    over = at_max - budget
    top = max((r.most for r in variants if r.name in scaled), default=None)
    where = "at the fixed replicas" if top is None else "at maxReplicas"
    projected = f"projected {_money(at_max, c)} a month"
    if over <= 0:
        capped = f" with maxReplicas capped from {top} to {cap} per variant (spec.cost.enforce)" if cap is not None else f" {where}"
        message = f"{projected}{capped} is within the monthly budget of {_money(budget, c)} ({_money(-over, c)} left)"
        return cost.model_copy(update={"monthly_budget": float(budget)}), ("True", "WithinBudget", message)
    share = f" ({over / budget * 100:.0f}%)" if budget > 0 else ""
    by = f"exceeds the monthly budget of {_money(budget, c)} by {_money(over, c)}{share}"
    if cap is not None:
        message = (f"{projected} even with maxReplicas capped at minReplicas ({cap} per variant) {by}: the budget cannot be met "
                   "without stopping the model, which a budget never does")
    elif top is None:
        message = f"{projected} {where} {by}; a budget never scales serving below its replicas"
    elif spec.cost is not None and spec.cost.enforce:
        message = f"{projected} {where} ({top} per variant) {by}"
    else:
        message = f"{projected} {where} ({top} per variant) {by}; set spec.cost.enforce to cap maxReplicas to what fits"
    return cost.model_copy(update={"monthly_budget": float(budget), "over_budget_by": float(over)}), ("False", "OverBudget", message)


def assess_cost(spec: ModelDeploymentSpec, prices: Prices | None, workloads: Sequence[VariantWorkload],
                live: Mapping[str, DeploymentState], keep: Sequence[str], previous: ModelDeploymentStatus,
                measurement: Measurement | None) -> tuple[CostStatus | None, Triple | None]:
    """``status.cost`` and the WithinBudget condition (None: no budget is set) of a valid plan.

    ``measurement``: the one this plan recorded in the analysis (None when it recorded none)."""
    has_budget = spec.cost is not None and spec.cost.monthly_budget is not None
    if prices is None or not priced(prices):
        return None, (("Unknown", "NoPriceTable", NO_PRICE_TABLE) if has_budget else None)
    variants = running(spec, workloads, live, keep)
    scaled = {r.name for r in variants if _scaled(r, workloads)}
    cap = _cap(spec, prices, variants, scaled)
    cost = cost_status(spec, prices, variants, cap, scaled, previous, measurement, {w.variant: revision_of(w.model) for w in workloads})
    if not has_budget:
        return cost, None
    return _budget(spec, cost, variants, scaled)


def budget_events(previous: Sequence[Condition], triple: Triple) -> list[EventIntent]:
    """A Warning ``OverBudget`` when the budget becomes exceeded (or the reason changes); a Normal
    ``WithinBudget`` when it fits again. Nothing while it stays so: the amounts move with the
    replicas during a rollout, and the condition's message keeps them current."""
    old = next((c for c in previous if c.type == "WithinBudget"), None)
    status, reason, message = triple
    if status == "False" and (old is None or (old.status, old.reason) != (status, reason)):
        return [EventIntent("Warning", reason, message)]
    if status == "True" and old is not None and old.status == "False":
        return [EventIntent("Normal", reason, message)]
    return []


def cost_increase_hold(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> str | None:
    """Why the rollout is held: the candidate's recorded cost per 1,000 predictions exceeds the stable's
    by more than ``spec.cost.maxIncrease`` percent (with ``spec.cost.enforce``). None: not held
    (not enforced, no limit, or either cost not measured yet)."""
    cfg, cost = spec.cost, status.cost
    if cfg is None or not cfg.enforce or cfg.max_increase is None or cost is None:
        return None
    per_1k = {v.name: v.per_thousand_predictions for v in cost.variants}
    candidate, stable = per_1k.get(CANDIDATE), per_1k.get(STABLE)
    if candidate is None or stable is None or stable <= 0:
        return None
    increase = (candidate - stable) / stable * 100
    if increase <= cfg.max_increase:
        return None
    c = cost.currency
    return (f"held: the candidate costs {candidate:.6g} {c} per 1,000 predictions against the stable's {stable:.6g} {c}, "
            f"{increase:.1f}% more; spec.cost.maxIncrease allows {cfg.max_increase:g}% "
            "(promote-step passes the step anyway; abort rolls back)")
