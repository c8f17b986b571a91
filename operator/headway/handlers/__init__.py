"""kopf handlers: thin decorators around the runtime (handlers/runtime.py). Registered by ``register()``.

kopf logs in, runs startup and cleanup, serves the liveness probe, optionally takes part in
peering, and watches the ModelDeployments; their events feed Headway's cache and work queue.
The children are watched by Headway's own informers (k8s/informer.py), with a server-side
label selector, so that unrelated Deployments in a namespace cost nothing.

No handler needs a finalizer, so kopf puts none on a ModelDeployment (and removes the one 0.1's
timer added): deleting one never waits for the operator.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

import headway
from headway.config import OperatorConfig
from headway.handlers.runtime import Runtime
from headway.handlers.settings import apply_settings
from headway.k8s.client import Kube, make_api_client

log = logging.getLogger("headway")


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Attach the handlers to a registry."""
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
        memo.runtime = Runtime(Kube(make_api_client(config.kubeconfig)), config)
        memo.runtime.start()

    @kopf.on.cleanup(registry=registry)
    def cleanup(memo: Any, **_: Any) -> None:
        if getattr(memo, "runtime", None) is not None:  # startup may have failed before it existed
            memo.runtime.stop()

    @kopf.on.event(*md, registry=registry)
    async def modeldeployment_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
        """Runs in kopf's event loop: only a cache update and a queue add, never a reconcile."""
        memo.runtime.model_event(event.get("type") or "", dict(event.get("object") or {}))
