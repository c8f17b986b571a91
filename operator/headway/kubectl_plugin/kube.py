"""The plugin's few API calls, over the official ``kubernetes`` client, configured as kubectl is.

A kubeconfig from ``--kubeconfig``, else ``$KUBECONFIG`` (several files joined by ``:`` merge, as
kubectl merges them), else ``~/.kube/config``, else the in-cluster service account; ``--context``
picks a context; the namespace is ``-n`` or the context's. Errors keep the server's status and
message, which the command prints as kubectl does (``Error from server (NotFound): ...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

import headway
from headway.api.approval import PLURAL as APPROVALS

MODEL_DEPLOYMENTS = headway.PLURAL

MERGE_PATCH = "application/merge-patch+json"
try:
    USER_AGENT = f"kubectl-headway/{version('headway')}"
except PackageNotFoundError:  # run from a source tree without installing
    USER_AGENT = "kubectl-headway"


class KubeError(Exception):
    """A failed call: the HTTP status (0 without an answer), the server's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def __str__(self) -> str:
        return f"Error from server ({self.reason}): {self.message}" if self.status else f"error: {self.message}"


class ConfigError(Exception):
    """No usable kubeconfig (or context)."""


@dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str | None


def connect(target: Target) -> tuple[Client, str]:
    """A client for ``target`` and the namespace to use (``-n``, else the context's, else default)."""
    configuration = k8s_client.Configuration()
    path = target.kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        context = target.context or _first_current_context(path)
        k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                    persist_config=False)
        contexts, current = k8s_config.list_kube_config_contexts(config_file=path)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else current
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
    except (k8s_config.ConfigException, FileNotFoundError) as exc:
        if target.kubeconfig or target.context or path:
            raise ConfigError(str(exc)) from exc
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            raise ConfigError(f"no kubeconfig found ({exc}); set --kubeconfig or KUBECONFIG") from exc
        namespace = _incluster_namespace()
    return Client(k8s_client.ApiClient(configuration)), target.namespace or namespace or "default"


def _first_current_context(path: str | None) -> str | None:
    """The current context of merged kubeconfig files as kubectl picks it: the first file that sets one
    (the kubernetes client's merger lets the last one win)."""
    if not path or os.pathsep not in path:
        return None
    for name in path.split(os.pathsep):
        try:
            with open(os.path.expanduser(name)) as f:
                current = (yaml.safe_load(f) or {}).get("current-context")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if current:
            return str(current)
    return None


def _incluster_namespace() -> str | None:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or None
    except OSError:
        return None


class Client:
    """GET, LIST, PATCH, POST and WATCH on paths; bodies are plain dicts."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api

    def _request(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
                 content_type: str = "application/json", stream: bool = False, timeout: Any = 30) -> Any:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self._api.param_serialize(method=method, resource_path=path, query_params=query or [], header_params=headers,
                                           body=body, auth_settings=["BearerToken"])
        try:
            response = self._api.call_api(*params, _request_timeout=timeout)
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason or ""), str(exc.body or exc)) from exc
        except Exception as exc:  # the transport: connection refused, DNS, TLS
            raise KubeError(0, "", f"cannot reach the API server: {exc}") from exc
        if not 200 <= response.status <= 299:
            response.read()
            text = response.data.decode(errors="replace") if response.data else ""
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {}
            raise KubeError(response.status, payload.get("reason") or str(response.status), payload.get("message") or text[:500])
        if stream:
            return response.response
        response.read()
        return json.loads(response.data) if response.data else {}

    # --- ModelDeployments and ModelApprovals -------------------------------------------------------

    @staticmethod
    def path(plural: str, namespace: str, name: str | None = None) -> str:
        base = f"/apis/{headway.GROUP}/{headway.VERSION}/namespaces/{quote(namespace)}/{plural}"
        return f"{base}/{quote(name)}" if name else base

    def get_model_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._request("GET", self.path(MODEL_DEPLOYMENTS, namespace, name)))

    def patch_model_deployment(self, namespace: str, name: str, patch: dict[str, Any], field_manager: str) -> dict[str, Any]:
        return dict(self._request("PATCH", self.path(MODEL_DEPLOYMENTS, namespace, name), body=patch, content_type=MERGE_PATCH,
                                  query=[("fieldManager", field_manager)]))

    def list_approvals(self, namespace: str) -> list[dict[str, Any]]:
        return list(self._request("GET", self.path(APPROVALS, namespace)).get("items", []))

    def create_approval(self, namespace: str, body: dict[str, Any], field_manager: str) -> dict[str, Any]:
        return dict(self._request("POST", self.path(APPROVALS, namespace), body=body, query=[("fieldManager", field_manager)]))

    def whoami(self) -> dict[str, Any]:
        """The requesting user as the API server authenticated it (``kubectl auth whoami``): a SelfSubjectReview."""
        review = self._request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                               body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return dict((review.get("status") or {}).get("userInfo") or {})

    def watch_model_deployment(self, namespace: str, name: str, resource_version: str,
                               timeout_seconds: int = 300) -> Iterator[dict[str, Any]]:
        """Watch events of one ModelDeployment from ``resource_version`` until the server ends the watch."""
        query = [("watch", "true"), ("fieldSelector", f"metadata.name={name}"), ("resourceVersion", resource_version),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout_seconds))]
        raw = self._request("GET", self.path(MODEL_DEPLOYMENTS, namespace), query=query, stream=True,
                            timeout=(30, timeout_seconds + 30))
        try:
            buffer = b""
            for chunk in raw.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            raw.release_conn()
