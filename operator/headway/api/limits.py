"""Bounds shared by the spec's models: names and hostnames as Kubernetes limits them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field


# Every list, map and string of the spec is bounded (maxItems, maxProperties, maxLength):
# the API server estimates each CEL rule's worst-case cost from these bounds, times how
# often the rule can repeat inside the lists and maps around it, and refuses the CRD when
# a rule or the sum goes over its budget (tests/unit/test_crd_cost.py checks this). The
# bounds are what users need with room to spare; pydantic enforces the same ones.
DNS_SUBDOMAIN_MAX = 253  # Kubernetes object names (Secrets, ConfigMaps, Gateways), hostnames
DNS_LABEL_MAX = 63  # namespaces, label values, Gateway API kinds and section names

# A Kubernetes object name: DNS subdomain, 253 characters at most.
ObjectName = Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)]
# A hostname (a leading "*." wildcard included).
Hostname = Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)]
