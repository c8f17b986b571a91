"""kopf settings that let the operator run with exactly the chart's RBAC (least privilege).

Call ``apply_settings(settings, config)`` from the ``@kopf.on.startup`` handler: kopf starts its
watchers only after the startup handlers have run, so these take effect before any API call
that depends on them.

What kopf would otherwise do with cluster-scoped permissions it does not get in namespaced
mode (and does not need in cluster mode either):
- **Scanning** (``settings.scanning``): by default kopf lists and watches
  CustomResourceDefinitions cluster-wide (to notice CRDs installed or changed while it runs)
  and, in namespaced mode, lists and watches Namespaces (to match namespace globs such as
  ``team-*``). Without the permissions each attempt is a 403 that kopf retries with backoff
  (about a minute of ``Forbidden`` before the first reconcile, then "Not enough permissions to
  watch for resources"). Disabled: the resources are discovered once at startup through API
  discovery (``/api``, ``/apis``: open to every authenticated user), and the namespaces are the
  exact names given (``--namespace``/``HEADWAY_NAMESPACES``; globs are refused by the config).
  Consequence: a CRD installed or upgraded after the operator started is picked up on the next
  restart. The chart installs the ModelDeployment CRD (``crds/``) before the operator starts,
  and Headway's own client finds the optional CRDs (HTTPRoute, VirtualService, PodMonitor) by
  discovery with a TTL, not through kopf.
- **Peering** (only with ``--peering``): kopf uses a ``ClusterKopfPeering`` when it serves the
  whole cluster and a ``KopfPeering`` in each served namespace otherwise. kopf derives this from
  ``kopf.operator(clusterwide=...)``; it is set here as well so the mode always matches the RBAC
  the chart renders (a ClusterRole for clusterkopfpeerings, or a Role per namespace for
  kopfpeerings), whatever the call site passes.
- **Watch timeouts**: the server ends a watch after ``server_timeout``; 30-60 minutes (spread)
  keeps an idle operator's requests near zero.
- **Events** kopf posts (``settings.posting``) are core/v1 Events, created in the object's
  namespace: covered by the chart's ``events: create``.
"""

from __future__ import annotations

import random

import kopf

from headway.config import OperatorConfig


def apply_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Configure kopf so that it needs no permission beyond the chart's RBAC (see the module doc)."""
    settings.scanning.disabled = True
    settings.peering.clusterwide = config.clusterwide
    # The ModelDeployment watch is ended by the server after this long and reopened from where it
    # was: spread over 30-60 minutes, so an idle operator sends (almost) no requests.
    settings.watching.server_timeout = random.randint(1800, 3600)
    settings.watching.client_timeout = settings.watching.server_timeout + 60
