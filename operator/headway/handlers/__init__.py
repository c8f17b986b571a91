"""kopf handlers: thin decorators that call the reconciler. Registered by ``register()``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

import headway
from headway.config import OperatorConfig
from headway.k8s.client import ApiError, Kube, make_api_client
from headway.planning.naming import LABEL_MD, MANAGED_BY
from headway.reconciler import reconcile
from headway.telemetry import RECONCILE_SECONDS, RECONCILES

log = logging.getLogger("headway")


def _run(memo: Any, namespace: str, name: str) -> None:
    with RECONCILE_SECONDS.time():
        try:
            reconcile(memo.kube, namespace, name, prometheus_url=memo.config.prometheus_url)
        except ApiError as exc:
            RECONCILES.labels("error").inc()
            log.warning("reconcile of %s/%s failed, retrying on the next event or resync: %s", namespace, name, exc)
            return
        except Exception:
            RECONCILES.labels("error").inc()
            raise
    RECONCILES.labels("ok").inc()


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Attach the handlers to a registry; the resync interval comes from the config."""
    md = (headway.GROUP, headway.VERSION, headway.PLURAL)

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        """kopf uses the same credentials as Headway's client: --kubeconfig, $KUBECONFIG,
        ~/.kube/config, or the in-cluster service account (as kopf.login_via_client does)."""
        cfg = make_api_client(config.kubeconfig).configuration
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        scheme, _space, token = (header or "").rpartition(" ")
        return kopf.ConnectionInfo(
            server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
            username=cfg.username or None, password=cfg.password or None,
            scheme=scheme or None, token=token or None,
            certificate_path=cfg.cert_file, private_key_path=cfg.key_file, trust_env=settings.networking.trust_env,
        )

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.persistence.finalizer = "headway.dev/finalizer"
        settings.posting.level = logging.WARNING  # kopf's own Events: handler failures only
        settings.watching.server_timeout = 300
        memo.kube = Kube(make_api_client(config.kubeconfig))
        memo.config = config

    @kopf.on.event(*md, registry=registry)
    def modeldeployment_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        if type != "DELETED" and namespace:
            _run(memo, namespace, name)

    @kopf.timer(*md, interval=config.resync_seconds, registry=registry)
    def resync(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        if namespace:
            _run(memo, namespace, name)

    @kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_MD: kopf.PRESENT}, registry=registry)
    def child_event(type: str, labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any) -> None:
        if namespace:
            _run(memo, namespace, labels[LABEL_MD])
