"""kopf handlers: thin decorators that call the reconciler. Registered by ``register()``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

import headway
from headway.config import OperatorConfig
from headway.handlers.resync import Resync
from headway.handlers.settings import apply_settings
from headway.k8s.client import ApiError, Kube, make_api_client
from headway.planning.naming import LABEL_MD, MANAGED_BY
from headway.reconciler import Conflict, forget, reconcile
from headway.telemetry import RECONCILE_SECONDS, RECONCILES

log = logging.getLogger("headway")


def _run(memo: Any, namespace: str, name: str) -> None:
    """Reconcile one ModelDeployment, and schedule its next resync while it exists."""
    outcome = "ok"
    with RECONCILE_SECONDS.time():
        try:
            if reconcile(memo.kube, namespace, name, prometheus_url=memo.config.prometheus_url,
                         allowed_prometheus_urls=memo.config.allowed_prometheus_urls) is None:
                memo.resync.forget(namespace, name)  # gone or being deleted
                forget(namespace, name)
                return
        except Conflict:
            outcome = "conflict"  # its own watch event decides again at once
        except ApiError as exc:
            outcome = "error"
            log.warning("reconcile of %s/%s failed, retrying on the next event or resync: %s", namespace, name, exc)
        except Exception:
            RECONCILES.labels("error").inc()
            memo.resync.touch(namespace, name)
            raise
    RECONCILES.labels(outcome).inc()
    memo.resync.touch(namespace, name)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Attach the handlers to a registry; the resync interval comes from the config.

    Only event handlers: none of them needs a finalizer, so kopf puts none on a
    ModelDeployment (and removes the one 0.1's timer added), and deleting one never waits
    for the operator. The periodic resync is Headway's own (handlers/resync.py).
    """
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
        apply_settings(settings, config)
        # kopf's finalizer name: 0.1 put it on every ModelDeployment (for its timer); kopf removes
        # its own finalizer from objects whose handlers need none, so naming it lets kopf clean up.
        settings.persistence.finalizer = "headway.dev/finalizer"
        settings.posting.level = logging.WARNING  # kopf's own Events: handler failures only
        settings.watching.server_timeout = 300
        memo.kube = Kube(make_api_client(config.kubeconfig))
        memo.config = config
        memo.resync = Resync(config.resync_seconds, lambda namespace, name: _run(memo, namespace, name))
        memo.resync.start()

    @kopf.on.cleanup(registry=registry)
    def cleanup(memo: Any, **_: Any) -> None:
        if getattr(memo, "resync", None) is not None:  # startup may have failed before it existed
            memo.resync.stop()

    @kopf.on.event(*md, registry=registry)
    def modeldeployment_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        if not namespace:
            return
        if type == "DELETED":
            memo.resync.forget(namespace, name)
            forget(namespace, name)
        else:
            _run(memo, namespace, name)

    @kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_MD: kopf.PRESENT}, registry=registry)
    def child_event(type: str, labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any) -> None:
        if namespace and namespace_known(memo, namespace, labels[LABEL_MD]):
            _run(memo, namespace, labels[LABEL_MD])


def namespace_known(memo: Any, namespace: str, name: str) -> bool:
    """A child's event reconciles its ModelDeployment only while that one exists (not after its delete)."""
    return bool(memo.resync.knows(namespace, name))
