"""ModelDeployment.spec.traffic: which data plane splits, mirrors and pins requests.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from headway.api.base import ApiModel, Rule
from headway.api.limits import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX, Hostname, ObjectName


class ParentReference(ApiModel):
    """A Gateway (or other parent) the HTTPRoute attaches to."""

    # Bounds as in Gateway API's own ParentReference.
    name: ObjectName
    """Name of the parent."""
    namespace: str | None = Field(default=None, max_length=DNS_LABEL_MAX)
    """Namespace of the parent; the ModelDeployment's when unset."""
    section_name: str | None = Field(default=None, max_length=DNS_SUBDOMAIN_MAX)
    """A listener of the Gateway."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """A port of the Gateway."""
    group: str | None = Field(default=None, max_length=DNS_SUBDOMAIN_MAX)
    """API group of the parent (gateway.networking.k8s.io when unset)."""
    kind: str | None = Field(default=None, min_length=1, max_length=DNS_LABEL_MAX)
    """Kind of the parent (Gateway when unset)."""


class GatewayApiTraffic(ApiModel):
    """Gateway API: one HTTPRoute with weighted backendRefs and a RequestMirror filter."""

    # HTTPRoute allows 32 parentRefs and 16 hostnames: more could not be rendered anyway.
    parent_refs: list[ParentReference] = Field(min_length=1, max_length=32)
    """Gateways the route attaches to."""
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    """Hostnames the route serves."""
    path_prefix: str = Field(default="/", pattern=r"^/", max_length=1024)  # HTTPRoute's path value limit
    """Path prefix the route matches."""


class IstioTraffic(ApiModel):
    """Istio: one VirtualService with weighted routes and mirroring."""

    # Hostnames per route, as for Gateway API: 16.
    hosts: list[Hostname] = Field(min_length=1, max_length=16)
    """Hosts the VirtualService serves."""
    # "namespace/name": 63 + 1 + 253.
    gateways: list[Annotated[str, Field(min_length=1, max_length=317)]] = Field(default_factory=list, max_length=16)
    """Istio gateways (namespace/name); mesh traffic only when empty."""


class Traffic(ApiModel):
    """Which data plane splits, mirrors and pins traffic."""

    __cel__ = (
        Rule(
            "self.provider != 'gatewayApi' || has(self.gatewayApi)",
            "provider gatewayApi needs traffic.gatewayApi",
            ".gatewayApi",
            lambda m: m.provider != "gatewayApi" or m.gateway_api is not None,
        ),
        Rule("self.provider != 'istio' || has(self.istio)", "provider istio needs traffic.istio", ".istio", lambda m: m.provider != "istio" or m.istio is not None),
    )

    provider: Literal["gatewayApi", "istio", "none"] = "gatewayApi"
    """gatewayApi (HTTPRoute), istio (VirtualService) or none (replica-ratio canary only)."""
    gateway_api: GatewayApiTraffic | None = None
    """Settings of the gatewayApi provider."""
    istio: IstioTraffic | None = None
    """Settings of the istio provider."""
