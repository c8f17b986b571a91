"""Operator configuration: command-line flags, each with an environment variable.

Flags win over the environment; the environment wins over the defaults. The Helm chart
sets the environment variables.
"""

from __future__ import annotations

import argparse
import getpass
import os
import random
import re
import secrets
import socket
from dataclasses import dataclass, field

import yaml

from headway.planning.cost import Prices as Prices  # re-exported: the price table lives with the cost it prices
from headway.planning.notifications import NotificationConfig, parse_sinks


def peer_identity() -> str:
    """This replica's name among its peers: the pod's name (``POD_ID``, which the chart sets), else
    user@host with a random suffix, as kopf makes one (``kopf.operator`` is given this one, so that
    Headway reads the same entry of the peering object as kopf)."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "headway"
    return f"{user}@{socket.gethostname()}/{secrets.token_hex(3)}"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: every namespace (cluster-wide)
    prometheus_url: str | None = None  # default for spec.analysis.prometheus.url
    allowed_prometheus_urls: tuple[str, ...] = ()  # more URLs a ModelDeployment may name (besides prometheus_url)
    log_format: str = "text"  # text | json
    health_addr: str = "0.0.0.0:8080"  # liveness/readiness: GET /healthz
    metrics_port: int = 9090  # the operator's own Prometheus metrics: GET /metrics (0: off)
    peering: str | None = None  # kopf peering name; None: standalone (one replica)
    priority: int = 0  # peering priority of this replica
    identity: str = field(default_factory=peer_identity)  # this replica's name in the peering object (kopf is given the same)
    resync_seconds: float = 600.0  # safety resync: every ModelDeployment is looked at again (from the caches) within this
    measure_timeout_seconds: float = 30.0  # a metric measurement still unanswered after this is an error (Inconclusive)
    kubeconfig: str | None = None  # else $KUBECONFIG, ~/.kube/config or in-cluster
    prices: Prices = field(default_factory=Prices)  # no prices: no status.cost
    rollout_records: int = 10  # RolloutRecords kept per ModelDeployment (0: none written)
    notifications: NotificationConfig = field(default_factory=NotificationConfig)  # no sinks: nothing is sent
    verbose: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


ENV = {
    "namespaces": "HEADWAY_NAMESPACES",
    "prometheus_url": "HEADWAY_PROMETHEUS_URL",
    "allowed_prometheus_urls": "HEADWAY_ALLOWED_PROMETHEUS_URLS",
    "log_format": "HEADWAY_LOG_FORMAT",
    "health_addr": "HEADWAY_HEALTH_ADDR",
    "metrics_port": "HEADWAY_METRICS_PORT",
    "peering": "HEADWAY_PEERING",
    "priority": "HEADWAY_PRIORITY",
    "resync_seconds": "HEADWAY_RESYNC_SECONDS",
    "measure_timeout_seconds": "HEADWAY_MEASURE_TIMEOUT_SECONDS",
    "price_vcpu_hour": "HEADWAY_PRICE_VCPU_HOUR",
    "price_gib_hour": "HEADWAY_PRICE_GIB_HOUR",
    "price_gpu_hour": "HEADWAY_PRICE_GPU_HOUR",
    "currency": "HEADWAY_CURRENCY",
    "rollout_records": "HEADWAY_ROLLOUT_RECORDS",
    "notification_sinks": "HEADWAY_NOTIFICATION_SINKS",
    "notification_secret_namespace": "HEADWAY_NOTIFICATION_SECRET_NAMESPACE",
    "notification_max_age_seconds": "HEADWAY_NOTIFICATION_MAX_AGE_SECONDS",
    "notification_timeout_seconds": "HEADWAY_NOTIFICATION_TIMEOUT_SECONDS",
    "notification_backoff_seconds": "HEADWAY_NOTIFICATION_BACKOFF_SECONDS",
    "notification_cluster": "HEADWAY_NOTIFICATION_CLUSTER",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "-n", "--namespace", dest="namespaces", action="append",
        help=f"namespace to watch, an exact name (repeatable; default: all namespaces) [${ENV['namespaces']}, comma-separated]",
    )
    parser.add_argument("--prometheus-url", default=env(ENV["prometheus_url"]),
                        help=f"default Prometheus URL for analysis [${ENV['prometheus_url']}]")
    parser.add_argument("--allowed-prometheus-url", dest="allowed_prometheus_urls", action="append",
                        help="another Prometheus URL a ModelDeployment may name in spec.analysis.prometheus.url (repeatable); "
                             "the operator calls no other (--prometheus-url is always allowed) "
                             f"[${ENV['allowed_prometheus_urls']}, comma-separated]")
    parser.add_argument("--log-format", choices=["text", "json"], default=env(ENV["log_format"], "text"),
                        help=f"log format [${ENV['log_format']}]")
    parser.add_argument("--health-addr", default=env(ENV["health_addr"], "0.0.0.0:8080"),
                        help=f"host:port of the /healthz endpoint [${ENV['health_addr']}]")
    parser.add_argument("--metrics-port", type=int, default=int(env(ENV["metrics_port"], "9090")),
                        help=f"port of the /metrics endpoint, 0 to disable [${ENV['metrics_port']}]")
    parser.add_argument("--peering", default=env(ENV["peering"]),
                        help=f"kopf peering name for running several replicas (one is active) [${ENV['peering']}]")
    priority = env(ENV["priority"])
    parser.add_argument("--priority", type=int, default=int(priority) if priority else None,
                        help=f"peering priority of this replica; random when unset, so that replicas of one "
                             f"Deployment differ (kopf pauses all peers of equal priority) [${ENV['priority']}]")
    parser.add_argument("--resync-seconds", type=float, default=float(env(ENV["resync_seconds"], "600")),
                        help="safety resync: look at every ModelDeployment again at least this often (spread over half to all "
                             "of it; reads only the watch caches). Rollout steps, analyses and bakes wake a ModelDeployment "
                             f"exactly when they are due, whatever this is [${ENV['resync_seconds']}]")
    parser.add_argument("--measure-timeout-seconds", type=float, default=float(env(ENV["measure_timeout_seconds"], "30")),
                        help="a metric measurement without an answer after this long counts as failed (Inconclusive, never a "
                             f"Pass); it never delays other decisions [${ENV['measure_timeout_seconds']}]")
    for key, what in (("price_vcpu_hour", "one vCPU"), ("price_gib_hour", "one GiB of memory"), ("price_gpu_hour", "one GPU")):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, default=float(env(ENV[key], "0")),
                            help=f"price of {what} for an hour, for status.cost and budgets [${ENV[key]}]")
    parser.add_argument("--currency", default=env(ENV["currency"], "USD"), help=f"currency of the prices [${ENV['currency']}]")
    _add_notification_arguments(parser)
    parser.add_argument("--rollout-records", type=int, default=env(ENV["rollout_records"], "10"), metavar="N",
                        help="keep the last N RolloutRecords (every decision of a rollout, its evidence, approvals and outcome; "
                             f"`headway audit`) per ModelDeployment; 0 writes none [${ENV['rollout_records']}]")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def from_args(args: argparse.Namespace) -> OperatorConfig:
    """The configuration; ValueError for a namespace that is not an exact name."""
    namespaces = args.namespaces
    if not namespaces:
        namespaces = _split_env(ENV["namespaces"])
    # Exact names only: kopf's namespace globs (team-*, !kube-system) need namespaces to be
    # listed and watched cluster-wide, which namespaced mode's RBAC does not allow.
    invalid = [n for n in namespaces if len(n) > 63 or not NAMESPACE_NAME.match(n)]
    if invalid:
        raise ValueError(f"namespaces must be exact namespace names (no patterns): {', '.join(invalid)}")
    return OperatorConfig(
        namespaces=tuple(namespaces),
        prometheus_url=args.prometheus_url or None,
        allowed_prometheus_urls=tuple(args.allowed_prometheus_urls or _split_env(ENV["allowed_prometheus_urls"])),
        log_format=args.log_format,
        health_addr=args.health_addr,
        metrics_port=args.metrics_port,
        peering=args.peering or None,
        priority=args.priority if args.priority is not None else random.randint(0, 32767),
        resync_seconds=args.resync_seconds,
        measure_timeout_seconds=args.measure_timeout_seconds,
        kubeconfig=args.kubeconfig,
        prices=_prices(args),
        rollout_records=_rollout_records(args.rollout_records),
        notifications=_notifications(args),
        verbose=args.verbose,
    )


def _prices(args: argparse.Namespace) -> Prices:
    """The price table; ValueError for a negative price."""
    prices = Prices(args.price_vcpu_hour, args.price_gib_hour, args.price_gpu_hour, args.currency)
    if min(prices.vcpu_hour, prices.gib_hour, prices.gpu_hour) < 0:
        raise ValueError("prices must not be negative")
    return prices


def _add_notification_arguments(parser: argparse.ArgumentParser) -> None:
    """Notifications (docs/notifications.md): sinks named here, selected by a ModelDeployment's headway.dev/notify."""
    env = os.environ.get
    parser.add_argument("--notification-sinks", default=env(ENV["notification_sinks"]), metavar="YAML",
                        help="where notifications may go: a YAML or JSON list of {name, type: webhook|slack|teams|pagerduty, "
                             "secret: {name, key}[, url][, events][, namespaces][, signingSecret: {name, key}]}; the Secret (in "
                             "--notification-secret-namespace) holds the URL, or PagerDuty's routing key; a webhook's "
                             f"signingSecret, a Standard Webhooks secret to sign each request [${ENV['notification_sinks']}]")
    parser.add_argument("--notification-secret-namespace", default=env(ENV["notification_secret_namespace"]),
                        help="namespace of the sinks' Secrets (default: the operator's own, in a cluster) "
                             f"[${ENV['notification_secret_namespace']}]")
    parser.add_argument("--notification-max-age-seconds", type=float, default=float(env(ENV["notification_max_age_seconds"], "600")),
                        help="a transition older than this is never notified (after a restart, or a receiver down for longer) "
                             f"[${ENV['notification_max_age_seconds']}]")
    parser.add_argument("--notification-timeout-seconds", type=float, default=float(env(ENV["notification_timeout_seconds"], "10")),
                        help=f"timeout of one notification request [${ENV['notification_timeout_seconds']}]")
    parser.add_argument("--notification-backoff-seconds", type=float, default=float(env(ENV["notification_backoff_seconds"], "2")),
                        help="delay before the first retry of a failed notification; it doubles, up to 5 minutes "
                             f"[${ENV['notification_backoff_seconds']}]")
    parser.add_argument("--notification-cluster", default=env(ENV["notification_cluster"], ""),
                        help=f"a cluster name shown in every notification [${ENV['notification_cluster']}]")


IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _notifications(args: argparse.Namespace) -> NotificationConfig:
    """The notification settings; ValueError naming the flag (and the sink and field) that is wrong."""
    raw = args.notification_sinks
    try:
        parsed = yaml.safe_load(raw) if raw and raw.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"--notification-sinks: not YAML or JSON: {' '.join(str(exc).split())}") from None
    sinks = parse_sinks(parsed, "--notification-sinks")
    for flag, value in (("--notification-max-age-seconds", args.notification_max_age_seconds),
                        ("--notification-timeout-seconds", args.notification_timeout_seconds),
                        ("--notification-backoff-seconds", args.notification_backoff_seconds)):
        if not value > 0:
            raise ValueError(f"{flag} must be greater than 0")
    namespace = args.notification_secret_namespace or None
    if sinks and namespace is None and os.path.exists(IN_CLUSTER_NAMESPACE):
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as f:
            namespace = f.read().strip() or None
    if sinks and namespace is None:
        raise ValueError("--notification-sinks needs --notification-secret-namespace (the namespace of the sinks' Secrets) "
                         "outside a cluster")
    return NotificationConfig(sinks=sinks, secret_namespace=namespace, max_age_seconds=args.notification_max_age_seconds,
                              timeout_seconds=args.notification_timeout_seconds,
                              backoff_seconds=args.notification_backoff_seconds, cluster=args.notification_cluster or "")


def _rollout_records(value: int) -> int:
    if value < 0:
        raise ValueError(f"--rollout-records must be 0 (no records) or more, not {value}")
    return value


def _split_env(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
