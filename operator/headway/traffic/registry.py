"""Which provider serves a ModelDeployment: chosen by ``spec.traffic.provider``, never guessed.

No ``spec.traffic`` means provider ``none``. A provider name Headway does not know is
an error, never a fallback: a silent fallback to ``none`` would turn a canary into a
replica ratio and drop mirrors and pins without anyone asking for it.
"""

from __future__ import annotations

from headway.api.spec import Traffic
from headway.traffic import gatewayapi, istio, none
from headway.traffic.base import RouteKind, TrafficProvider

PROVIDERS: dict[str, TrafficProvider] = {p.name: p for p in (gatewayapi.PROVIDER, istio.PROVIDER, none.PROVIDER)}

# Every kind any provider manages. After a switch of provider, the reconciler deletes
# the owned objects of the kinds the new provider does not render.
ALL_KINDS: tuple[RouteKind, ...] = tuple(kind for provider in PROVIDERS.values() for kind in provider.kinds)


def provider_for(traffic: Traffic | None) -> TrafficProvider:
    """The provider named by ``spec.traffic.provider`` (``none`` without ``spec.traffic``)."""
    if traffic is None:
        return none.PROVIDER
    provider = PROVIDERS.get(traffic.provider)
    if provider is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"spec.traffic.provider: unknown traffic provider {traffic.provider!r} (known: {known})")
    return provider
