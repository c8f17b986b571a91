"""A small CustomResourceDefinition for the emulator's own tests: Gadget, with a status subresource."""

from __future__ import annotations

from typing import Any

GADGETS_PATH = '/apis/example.headway.dev/v1/namespaces/{namespace}/gadgets'


def gadget_crd(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """gadgets.example.headway.dev/v1 whose spec and status have the given schemas."""
    return {
        'apiVersion': 'apiextensions.k8s.io/v1',
        'kind': 'CustomResourceDefinition',
        'metadata': {'name': 'gadgets.example.headway.dev'},
        'spec': {
            'group': 'example.headway.dev',
            'scope': 'Namespaced',
            'names': {'plural': 'gadgets', 'singular': 'gadget', 'kind': 'Gadget'},
            'versions': [{
                'name': 'v1', 'served': True, 'storage': True,
                'subresources': {'status': {}},
                'schema': {'openAPIV3Schema': {'type': 'object', 'properties': {'spec': spec, 'status': status}}},
            }],
        },
    }
