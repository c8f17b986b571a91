"""A thin, generic client for the Kubernetes REST API over the official `kubernetes` package.

One code path for every kind (built-in or custom): paths are built from group, version
and plural, bodies are plain dicts, and errors keep their HTTP status so callers can act
on real API semantics (404 absent, 409 conflict or stale resourceVersion, 422 invalid).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from headway.telemetry import API_REQUEST_SECONDS, API_REQUESTS

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JsonPatch = list[dict[str, Any]]  # RFC 6902 operations
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply; a JSON body is valid YAML
FIELD_MANAGER = "headway"


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
            if subresource:
                base += f"/{subresource}"
        return base


DEPLOYMENT = Kind("apps", "v1", "deployments", "Deployment")
SERVICE = Kind("", "v1", "services", "Service")
PDB = Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
EVENT = Kind("", "v1", "events", "Event")

KINDS_BY_API: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in (DEPLOYMENT, SERVICE, PDB, EVENT)}


def kind_of(obj: dict[str, Any]) -> Kind:
    key = (obj["apiVersion"], obj["kind"])
    if key not in KINDS_BY_API:
        raise KeyError(f"unknown kind {key}; register it in KINDS_BY_API")
    return KINDS_BY_API[key]


def register_kind(kind: Kind) -> Kind:
    KINDS_BY_API[(kind.api_version, kind.kind)] = kind
    return kind


class ApiError(Exception):
    """A failed API call, with the HTTP status and the server's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def make_api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.ApiClient:
    """An ApiClient from a kubeconfig ($KUBECONFIG, ~/.kube/config; ``context``: one of its contexts,
    default its current one) or the in-cluster config."""
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (k8s_config.ConfigException, FileNotFoundError, TypeError):
        if kubeconfig or context:
            raise
        k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s_client.ApiClient(configuration)


class Kube:
    """Synchronous calls; safe to share between threads (urllib3 pools connections)."""

    DISCOVERY_TTL = 60.0  # seconds: CRDs installed or removed later are noticed within a minute

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self._api = api_client
        self._served: dict[str, set[str]] = {}
        self._discovered_at = 0.0
        self._lock = threading.Lock()

    def _call(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self._api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        API_REQUESTS.labels(method.lower()).inc()
        started = time.perf_counter()
        try:
            response = self._api.call_api(*params, _request_timeout=30)
            response.read()
        except ApiException as exc:  # transport-level failures
            raise ApiError(exc.status or 0, str(exc.reason), str(exc.body or exc)) from exc
        finally:  # answered or failed, the caller waited this long
            API_REQUEST_SECONDS.labels(method.lower()).observe(time.perf_counter() - started)
        text = response.data.decode() if response.data else ""
        if not 200 <= response.status <= 299:
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {}
            raise ApiError(response.status, payload.get("reason", ""), payload.get("message", text[:500]))
        return json.loads(text) if text else {}

    def watch(self, kind: Kind, namespace: str | None, label_selector: str | None, resource_version: str,
              timeout_seconds: int) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type": ..., "object": ...}``) from ``resource_version`` on, with bookmarks,
        until the server ends the watch (after ``timeout_seconds``) or the connection drops."""
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        params = self._api.param_serialize(method="GET", resource_path=kind.path(namespace), query_params=query,
                                           header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        API_REQUESTS.labels("watch").inc()
        try:
            response = self._api.call_api(*params, _request_timeout=(30, timeout_seconds + 60))
        except ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason), str(exc.body or exc)) from exc
        raw = response.response
        try:
            if not 200 <= response.status <= 299:
                text = raw.data.decode() if raw.data else ""
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {}
                raise ApiError(response.status, payload.get("reason", ""), payload.get("message", text[:500]))
            for line in raw:
                if line.strip():
                    yield json.loads(line)
        finally:
            raw.release_conn()

    def get(self, kind: Kind, namespace: str | None, name: str, subresource: str | None = None) -> dict[str, Any] | None:
        try:
            return self._call("GET", kind.path(namespace, name, subresource))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_raw(self, kind: Kind, namespace: str | None, label_selector: str | None = None) -> dict[str, Any]:
        """The list response itself (items and the list's resourceVersion, to watch from)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        return self._call("GET", kind.path(namespace), query=query)

    def list(self, kind: Kind, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            items = self._call("GET", kind.path(namespace), query=query).get("items", [])
        except ApiError as exc:
            if exc.status == 404:  # the kind is no longer served (its CRD was removed): nothing to list
                self.forget_discovery()
                return []
            raise
        for item in items:  # list items carry no apiVersion/kind on a real server
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def create(self, kind: Kind, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", kind.path(namespace), body=body, query=[("fieldManager", FIELD_MANAGER)])

    def merge_patch(
        self, kind: Kind, namespace: str | None, name: str, patch: dict[str, Any], subresource: str | None = None,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """RFC 7386 merge patch; put metadata.resourceVersion in it to fail with 409 on a stale read."""
        return self._call("PATCH", kind.path(namespace, name, subresource), body=patch, content_type=MERGE_PATCH,
                          query=[("fieldManager", field_manager)])

    def json_patch(self, kind: Kind, namespace: str | None, name: str, ops: JsonPatch) -> dict[str, Any]:
        """RFC 6902 JSON patch (a ``test`` op that fails answers 422, a stale resourceVersion 409)."""
        return self._call("PATCH", kind.path(namespace, name), body=ops, content_type=JSON_PATCH,
                          query=[("fieldManager", FIELD_MANAGER)])

    def apply(self, kind: Kind, namespace: str | None, body: dict[str, Any], *, force: bool = True,
              field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply of the whole desired object as field manager ``headway``.

        The server merges it field by field: Headway owns exactly the fields it sends, a field
        it sent before and no longer sends is removed (unless another manager owns it too), and
        fields it does not send that other managers own (Argo CD's tracking annotation, a
        mesh's injected fields) are left alone. ``force`` takes over fields that a hand edit
        (kubectl edit) changed: what Headway renders wins, as a controller's apply should.
        """
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        name = body["metadata"]["name"]
        return self._call("PATCH", kind.path(namespace, name), body=body, query=query, content_type=APPLY_PATCH)

    def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> None:
        """Delete (background propagation); with uid, only that very object (409 otherwise)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", kind.path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def serves(self, kind: Kind) -> bool:
        """Whether the API server serves this kind (e.g. is the HTTPRoute CRD installed?)."""
        with self._lock:
            if time.monotonic() - self._discovered_at > self.DISCOVERY_TTL:
                self._served.clear()
                self._discovered_at = time.monotonic()
            if kind.api_version not in self._served:
                path = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
                try:
                    resources = self._call("GET", path).get("resources", [])
                    self._served[kind.api_version] = {r.get("name", "") for r in resources}
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    self._served[kind.api_version] = set()
            return kind.plural in self._served[kind.api_version]

    def forget_discovery(self) -> None:
        with self._lock:
            self._served.clear()
