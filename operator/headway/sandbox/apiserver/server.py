"""
KubeEmulator: kmock's ``KubernetesEmulator`` made to behave like a real kube-apiserver.

kmock (0.8) serves HTTP, parses requests and answers API discovery; this subclass replaces its
object handling with an own in-memory store that follows the real API semantics an operator
relies on. Every gap below is pinned by a test in ``tests/e2e/test_emulator.py`` (server-side
apply: ``tests/e2e/test_emulator_apply.py``) that would also pass against a real cluster.

Gaps filled:

1. Built-in API discovery: ``resources.load_bundled()`` (kopf waits forever without it), minus
   the K3s extras a vanilla cluster serves only via CRDs/add-ons (Gateway API, metrics.k8s.io);
   real-shaped entries for subresources (no short names: kubectl trips over them otherwise) and
   the real preferred versions (e.g. autoscaling/v2).
2. Server-set fields on create: ``metadata.uid``, ``resourceVersion`` (one global counter,
   bumped on every write), ``creationTimestamp`` (RFC 3339, seconds), ``generation`` (1, then +1
   on any change outside ``metadata`` — and outside ``status`` if the status subresource is on);
   ``generateName`` (5 random chars); 409 AlreadyExists; 422 without a name. No-op writes keep
   the resourceVersion and send no event, as on the real server.
3. Optimistic concurrency: a stale ``metadata.resourceVersion`` in PATCH/PUT → 409 Conflict.
   PUT works; without a resourceVersion it is unconditional for built-ins but rejected (422)
   for custom resources, as the real server does.
4. Patches: merge, JSON (a failed ``test`` → 422), strategic merge (approximated; 415 for custom
   resources). See ``patch.py``. Server-side apply: see 14.
5. The status subresource: main-resource writes ignore ``.status``, ``/status`` writes ignore
   everything else and never bump ``generation``; create drops ``.status``.
6. Deletion and garbage collection: finalizers keep a deleted object (``deletionTimestamp``,
   ``deletionGracePeriodSeconds: 0``, generation +1) until they are emptied — new finalizers are
   then refused (422); on the final removal a DELETED event is sent and the dependents (by
   ``ownerReferences[].uid``) are deleted in the background, recursively, honouring their own
   finalizers; dependents with another live owner only lose the dangling reference.
   ``propagationPolicy: Orphan`` (body or query) leaves the dependents and strips the reference.
   DELETE preconditions (uid, resourceVersion) → 409. Deleting a namespace deletes its objects.
7. ``labelSelector`` and ``fieldSelector`` on list, watch and delete-collection
   (``meta.py``); a watched object that stops/starts matching yields DELETED/ADDED.
8. Namespaces: ``default``, ``kube-system``, ``kube-public`` and ``kube-node-lease`` exist;
   creating an object in a namespace that does not exist → 404 ``namespaces "x" not found``, in one
   being deleted → 403 (NamespaceLifecycle admission); ``default``, ``kube-system`` and
   ``kube-public`` cannot be deleted (403), nor all namespaces at once (405). A deleted namespace
   is Terminating (``status.phase``) while its objects are deleted; once none is left its
   ``spec.finalizers`` are emptied and it goes, unless its own ``metadata.finalizers`` hold it (an
   object whose finalizers stay keeps it Terminating); ``GET /api/v1/namespaces`` works.
9. Lists: ``kind: <Kind>List``, ``apiVersion``, ``metadata.resourceVersion``; ``limit`` and
   ``continue``. Watches: ``resourceVersion=N`` replays only the later events from a bounded
   log (older → an ERROR event with 410 Expired); without it (or with "0") the current objects
   come as ADDED first; ``timeoutSeconds`` ends the stream. Returned objects always carry
   ``apiVersion`` and ``kind``. ``allowWatchBookmarks=true``: BOOKMARK events with only the
   resourceVersion, about every ``bookmark_seconds`` and 2 s before the timeout (kopf, the
   informer and the kubectl plugin all ask for them, as on a real server).
10. CRDs: ``install_crd(crd)`` — or POSTing a CustomResourceDefinition — serves its versions
    (discovery, CRUD, list, watch, ``status``/``scale`` in discovery) and marks it Established.
11. A simulated Deployment controller (``kinds.py``), opt-in:
    ``start_deployment_controller(delay)`` / ``stop_deployment_controller()`` or the
    ``deployment_controller_delay=`` constructor argument. On a new generation it at once writes
    a rolling-update status (observedGeneration set, new pods not ready yet), then after
    ``delay`` all pods ready — unless an image contains ``does-not-exist``. Its writes take the
    ``/status`` write path. Also API defaulting of Deployments/Services/Namespaces.
12. Events (``v1`` and ``events.k8s.io/v1``) with ``generateName`` (kopf posts them so).
13. Authentication and RBAC (``rbac.py``): the admin token is ``system:masters``;
    ``token_for(user)`` issues tokens whose requests are authorised by the stored
    Role/ClusterRole/RoleBinding/ClusterRoleBinding objects as the real RBAC authorizer does
    (403 with the real message; discovery open to all authenticated users); unknown tokens
    → 401. ``authorizations()`` lists every decision made. Requests without credentials act
    as the admin (a real server: ``system:anonymous``).
14. Server-side apply and ``metadata.managedFields`` (``apply.py``): every write
    records its field manager (``fieldManager``, else the User-Agent's prefix) — ``Update``
    entries for create/PUT/patches/``/status`` writes (the simulated controllers write as
    ``kube-controller-manager``, CRD conditions and namespaces as ``kube-apiserver``), ``Apply``
    entries for ``PATCH`` with ``application/apply-patch+yaml`` (YAML or JSON), in the real
    FieldsV1 format. Apply creates (201), merges per the CRD schema's list/map types or the
    built-in merge keys, removes what the applier stopped applying unless someone else owns it,
    answers 409 with ``FieldManagerConflict`` causes unless ``force=true``, writes nothing when
    nothing changes; 422 without ``fieldManager``, 400 for ``managedFields``/another kind/name.
    ``kubectl apply --server-side`` (and ``--force-conflicts``) works. Table rows carry the full
    ``metadata``, managedFields included, as the real server's do.
15. Admission of custom resources (``admission.py``, pinned in
    ``tests/e2e/test_emulator_admission.py``): every client write of a CR (create, PUT, each patch type,
    ``/status``) is pruned of fields its CRD's schema does not declare (``metadata``'s unknown
    top-level fields too; ``x-kubernetes-preserve-unknown-fields`` keeps them) per
    ``fieldValidation`` — ``Strict`` → 400 ``strict decoding error: unknown field "spec.foo"``,
    ``Warn`` (the default) → a ``Warning: 299`` header, ``Ignore`` → silent — then defaulted
    (stored objects too when their CRD changes, as on read) and validated against the version's
    ``openAPIV3Schema`` and CEL rules (``crdschema.py``; transition rules see the
    stored object) → 422 Invalid with the real message and ``details.causes[]`` per field.
    Main writes are validated without ``status``, ``/status`` writes for the status; on updates
    errors on unchanged values are dropped (validation ratcheting). ``/openapi/v3`` (discovery
    and per group-version documents of the CRDs, PATCH listing ``fieldValidation``) and
    ``/openapi/v2`` (JSON) are served, so ``kubectl apply`` validates on the server (an unknown
    field fails naming it) and ``kubectl explain`` works for custom resources.
16. ``SelfSubjectReview`` (``POST /apis/authentication.k8s.io/v1/selfsubjectreviews``, what
    ``kubectl auth whoami`` sends): 201 with the requesting user's name and groups, stored nowhere,
    as ``pkg/registry/authentication/selfsubjectreview/rest.go`` answers (pinned in
    ``tests/e2e/test_kubectl_plugin.py`` with the real ``kubectl auth whoami``).
Also: names, label keys/values, annotation keys and owner references are validated (422).

Still approximate / not emulated:
- no conversion between CRD versions (all versions share one store, ``apiVersion`` rewritten);
  admission of CRs (see ``admission.py``): internal writes (simulated controllers, GC)
  are not validated, a CEL rule the library cannot evaluate is skipped, ratcheting compares
  by path (list items by index), duplicate JSON keys are not detected, unknown fields under
  ``.status`` of a main-resource write are pruned unreported, an invalid ``fieldValidation``
  acts as ``Warn``; built-in kinds are neither schema-validated nor in
  ``/openapi/v3`` (``kubectl explain deploy`` fails), ``/openapi/v2`` as protobuf → 406;
- strategic merge patch and, for built-in kinds, server-side apply use small tables of merge
  keys instead of the Go types (the rest of apply's approximations: ``apply.py``);
  no cap of 10 ``Update`` entries, no last-applied-configuration migration;
- no ReplicaSets/Pods, no scheduler, no Service endpoints; no ``scale`` subresource calls;
- no admission webhooks, no ``dryRun``;
- Foreground propagation behaves like Background; GC does not delete dependents created
  after their owner is gone, nor ones pointing to an owner in another namespace;
- deleting a CRD keeps serving its resource; namespaces have no ``/finalize`` subresource and no
  status conditions (only ``status.phase``);
- JSON only: kubectl can read, and its patches and server-side applies are JSON, but its
  creates of built-in kinds (``kubectl create``) are protobuf → 415.

Usage — the server binds 127.0.0.1 on a random port:

    async with KubeEmulator.running() as kube:        # in the current event loop
        kube.url                                       # yarl.URL('http://127.0.0.1:PORT/')

    with KubeEmulator.running_in_thread() as kube:     # own loop in a thread: sync tests,
        ...                                            # the sync `kubernetes` client, kopf

All public methods are thread-safe. The ``kube_emulator`` fixture (``tests/e2e/conftest.py``) is
the threaded form, so it works in sync and async tests alike.

Pointing clients at it — a kubeconfig, exactly as with a real cluster:

    path = kube.write_kubeconfig(tmp_path / 'kubeconfig')   # server, a dummy token, namespace
    # A subprocess (the real operator, kubectl): put KUBECONFIG=<path> in its environment;
    #   kopf's default login handler (login_via_client) picks it up — no emulator-specific code.
    # The `kubernetes` client in-process: kubernetes.config.new_client_from_config(str(path)),
    #   or kubernetes.client.ApiClient(kube.kubernetes_configuration()).
    #   NB: setting $KUBECONFIG in-process is too late: the client reads it once, at import.

kopf in-process (``kopf.testing.KopfRunner``): for that reason, log in with a handler —
``kopf.on.login(registry=registry)(lambda **_: kube.connection_info())`` — then
``KopfRunner(['run', '--standalone', '-A', PATH], settings=settings)``; see
``test_kopf_runs_against_emulator`` in ``tests/e2e/test_emulator.py``. Namespace and CRD scanning
work here, so ``settings.scanning.disabled = True`` is optional. Run the emulator in a thread (as the fixture
does) or exit the runner via ``asyncio.to_thread``: the runner's exit blocks the caller.
"""
import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import functools
import json
import os
import pathlib
import re
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import parsing as kmock_parsing
from kmock._internal import rendering as kmock_rendering
from kmock._internal.rendering import Response

from headway.sandbox.apiserver import admission
from headway.sandbox.apiserver import apply as applying
from headway.sandbox.apiserver import kinds as builtins
from headway.sandbox.apiserver import meta
from headway.sandbox.apiserver import patch as patching
from headway.sandbox.apiserver import rbac

ObjKey = tuple[str, str, str | None, str]  # (group, plural, namespace, name)
RequestKey = tuple[str, str, str, str]  # (user, User-Agent product, verb, resource[/subresource] or path)
T = TypeVar('T')

CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')
SELF_SUBJECT_REVIEWS = '/apis/authentication.k8s.io/v1/selfsubjectreviews'
NAMESPACES = ('', 'namespaces')
IMMORTAL_NAMESPACES = ('default', 'kube-system', 'kube-public')  # NamespaceLifecycle refuses to delete them
NON_VANILLA_GROUPS = {'gateway.networking.k8s.io', 'metrics.k8s.io'}
ALL_VERBS = ('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch')
SERVER_SET_FIELDS = ('uid', 'resourceVersion', 'creationTimestamp', 'generation', 'selfLink',
                     'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields')
IMMUTABLE_FIELDS = ('name', 'namespace', 'uid', 'creationTimestamp', 'generation',
                    'deletionTimestamp', 'deletionGracePeriodSeconds')


class ApiError(Exception):
    """An error answered with a ``kind: Status`` body, as the real server does."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {'apiVersion': 'v1', 'kind': 'Status', 'metadata': {}, 'status': 'Failure',
                'message': self.message, 'reason': self.reason, 'details': self.details,
                'code': self.code}


@dataclasses.dataclass(frozen=True)
class Route:
    """An object URL: ``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` or ``/apis/G/V/…``."""
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def api_version(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def title(self) -> str:  # as the real server names resources in messages: "deployments.apps"
        return f'{self.plural}.{self.group}' if self.group else self.plural


def parse_route(path: str) -> Route | None:
    parts = [part for part in path.split('/') if part]
    if len(parts) >= 3 and parts[0] == 'api':
        group, version, rest = '', parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == 'apis':
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None  # discovery or a non-API path
    namespace = None
    namespace_subresource = group == '' and len(rest) == 3 and rest[2] in ('status', 'finalize')
    if rest[0] == 'namespaces' and len(rest) >= 3 and not namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    name = rest[1] if len(rest) > 1 else None
    return Route(group, version, rest[0], namespace, name, '/'.join(rest[2:]) or None)


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: ObjKey
    obj: dict[str, Any]  # the new state (the last state for DELETED); never mutated
    old: dict[str, Any] | None  # the previous state (None for ADDED)


def _now() -> str:
    return meta.now_rfc3339()


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """A stateful Kubernetes API server for tests; see the module docstring."""

    event_log_size: int = 1000  # how many past events a watch can resume from
    bookmark_seconds: float = 60.0  # between BOOKMARKs of a watch that allows them (the apiserver's cacher: about a minute)
    deployment_controller_delay: float | None = None  # start the simulated controller on enter

    _store: meta.IndexedStore = attrs.field(factory=meta.IndexedStore, init=False)
    _printer_columns: dict[tuple[str, str, str], list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _log: collections.deque[WatchEvent] = attrs.field(init=False)
    _subscribers: set[asyncio.Queue[WatchEvent | None]] = attrs.field(factory=set, init=False)
    _crds: set[tuple[str, str]] = attrs.field(factory=set, init=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)
    _deployment_controller: builtins.DeploymentController | None = attrs.field(default=None, init=False)
    _guard: rbac.Guard = attrs.field(factory=rbac.Guard, init=False)  # authn & RBAC (rbac.py)
    _admission: admission.Admission = attrs.field(factory=admission.Admission, init=False)  # CRs' schemas, OpenAPI
    _request_counts: collections.Counter[RequestKey] = attrs.field(factory=collections.Counter, init=False)
    _own_reactions: int = attrs.field(default=0, init=False)  # kmock reactions registered by the emulator itself

    @_log.default
    def _default_log(self) -> collections.deque[WatchEvent]:
        return collections.deque(maxlen=self.event_log_size)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        with warnings.catch_warnings():  # kmock 0.8 uses the deprecated importlib.resources.read_binary()
            warnings.simplefilter('ignore', DeprecationWarning)
            self.resources.load_bundled()
        for resource, _ in self._resource_infos():  # K3s extras; vanilla clusters have them as CRDs/add-ons
            if resource.group in NON_VANILLA_GROUPS:
                del self.resources[resource]
        # Above kmock's own fallbacks (discovery), below any reaction a test adds explicitly.
        (self.fallback ** 1)[self._is_object_request] << self._serve
        (self.fallback ** 1)[admission.Admission.is_openapi_request] << self._admission.serve_openapi
        for namespace in ('default', 'kube-system', 'kube-public', 'kube-node-lease'):
            self._ensure_namespace(namespace)
        self._own_reactions = len(self._payloads)

    # --- Lifecycle & threading ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        await super().__aenter__()
        if self.deployment_controller_delay is not None:
            self.start_deployment_controller(self.deployment_controller_delay)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await super().__aexit__(*exc_info)

    def close(self) -> None:
        """Stop the simulated controllers and end all watch streams (the server can then stop)."""
        self._call(self._close)

    def _close(self) -> None:
        self._stop_deployment_controller()
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **kwargs: Any) -> AsyncIterator[Self]:
        """Serve on 127.0.0.1 (a random port) in the current event loop."""
        async with cls(**kwargs) as kube, kmock.Server(kube):
            try:
                yield kube
            finally:
                kube.close()  # watch streams must end before the HTTP server waits for them

    @classmethod
    @contextlib.contextmanager
    def running_in_thread(cls, **kwargs: Any) -> Iterator[Self]:
        """Serve on 127.0.0.1 (a random port) from an own event loop in a daemon thread."""
        started: concurrent.futures.Future[tuple[Self, asyncio.Event]] = concurrent.futures.Future()

        async def serve() -> None:
            async with cls.running(**kwargs) as kube:
                stop = asyncio.Event()
                started.set_result((kube, stop))
                await stop.wait()

        def target() -> None:
            try:
                asyncio.run(serve())
            except BaseException as e:  # report startup failures to the waiting caller
                if not started.done():
                    started.set_exception(e)
                raise

        thread = threading.Thread(target=target, name='kube-emulator', daemon=True)
        thread.start()
        kube, stop = started.result(timeout=30)
        try:
            yield kube
        finally:
            assert kube._loop is not None
            kube._loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the emulator's loop (it owns all state), waiting for the result."""
        loop = self._loop
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is None or loop is current or not loop.is_running():
            return fn(*args)

        async def call() -> T:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    # --- Public helpers -------------------------------------------------------------------------

    def create_namespace(self, *names: str) -> None:
        """Create these namespaces (those that do not exist yet), as a cluster's admin would before
        creating objects in them."""
        for name in names:
            self._call(self._ensure_namespace, name)

    def install_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create (or replace) a CustomResourceDefinition and serve its resource; return it."""
        return self._call(self._install_crd, copy.deepcopy(dict(crd)))

    def start_deployment_controller(self, delay: float = 0.2,
                                    pods_ready: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Start simulating the Deployment controller (see ``kinds``); ``pods_ready(deployment)``,
        if given, is asked (from the emulator's thread) whether the current template's pods are ready."""
        self._call(self._start_deployment_controller, delay, pods_ready)

    def stop_deployment_controller(self) -> None:
        self._call(self._stop_deployment_controller)

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A stored object by e.g. ``'apps/v1/deployments'`` or ``'widgets.v1.example.com'``."""
        res = kmock.resource(resource)
        key = (res.group or '', res.plural or '', namespace, name)
        return self._call(lambda: copy.deepcopy(self._store.get(key)))

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        res = kmock.resource(resource)
        return self._call(lambda: [
            copy.deepcopy(self._store[key])
            for key in self._store.kind_keys(res.group or '', res.plural or '', namespace)])

    def write_kubeconfig(self, path: str | os.PathLike[str], *, namespace: str = 'default',
                         token: str = rbac.ADMIN_TOKEN) -> pathlib.Path:
        """Write a kubeconfig pointing at this server (see the module docstring); the admin's
        token unless another one is given (e.g. from ``token_for()``)."""
        server = str(self.url).rstrip('/')
        config = {
            'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'emulator',
            'clusters': [{'name': 'emulator', 'cluster': {'server': server}}],
            'users': [{'name': 'emulator', 'user': {'token': token}}],
            'contexts': [{'name': 'emulator', 'context': {
                'cluster': 'emulator', 'user': 'emulator', 'namespace': namespace}}],
        }
        path = pathlib.Path(path)
        path.write_text(yaml.safe_dump(config))
        return path

    def token_for(self, user: str, groups: Iterable[str] = ()) -> str:
        """A bearer token authenticating as ``user`` (e.g. ``system:serviceaccount:NS:NAME``);
        its requests are authorised by the stored RBAC objects (see ``rbac.py``)."""
        return self._call(self._guard.issue, user, tuple(groups))

    def request_counts(self) -> dict[RequestKey, int]:
        """How many requests each client has sent, by ``(user, agent, verb, resource)``: the
        authenticated user (``''`` if unauthenticated), the User-Agent's product (``kopf/1.37.2``),
        the verb as RBAC names it (``list``, ``watch``, ``patch``, …) and the resource (with its
        subresource, e.g. ``modeldeployments/status``) or, for discovery and other non-resource
        requests, the path. A watch counts once, when it is opened, however long it streams."""
        return self._call(lambda: dict(self._request_counts))

    def authorizations(self, user: str | None = None) -> list[rbac.Decision]:
        """Every authorization decision so far (allowed or denied), optionally of one user."""
        return self._call(lambda: [d for d in self._guard.decisions if user in (None, d.user)])

    def connection_info(self) -> Any:
        """A ``kopf.ConnectionInfo`` for this server — return it from a ``@kopf.on.login()`` handler."""
        import kopf
        return kopf.ConnectionInfo(server=str(self.url).rstrip('/'), scheme='Bearer',
                                   token='emulator-token', default_namespace='default')

    def kubernetes_configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` for this server."""
        import kubernetes.client
        configuration = kubernetes.client.Configuration(host=str(self.url).rstrip('/'))
        configuration.api_key = {'BearerToken': 'emulator-token'}
        configuration.api_key_prefix = {'BearerToken': 'Bearer'}
        return configuration

    def _resource_infos(self) -> list[tuple[kmock.resource, kmock.ResourceInfo]]:
        """The served resources (kmock's ResourcesArray holds parsed keys & ResourceInfo values)."""
        return [(res, self.resources[res]) for res in self.resources]

    # --- Discovery (overrides kmock's: real-like subresource entries, stable preferred versions) ---

    async def _serve_version(self, request: kmock.Request) -> dict[str, Any]:
        assert request.resource is not None
        group, version = request.resource.group, request.resource.version
        entries: list[dict[str, Any]] = []
        for res, info in sorted(self._resource_infos(), key=lambda item: str(item[0].plural)):
            if (res.group, res.version) != (group, version):
                continue
            entries.append({'name': res.plural, 'singularName': info.singular or '', 'kind': info.kind,
                            'namespaced': bool(info.namespaced), 'verbs': sorted(info.verbs),
                            **({'shortNames': sorted(info.shortnames)} if info.shortnames else {}),
                            **({'categories': sorted(info.categories)} if info.categories else {})})
            for sub in sorted(info.subresources):
                scale = {'group': 'autoscaling', 'version': 'v1', 'kind': 'Scale'} if sub == 'scale' else {}
                entries.append({'name': f'{res.plural}/{sub}', 'singularName': '', 'kind': info.kind,
                                'namespaced': bool(info.namespaced), 'verbs': ['get', 'patch', 'update'],
                                **scale})
        if not entries and group != '':
            raise kmock.KubernetesResourceNotFoundError()
        return {'kind': 'APIResourceList', 'apiVersion': 'v1',
                'groupVersion': f'{group}/{version}' if group else version, 'resources': entries}

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = collections.defaultdict(set)
        for res, _ in self._resource_infos():
            if res.group and res.version:
                groups[res.group].add(res.version)
        return {group: sorted(versions, key=_version_priority, reverse=True)
                for group, versions in sorted(groups.items())}

    def _api_group(self, group: str, versions: list[str]) -> dict[str, Any]:
        entries = [{'groupVersion': f'{group}/{version}', 'version': version} for version in versions]
        return {'name': group, 'versions': entries, 'preferredVersion': entries[0]}

    async def _serve_apis(self, request: kmock.Request) -> dict[str, Any]:
        return {'kind': 'APIGroupList', 'apiVersion': 'v1',
                'groups': [self._api_group(g, vs) for g, vs in self._group_versions().items()]}

    async def _serve_group(self, request: kmock.Request) -> dict[str, Any]:
        assert request.resource is not None
        versions = self._group_versions().get(str(request.resource.group))
        if not versions:
            raise kmock.KubernetesResourceNotFoundError()
        return {'kind': 'APIGroup', 'apiVersion': 'v1', **self._api_group(str(request.resource.group), versions)}

    # --- HTTP routing ---------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        ours = len(self._payloads) == self._own_reactions and (  # no test has added a reaction
            parse_route(raw_request.path) is not None or raw_request.path.startswith('/openapi/'))
        if not ours:
            try:
                kmock_parsing.parse_path(raw_request.path)
            except ValueError:  # kmock 0.8 fails on e.g. /api/v1/namespaces: parse it ourselves
                ours = True
        if not ours:
            return await super().__call__(raw_request)
        # Served by the emulator itself: skip kmock's parsing of the request (a third of the
        # emulator's time: it decodes the body and builds kmock's own Kubernetes references).
        body = await raw_request.read()
        request = kmock.Request(
            id=len(self._requests), method=raw_request.method, url=raw_request.url,
            params=dict(raw_request.query), headers=dict(raw_request.headers),
            body=body, text=body.decode(errors='replace'), raw_request=raw_request)
        self._requests.append(request)
        try:
            return await self._handle(request)
        except kmock_rendering.StreamingError as e:  # as kmock's __call__: a stream failed midway
            cause = e.__cause__
            if not self._errors or not isinstance(cause, Exception):
                raise
            self._errors[-1].append(cause)
            raw_response = e.args[0]
            if not raw_response.prepared:
                return await self._render_error(cause)
            await self._stream_error(cause, raw_response)
            await raw_response.write_eof()
            return raw_response
        except Exception as e:  # as kmock's __call__: recorded for the test, answered with a 500
            if not self._errors:
                raise
            self._errors[-1].append(e)
            return await self._render_error(e)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self._count(request)
        # Every request, discovery included, is authenticated and authorised first (RBAC).
        if (denied := self._guard.check(request.method.value, request.url.path, request.params,
                                        request.headers, self._store)) is not None:
            return denied
        if request.method.value.upper() == 'POST' and request.url.path.rstrip('/') == SELF_SUBJECT_REVIEWS:
            return self._self_subject_review(request)
        if len(self._payloads) == self._own_reactions:  # no test has added a reaction: route directly
            # kmock keeps every request for assertions on reactions, and matching a request to a
            # reaction scans them all (quadratic: ~0.1 s per request after 2,000 requests). Without
            # reactions of a test, no history is needed: keep only the request being routed.
            del self._requests[:-1]
            if self._is_object_request(request):
                return await self._serve(request)(request)
            if admission.Admission.is_openapi_request(request):
                return await self._admission.serve_openapi(request)(request)
        # Skip KubernetesEmulator._handle(): it records objects in kmock's own store.
        return await kmock.RawHandler._handle(self, request)

    def _self_subject_review(self, request: kmock.Request) -> aiohttp.web.Response:
        """Who the request authenticated as (a real server stores nothing and answers 201)."""
        identity = self._guard.authenticate(request.headers)
        assert identity is not None  # the guard answered 401 otherwise
        # Its body carries nothing but apiVersion and kind: a protobuf one (kubectl's typed client
        # may send it) is accepted unread, as JSON the kind is checked.
        json_sent = 'json' in request.headers.get('Content-Type', 'application/json')
        try:
            body = _json_body(request) if json_sent and request.body.strip() else {}
        except ApiError as e:
            return aiohttp.web.json_response(e.status(), status=e.code)
        if body.get('kind') not in (None, 'SelfSubjectReview'):
            status = ApiError(400, 'BadRequest', f'not a SelfSubjectReview: {body.get("kind")}').status()
            return aiohttp.web.json_response(status, status=400)
        return aiohttp.web.json_response(
            {'kind': 'SelfSubjectReview', 'apiVersion': 'authentication.k8s.io/v1', 'metadata': {'creationTimestamp': _now()},
             'status': {'userInfo': {'username': identity.user, 'groups': list(identity.groups)}}}, status=201)

    def _count(self, request: kmock.Request) -> None:
        """Per-client request accounting (``request_counts()``)."""
        identity = self._guard.authenticate(request.headers)
        attrs_ = rbac.request_attributes(request.method.value, request.url.path, request.params)
        resource = attrs_.resource if attrs_.resource_request else attrs_.path
        if attrs_.subresource:
            resource = f'{resource}/{attrs_.subresource}'
        agent = request.headers.get('User-Agent', '').split(' ', 1)[0]
        self._request_counts[(identity.user if identity else '', agent, attrs_.verb, resource)] += 1

    def _is_object_request(self, request: kmock.Request) -> bool:
        return parse_route(request.url.path) is not None

    def _serve(self, request: kmock.Request) -> Response:
        route = parse_route(request.url.path)
        assert route is not None  # guaranteed by _is_object_request()
        try:
            with self._admission.request(request) as scope, \
                    applying.writing(applying.request_writer(  # the field manager of its writes
                        request.params, request.headers, route.api_version, route.subresource)):
                return scope.respond(self._dispatch(route, request))
        except ApiError as e:
            return Response(status=e.code, payload=e.status())

    def _dispatch(self, route: Route, request: kmock.Request) -> Response:
        info = self._info(route)
        method = request.method.value.upper()
        params = dict(request.params)
        if route.subresource not in (None, 'status') or (
                route.subresource == 'status' and 'status' not in info.subresources):
            raise self._not_found(route)
        if info.namespaced and route.namespace is None and (route.name or method not in ('GET',)):
            raise self._not_found(route)
        if not info.namespaced and route.namespace is not None:
            raise self._not_found(route)

        if method == 'GET' and params.get('watch', '').lower() in ('true', '1'):
            return self._watch(route, info, params, request)
        elif method == 'GET' and route.name:
            obj = self._render(self._get(route), route, info)
            return _ok(self._table(route, [obj], str(self._rv)) if _wants_table(request) else obj)
        elif method == 'GET':
            listing = self._list(route, info, params)
            return _ok(self._table(route, listing['items'], listing['metadata']['resourceVersion']) if _wants_table(request) else listing)
        elif method == 'POST' and not route.name and not route.subresource:
            return _ok(self._render(self._create(route, info, _json_body(request)), route, info), 201)
        elif method == 'PUT' and route.name:
            return _ok(self._render(self._replace(route, info, _json_body(request)), route, info))
        elif method == 'PATCH' and route.name:
            existed = self._key(route) in self._store  # server-side apply creates (201)
            return _ok(self._render(self._patch(route, info, request), route, info), 200 if existed else 201)
        elif method == 'DELETE' and route.name and not route.subresource:
            options = {**params, **(_json_body(request) if request.body.strip() else {})}
            return _ok(self._render(self._delete(self._key(route), options), route, info))
        elif method == 'DELETE' and not route.subresource:
            return _ok(self._delete_collection(route, info, params))
        raise ApiError(405, 'MethodNotAllowed', f'the server does not allow this method on the '
                                                f'requested resource: {method} {request.url.path}')

    def _info(self, route: Route) -> kmock.ResourceInfo:
        if route.resource not in self.resources:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        return self.resources[route.resource]

    def _key(self, route: Route) -> ObjKey:
        return (route.group, route.plural, route.namespace, route.name or '')

    def _render(self, obj: dict[str, Any], route: Route, info: kmock.ResourceInfo) -> dict[str, Any]:
        # No deep copy: stored objects are never changed in place (every write stores a new
        # object), and the response is serialised before anything else runs.
        return {'apiVersion': route.api_version, 'kind': info.kind, **obj}

    @staticmethod
    def _not_found(route: Route, name: str | None = None) -> ApiError:
        name = name or route.name or ''
        return ApiError(404, 'NotFound', f'{route.title} "{name}" not found',
                        {'name': name, 'group': route.group, 'kind': route.plural})

    @staticmethod
    def _invalid(route: Route, info: kmock.ResourceInfo, name: str, message: str) -> ApiError:
        kind = f'{info.kind}.{route.group}' if route.group else str(info.kind)
        return ApiError(422, 'Invalid', f'{kind} "{name}" is invalid: {message}',
                        {'name': name, 'group': route.group, 'kind': info.kind,
                         'causes': [{'reason': 'FieldValueInvalid', 'message': message}]})

    # --- Reading --------------------------------------------------------------------------------

    def _get(self, route: Route) -> dict[str, Any]:
        if (obj := self._store.get(self._key(route))) is None:
            raise self._not_found(route)
        return obj

    def _selected(self, route: Route, info: kmock.ResourceInfo,
                  params: Mapping[str, str]) -> Callable[[ObjKey, dict[str, Any]], bool]:
        try:
            labels = meta.parse_label_selector(params.get('labelSelector'))
            fields = meta.parse_field_selector(params.get('fieldSelector'), kind=str(info.kind))
        except meta.SelectorError as e:
            raise ApiError(400, 'BadRequest', str(e))

        def check(key: ObjKey, obj: dict[str, Any]) -> bool:
            return (key[:2] == (route.group, route.plural)
                    and route.namespace in (None, key[2]) and route.name in (None, key[3])
                    and meta.match_labels(labels, obj['metadata'].get('labels'))
                    and meta.match_fields(fields, obj))
        return check

    def _matching(self, route: Route, info: kmock.ResourceInfo, params: Mapping[str, str]) -> list[ObjKey]:
        """The keys of the objects a list/watch/delete-collection selects, in list order; from the
        store's indexes (kind, namespace, labels), not a scan of every object."""
        selected = self._selected(route, info, params)  # validates the selectors (400) first
        labels = meta.parse_label_selector(params.get('labelSelector'))
        return [key for key in self._store.kind_keys(route.group, route.plural, route.namespace, labels)
                if selected(key, self._store[key])]

    def _list(self, route: Route, info: kmock.ResourceInfo, params: Mapping[str, str]) -> dict[str, Any]:
        keys = self._matching(route, info, params)
        list_meta: dict[str, Any] = {'resourceVersion': str(self._rv)}
        if token := params.get('continue'):
            after = tuple(json.loads(base64.b64decode(token)))
            keys = [key for key in keys if _sort_key((key, None)) > after]
        if (limit := int(params.get('limit') or 0)) and len(keys) > limit:
            keys, rest = keys[:limit], keys[limit:]
            list_meta['continue'] = base64.b64encode(json.dumps(_sort_key((keys[-1], None))).encode()).decode()
            list_meta['remainingItemCount'] = len(rest)
        return {'apiVersion': route.api_version, 'kind': f'{info.kind}List', 'metadata': list_meta,
                'items': [self._render(self._store[key], route, info) for key in keys]}

    def _watch(self, route: Route, info: kmock.ResourceInfo, params: Mapping[str, str],
               request: kmock.Request) -> Response:
        selected = self._selected(route, info, params)
        timeout = float(params['timeoutSeconds']) if params.get('timeoutSeconds') else None
        since = params.get('resourceVersion') or '0'
        if since == '0':
            backlog = [WatchEvent(self._rv, 'ADDED', key, self._store[key], None)
                       for key in self._matching(route, info, params)]
        elif not since.isdigit():
            raise ApiError(400, 'BadRequest', f'invalid resource version: {since!r}')
        elif self._log and int(since) < self._log[0].rv - 1:  # compacted away
            gone = ApiError(410, 'Expired', f'too old resource version: {since} ({self._log[0].rv - 1})')
            return _stream_response(_gone_stream(gone))
        else:
            backlog = [event for event in self._log if event.rv > int(since)]

        queue = self._subscribe()  # in the same tick as the backlog snapshot: no event is lost
        bookmarks = params.get('allowWatchBookmarks') == 'true'
        stream = self._stream(route, info, selected, backlog, queue, timeout, request, bookmarks, self._rv)
        return _stream_response(stream)

    async def _stream(self, route: Route, info: kmock.ResourceInfo,
                      selected: Callable[[ObjKey, dict[str, Any]], bool], backlog: list[WatchEvent],
                      queue: asyncio.Queue[WatchEvent | None], timeout: float | None,
                      request: kmock.Request, bookmarks: bool, seen: int) -> AsyncIterator[Any]:
        """The watch's events; with ``bookmarks``, a BOOKMARK (kind, apiVersion and the resourceVersion
        every event up to which this watch has been sent, nothing else) about every ``bookmark_seconds``
        and 2 s before ``timeoutSeconds`` ends the stream, as the apiserver's cacher sends them."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        periodic = loop.time() + self.bookmark_seconds if bookmarks else None
        final = deadline - 2.0 if bookmarks and deadline is not None and timeout is not None and timeout > 2.0 else None
        transport = request._raw_request.transport if request._raw_request is not None else None
        getter: asyncio.Future[WatchEvent | None] = asyncio.ensure_future(queue.get())
        try:
            yield b''  # send the headers now, even if no event ever comes
            for event in backlog:
                seen = max(seen, event.rv)
                if (item := self._watch_item(event, route, info, selected)) is not None:
                    yield item
            while deadline is None or loop.time() < deadline:
                wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
                for mark in (periodic, final):
                    if mark is not None:
                        wait = min(wait, mark - loop.time())
                await asyncio.wait([getter], timeout=max(wait, 0))
                if not getter.done():
                    if transport is not None and transport.is_closing():
                        break  # the client has gone
                    now = loop.time()
                    due = [mark for mark in (periodic, final) if mark is not None and now >= mark]
                    if due:  # nothing pending: every event up to ``seen`` has been sent
                        if periodic is not None and now >= periodic:
                            periodic = now + self.bookmark_seconds
                        if final is not None and now >= final:
                            final = None
                        yield {'type': 'BOOKMARK', 'object': {'kind': info.kind, 'apiVersion': route.api_version,
                                                              'metadata': {'resourceVersion': str(seen)}}}
                    continue
                if (new_event := getter.result()) is None:
                    break  # the emulator is closing
                getter = asyncio.ensure_future(queue.get())
                seen = max(seen, new_event.rv)
                if (item := self._watch_item(new_event, route, info, selected)) is not None:
                    yield item
        finally:
            getter.cancel()
            self._unsubscribe(queue)

    def _watch_item(self, event: WatchEvent, route: Route, info: kmock.ResourceInfo,
                    selected: Callable[[ObjKey, dict[str, Any]], bool]) -> dict[str, Any] | None:
        now_matches = selected(event.key, event.obj)
        was_matching = event.old is not None and selected(event.key, event.old)
        if event.type == 'MODIFIED' and now_matches != was_matching:
            type_ = 'ADDED' if now_matches else 'DELETED'  # entered or left the selection
        elif now_matches:
            type_ = event.type
        else:
            return None
        return {'type': type_, 'object': self._render(event.obj, route, info)}

    # --- Writing: the only places that change the store ------------------------------------------

    def _subscribe(self) -> asyncio.Queue[WatchEvent | None]:
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def _unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        self._subscribers.discard(queue)

    def _emit(self, event: WatchEvent) -> None:
        self._log.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _commit(self, key: ObjKey, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._rv += 1
        obj['metadata']['resourceVersion'] = str(self._rv)
        self._store[key] = obj
        self._emit(WatchEvent(self._rv, 'ADDED' if old is None else 'MODIFIED', key, obj, old))
        if key[:2] == CRDS:
            self._register_crd(obj)

    def _remove(self, key: ObjKey, last: dict[str, Any] | None = None) -> dict[str, Any]:
        old = self._store.pop(key)
        self._rv += 1
        obj = copy.deepcopy(old if last is None else last)
        obj['metadata']['resourceVersion'] = str(self._rv)
        self._emit(WatchEvent(self._rv, 'DELETED', key, obj, old))
        self._later(self._collect_garbage, key, obj)
        if key[2] and (namespace := self._store.get((*NAMESPACES, None, key[2]))) is not None \
                and namespace['metadata'].get('deletionTimestamp'):
            self._later(self._drain_namespace, key[2])
        return obj

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            asyncio.get_running_loop().call_soon(fn, *args)
        except RuntimeError:  # not serving yet (e.g. in the constructor): do it now
            fn(*args)

    # --- Create / update / patch ------------------------------------------------------------------

    def _create(self, route: Route, info: kmock.ResourceInfo, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        metadata = obj.setdefault('metadata', {})
        if info.namespaced:
            if metadata.get('namespace') not in (None, '', route.namespace):
                raise ApiError(400, 'BadRequest', 'the namespace of the provided object does not '
                                                  'match the namespace sent on the request')
            metadata['namespace'] = route.namespace
        else:
            metadata.pop('namespace', None)
        name = metadata.get('name')
        while not name and metadata.get('generateName'):
            name = meta.generate_name(metadata['generateName'])
            if (route.group, route.plural, route.namespace, name) in self._store:
                name = None  # a collision: draw again
        if not name:
            raise self._invalid(route, info, '', 'metadata.name: Required value: '
                                                 'name or generateName is required')
        self._validate(route, info, name, metadata)
        if info.namespaced and route.namespace:
            self._admit_into_namespace(route, name)
        key = (route.group, route.plural, route.namespace, name)
        if key in self._store:
            raise ApiError(409, 'AlreadyExists', f'{route.title} "{name}" already exists',
                           {'name': name, 'group': route.group, 'kind': route.plural})

        for field in SERVER_SET_FIELDS:
            metadata.pop(field, None)
        metadata.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        obj['apiVersion'], obj['kind'] = route.api_version, info.kind
        if 'status' in info.subresources:
            obj.pop('status', None)  # create cannot set the status
        builtins.apply_defaults(route.group, route.plural, obj, None)
        obj = self._admission.admit(obj, None)  # custom resources: prune, default, validate
        self._track_fields(key, None, body, obj, status_only=False, has_status='status' in info.subresources)
        self._commit(key, obj, None)
        if key[:2] == CRDS:
            self._establish_crd(key)
        if metadata.get('ownerReferences'):
            self._later(self._collect_orphan, key)
        return self._store.get(key, obj)

    def _collect_orphan(self, key: ObjKey) -> None:
        """The real garbage collector also deletes an object created after all its owners were
        gone (e.g. by a controller that read its owner just before the owner's deletion)."""
        obj = self._store.get(key)
        if obj is None or obj['metadata'].get('deletionTimestamp'):
            return
        refs = obj['metadata'].get('ownerReferences') or []
        if refs and not any(self._store.uid_exists(ref.get('uid') or '') for ref in refs):
            self._delete(key, {})

    def _replace(self, route: Route, info: kmock.ResourceInfo, body: dict[str, Any]) -> dict[str, Any]:
        metadata = body.get('metadata') or {}
        if metadata.get('name') not in (None, route.name):
            raise ApiError(400, 'BadRequest', f"the name of the object ({metadata.get('name')}) "
                                              f"does not match the name on the URL ({route.name})")
        if not metadata.get('resourceVersion') and (route.group, route.plural) in self._crds:
            raise self._invalid(route, info, route.name or '', 'metadata.resourceVersion: '
                                'Invalid value: 0x0: must be specified for an update')
        return self._update(route, info, self._get(route), body)

    def _patch(self, route: Route, info: kmock.ResourceInfo, request: kmock.Request) -> dict[str, Any]:
        is_apply = patching.is_apply(request.headers.get('Content-Type', ''))
        try:
            applying.validate_patch_options(is_apply, request.params)
        except applying.ApplyError as e:
            raise ApiError(e.code, e.reason, e.message, e.details)
        if is_apply:
            return self._apply(route, info, request)
        old = self._get(route)
        try:
            new = patching.apply_patch(request.headers.get('Content-Type', ''), old, request.body,
                                       custom_resource=(route.group, route.plural) in self._crds)
        except patching.PatchError as e:
            raise ApiError(e.status, e.reason, e.message)
        return self._update(route, info, old, new)

    def _apply(self, route: Route, info: kmock.ResourceInfo, request: kmock.Request) -> dict[str, Any]:
        """Server-side apply (``apply.py``): create or merge, then the usual write path."""
        old = self._store.get(self._key(route))
        if old is None and route.subresource:
            raise self._not_found(route)
        writer = applying.current_writer()
        assert writer is not None  # set for every request in _serve()
        has_status = 'status' in info.subresources
        try:
            config = applying.parse_apply_body(request.body)
            new, writer = applying.server_side_apply(
                self._field_types(self._key(route), route.version), old, config, writer=writer,
                force=str(request.params.get('force', '')).lower() == 'true', kind=str(info.kind),
                name=route.name or '', namespace=route.namespace, status_only=route.subresource == 'status',
                has_status=has_status, now=_now())
        except applying.ApplyError as e:
            raise ApiError(e.code, e.reason, e.message, e.details)
        with applying.writing(writer):  # carries the managedFields the apply computed
            if old is None:
                return self._create(route, info, new)
            return self._update(route, info, old, new)

    def _field_types(self, key: ObjKey, version: str | None = None) -> applying.Types:
        """How the fields of a resource merge: its CRD's schema, or the built-in tables."""
        if (key[0], key[1]) not in self._crds:
            return applying.Types(key[0], key[1])
        crd = self._store.get((*CRDS, None, f'{key[1]}.{key[0]}')) or {}
        versions = (crd.get('spec') or {}).get('versions') or []
        entry = next((v for v in versions if v.get('name') == version), None) or \
            next((v for v in versions if v.get('storage')), None) or {}
        schema = (entry.get('schema') or {}).get('openAPIV3Schema')
        return applying.Types(key[0], key[1], schema, custom=True)

    def _track_fields(self, key: ObjKey, old: dict[str, Any] | None, new: Mapping[str, Any],
                      result: dict[str, Any], *, status_only: bool, has_status: bool) -> None:
        """Set ``result``'s managedFields: an apply's as computed, else an ``Update`` entry for the
        request's field manager (or the simulated controller's)."""
        writer = applying.current_writer() or applying.Writer(
            'kube-apiserver' if key[:2] in (CRDS, NAMESPACES) else 'kube-controller-manager',
            str(result.get('apiVersion') or ''), 'status' if status_only else '')
        if writer.managed_fields is not None:
            entries = [copy.deepcopy(e) for e in writer.managed_fields]
        else:
            entries = applying.track_update(
                self._field_types(key, str(result.get('apiVersion', '')).rpartition('/')[2]), old,
                (new.get('metadata') or {}).get('managedFields'), result, writer, now=_now(),
                status_only=status_only, has_status=has_status)
        if entries:
            result['metadata']['managedFields'] = entries
        else:
            result['metadata'].pop('managedFields', None)

    def _update(self, route: Route, info: kmock.ResourceInfo, old: dict[str, Any],
                new: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(new, dict) or not isinstance(new.get('metadata', {}), dict):
            raise ApiError(400, 'BadRequest', 'the object must be a JSON object')
        new_rv = (new.get('metadata') or {}).get('resourceVersion')
        if new_rv not in (None, '') and str(new_rv) != old['metadata']['resourceVersion']:
            raise ApiError(409, 'Conflict', f'Operation cannot be fulfilled on {route.title} '
                           f'"{route.name}": the object has been modified; please apply your '
                           f'changes to the latest version and try again',
                           {'name': route.name, 'group': route.group, 'kind': route.plural})
        if route.subresource != 'status':
            self._validate(route, info, route.name or '', new.get('metadata') or {})
        return self._write(self._key(route), old, new, status_only=route.subresource == 'status',
                           has_status='status' in info.subresources)

    def _write(self, key: ObjKey, old: dict[str, Any], new: dict[str, Any], *,
               status_only: bool, has_status: bool) -> dict[str, Any]:
        """The single update path: client writes, /status writes, the simulated controllers."""
        if status_only:
            result = copy.deepcopy(old)
            result.pop('status', None)
            if new.get('status') is not None:
                result['status'] = copy.deepcopy(new['status'])
        else:
            result = copy.deepcopy(new)
            result.pop('status', None)
            if (status := (old if has_status else new).get('status')) is not None:
                result['status'] = copy.deepcopy(status)
            metadata, old_metadata = result.setdefault('metadata', {}), old['metadata']
            for field in IMMUTABLE_FIELDS:
                metadata.pop(field, None)
                if field in old_metadata:
                    metadata[field] = old_metadata[field]
            if old_metadata.get('deletionTimestamp') and \
                    set(metadata.get('finalizers') or []) - set(old_metadata.get('finalizers') or []):
                raise ApiError(422, 'Invalid', 'metadata.finalizers: Forbidden: no new finalizers '
                                               'can be added if the object is being deleted')
            builtins.apply_defaults(key[0], key[1], result, old)
        result['apiVersion'], result['kind'] = old['apiVersion'], old['kind']
        result['metadata']['resourceVersion'] = old['metadata']['resourceVersion']
        result = self._admission.admit(result, old, status_only=status_only)  # client writes of CRs
        self._track_fields(key, old, new, result, status_only=status_only, has_status=has_status)
        if result == old:
            return old  # a no-op: no new resourceVersion, no event
        if not status_only and _spec_of(result, has_status) != _spec_of(old, has_status):
            result['metadata']['generation'] = old['metadata'].get('generation', 0) + 1
        if result['metadata'].get('deletionTimestamp') and not result['metadata'].get('finalizers') \
                and not (key[:2] == NAMESPACES and (result.get('spec') or {}).get('finalizers')):
            # The last finalizer is gone: one DELETED event only. A namespace also waits for its
            # spec.finalizers, which the namespace controller empties once nothing is left in it.
            return self._remove(key, result)
        self._commit(key, result, old)
        return result

    def _validate(self, route: Route, info: kmock.ResourceInfo, name: str, metadata: Mapping[str, Any]) -> None:
        try:
            meta.validate_name(name, group=route.group, plural=route.plural)
            meta.validate_metadata(metadata)
        except meta.MetadataInvalid as e:
            raise self._invalid(route, info, name, str(e))

    def _write_status(self, key: ObjKey, status: dict[str, Any]) -> None:
        """Write the status as a client's ``/status`` write would (for simulated controllers)."""
        if (old := self._store.get(key)) is not None:
            with applying.writing(None):  # a simulated controller: kube-controller-manager / kube-apiserver
                self._write(key, old, {'status': status}, status_only=True, has_status=True)

    def _admit_into_namespace(self, route: Route, name: str) -> None:
        """kube-apiserver's NamespaceLifecycle admission: nothing is created in a namespace that does
        not exist (404) or is being terminated (403, cause NamespaceTerminating)."""
        where = route.namespace or ''
        namespace = self._store.get((*NAMESPACES, None, where))
        if namespace is None:
            raise ApiError(404, 'NotFound', f'namespaces "{where}" not found', {'name': where, 'kind': 'namespaces'})
        if namespace['metadata'].get('deletionTimestamp'):
            raise ApiError(403, 'Forbidden', f'{route.title} "{name}" is forbidden: unable to create new content in '
                                             f'namespace {where} because it is being terminated',
                           {'name': name, 'group': route.group, 'kind': route.plural,
                            'causes': [{'reason': 'NamespaceTerminating', 'field': 'metadata.namespace',
                                        'message': f'namespace {where} is being terminated'}]})

    def _ensure_namespace(self, name: str) -> None:
        key = ('', 'namespaces', None, name)
        if key not in self._store:
            route = Route('', 'v1', 'namespaces', None, None, None)
            with applying.writing(None):  # by kube-apiserver
                self._create(route, self.resources[route.resource], {'metadata': {'name': name}})

    # --- Deletion & garbage collection ---------------------------------------------------------------

    def _delete(self, key: ObjKey, options: Mapping[str, Any]) -> dict[str, Any]:
        route = Route(key[0], '', key[1], key[2], key[3], None)
        if (old := self._store.get(key)) is None:
            raise self._not_found(route)
        old_meta = old['metadata']
        for field, value in (options.get('preconditions') or {}).items():
            if value is not None and value != old_meta.get(field):
                raise ApiError(409, 'Conflict', f'Precondition failed: {field} in precondition: '
                               f'{value}, {field} in object meta: {old_meta.get(field)}',
                               {'name': key[3], 'group': key[0], 'kind': key[1]})
        if options.get('propagationPolicy') == 'Orphan' or options.get('orphanDependents') in (True, 'true'):
            self._orphan_dependents(old_meta['uid'])
        if old_meta.get('deletionTimestamp'):
            return old
        if key[:2] == NAMESPACES:
            if key[3] in IMMORTAL_NAMESPACES:  # NamespaceLifecycle admission
                raise ApiError(403, 'Forbidden', f'namespaces "{key[3]}" is forbidden: this namespace may not be deleted',
                               {'name': key[3], 'kind': 'namespaces'})
            return self._terminate_namespace(key, old)
        if old_meta.get('finalizers'):
            new = copy.deepcopy(old)
            new['metadata'].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0,
                                   generation=old_meta.get('generation', 0) + 1)
            self._commit(key, new, old)
            return new
        self._remove(key)
        return old

    def _terminate_namespace(self, key: ObjKey, old: dict[str, Any]) -> dict[str, Any]:
        """A deleted namespace is Terminating (deletionTimestamp, ``status.phase``) while the namespace
        controller deletes its content; it goes once nothing is left in it (objects whose finalizers
        are not removed keep it Terminating)."""
        new = copy.deepcopy(old)
        new['metadata']['deletionTimestamp'] = _now()
        new.setdefault('status', {})['phase'] = 'Terminating'
        with applying.writing(None):  # by kube-apiserver
            self._commit(key, new, old)
        self._later(self._drain_namespace, key[3])
        return new

    def _drain_namespace(self, name: str) -> None:
        """kube-controller-manager's namespace controller: delete everything in a Terminating
        namespace; once it is empty, finalize it (``spec.finalizers``) and remove it."""
        key = (*NAMESPACES, None, name)
        namespace = self._store.get(key)
        if namespace is None or not namespace['metadata'].get('deletionTimestamp'):
            return
        for content in [k for k in self._store if k[2] == name]:
            if (obj := self._store.get(content)) is not None and not obj['metadata'].get('deletionTimestamp'):
                self._delete(content, {})
        if any(k[2] == name for k in self._store):
            return  # finalizers hold some: drained again whenever one of them goes (_remove)
        if (namespace.get('spec') or {}).get('finalizers'):  # finalize: the namespace controller's own finalizer goes
            finalized = copy.deepcopy(namespace)
            finalized['spec']['finalizers'] = []
            with applying.writing(None):  # by kube-controller-manager
                self._commit(key, finalized, namespace)
            namespace = finalized
        if namespace['metadata'].get('finalizers') or key not in self._store:
            return  # someone else's finalizers: it stays until they are removed (then _write removes it)
        self._remove(key)

    def _delete_collection(self, route: Route, info: kmock.ResourceInfo,
                           params: Mapping[str, str]) -> dict[str, Any]:
        if (route.group, route.plural) == NAMESPACES:
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
        keys = self._matching(route, info, params)
        items = [self._render(self._delete(key, params), route, info) for key in keys]
        return {'apiVersion': route.api_version, 'kind': f'{info.kind}List',
                'metadata': {'resourceVersion': str(self._rv)}, 'items': items}

    def _orphan_dependents(self, uid: str) -> None:
        for key in self._store.dependents(uid):
            obj = self._store[key]
            refs = obj['metadata'].get('ownerReferences') or []
            if any(ref.get('uid') == uid for ref in refs):
                self._set_owner_references(key, obj, [ref for ref in refs if ref.get('uid') != uid])

    def _set_owner_references(self, key: ObjKey, obj: dict[str, Any], refs: list[dict[str, Any]]) -> None:
        new = copy.deepcopy(obj)
        new['metadata']['ownerReferences'] = refs
        if not refs:
            del new['metadata']['ownerReferences']
        with applying.writing(None):  # by the garbage collector (kube-controller-manager)
            self._write(key, obj, new, status_only=False, has_status=self._has_status(key))

    def _collect_garbage(self, owner_key: ObjKey, owner: dict[str, Any]) -> None:
        """What kube-controller-manager's garbage collector does once an object is gone."""
        if owner_key[:2] == NAMESPACES:
            for key in [key for key in self._store if key[2] == owner_key[3]]:
                if key in self._store:
                    self._delete(key, {})
        uid = owner['metadata']['uid']
        for key in self._store.dependents(uid):
            if (obj := self._store.get(key)) is None:
                continue  # deleted meanwhile (e.g. by a cascade)
            refs = obj['metadata'].get('ownerReferences') or []
            if not any(ref.get('uid') == uid for ref in refs):
                continue
            remaining = [ref for ref in refs if ref.get('uid') != uid]
            if any(self._store.uid_exists(ref.get('uid') or '') for ref in remaining):
                self._set_owner_references(key, obj, remaining)  # another owner still lives
            else:
                self._delete(key, {})

    def _has_status(self, key: ObjKey) -> bool:
        return any(res.group == key[0] and res.plural == key[1] and 'status' in info.subresources
                   for res, info in self._resource_infos())

    # --- CRDs & controllers ---------------------------------------------------------------------------

    def _install_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        route = Route(CRDS[0], 'v1', CRDS[1], None, None, None)
        info = self.resources[route.resource]
        name = f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
        crd.setdefault('metadata', {})['name'] = name
        key = (*CRDS, None, name)
        if (old := self._store.get(key)) is None:
            return self._create(route, info, crd)
        crd['metadata'].pop('resourceVersion', None)
        return self._write(key, old, crd, status_only=False, has_status=True)

    def _table(self, route: Route, items: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
        """Server-side printing (what `kubectl get` asks for): a CRD's additionalPrinterColumns, the
        built-in kinds' own columns for Deployments and Services, else the name and age."""
        custom = self._printer_columns.get((route.group, route.version, route.plural))
        getters: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]]
        if custom is not None:
            getters = [(c, functools.partial(_printed_path, path=c['jsonPath'], date=c.get('type') == 'date')) for c in custom]
        else:
            getters = _BUILTIN_COLUMNS.get((route.group, route.plural), [])
            getters = [*getters, ({'name': 'Age', 'type': 'date'}, _printed_age)]
        name: tuple[dict[str, Any], Callable[[dict[str, Any]], Any]] = (
            {'name': 'Name', 'format': 'name', 'description': 'Name'}, lambda o: o['metadata']['name'])
        if route.plural == 'events' and custom is None:  # kubectl get events: the name is a wide column, last
            getters = [*_EVENT_COLUMNS, ({**name[0], 'priority': 1}, name[1])]
        else:
            getters = [name, *getters]
        columns = [{'name': c['name'], 'type': c.get('type', 'string'), 'format': c.get('format', ''),
                    'description': c.get('description', ''), 'priority': c.get('priority', 0)} for c, _ in getters]
        rows = []
        for obj in items:
            cells: list[Any] = [get(obj) for _, get in getters]
            meta = obj['metadata']  # all of it, managedFields too: AsPartialObjectMetadata copies the ObjectMeta
            rows.append({'cells': cells, 'object': {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1', 'metadata': meta}})
        return {'kind': 'Table', 'apiVersion': 'meta.k8s.io/v1', 'metadata': {'resourceVersion': resource_version},
                'columnDefinitions': columns, 'rows': rows}

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd['spec']
        names, group = spec['names'], spec['group']
        versions = spec.get('versions') or [{'name': spec['version'], 'served': True}]
        for version in versions:
            if version.get('additionalPrinterColumns'):
                self._printer_columns[(group, version['name'], names['plural'])] = version['additionalPrinterColumns']
            if version.get('served', True):
                subresources = version.get('subresources') or spec.get('subresources') or {}
                self.resources[kmock.resource(group, version['name'], names['plural'])] = kmock.ResourceInfo(
                    namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
                    kind=names['kind'], singular=names.get('singular') or names['kind'].lower(),
                    shortnames=names.get('shortNames') or [], categories=names.get('categories') or [],
                    subresources=[name for name in ('status', 'scale') if name in subresources],
                    verbs=ALL_VERBS)
        self._crds.add((group, names['plural']))
        self._admission.register(crd, self._store)  # validation & defaults of its resources

    def _establish_crd(self, key: ObjKey) -> None:
        crd = self._store[key]
        now = _now()
        conditions = [{'type': type_, 'status': 'True', 'reason': reason, 'message': message,
                       'lastTransitionTime': now} for type_, reason, message in [
            ('NamesAccepted', 'NoConflicts', 'no conflicts found'),
            ('Established', 'InitialNamesAccepted', 'the initial names have been accepted')]]
        versions = [v['name'] for v in crd['spec'].get('versions', []) if v.get('storage')]
        self._write_status(key, {'conditions': conditions, 'acceptedNames': crd['spec']['names'],
                                 'storedVersions': versions})

    def _start_deployment_controller(self, delay: float,
                                     pods_ready: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self._stop_deployment_controller()
        self._deployment_controller = builtins.DeploymentController(
            delay=delay, subscribe=self._subscribe, unsubscribe=self._unsubscribe,
            read=self._store.get, write_status=self._write_status, now=_now, pods_ready=pods_ready)
        self._deployment_controller.start(
            [(key, obj) for key, obj in self._store.items() if key[:2] == ('apps', 'deployments')])

    def _stop_deployment_controller(self) -> None:
        if self._deployment_controller is not None:
            self._deployment_controller.stop()
            self._deployment_controller = None


def _sort_key(item: tuple[ObjKey, Any]) -> tuple[str, str, str, str]:
    return meta.key_order(item[0])


def _spec_of(obj: Mapping[str, Any], has_status: bool) -> dict[str, Any]:
    """Everything that changes the generation: all but metadata (and status if a subresource)."""
    ignored = {'metadata', 'apiVersion', 'kind'} | ({'status'} if has_status else set())
    return {key: value for key, value in obj.items() if key not in ignored}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else."""
    match = re.fullmatch(r'v(\d+)(?:(alpha|beta)(\d+))?', version)
    if not match:
        return (0, 0, 0)
    major, stage, minor = match.groups()
    return ({'alpha': 1, 'beta': 2}.get(stage or '', 3), int(major), int(minor or 0))


def _wants_table(request: kmock.Request) -> bool:
    return 'as=Table' in request.headers.get('Accept', '')


def _json_path(obj: Any, path: str) -> Any:
    """The simple `.a.b.c` JSONPaths printer columns use."""
    for part in path.strip('.').split('.'):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _printed_path(obj: dict[str, Any], *, path: str, date: bool) -> Any:
    value = _json_path(obj, path)
    return _age(value) if date and value else value


def _printed_age(obj: dict[str, Any]) -> Any:
    return _printed_path(obj, path='.metadata.creationTimestamp', date=True)


def _service_ports(obj: dict[str, Any]) -> str:
    ports = [f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
             for p in (obj.get('spec') or {}).get('ports') or []]
    return ','.join(ports) or '<none>'


# The columns kube-apiserver prints for the built-in kinds Headway creates (pkg/printers/internalversion).
_BUILTIN_COLUMNS: dict[tuple[str, str], list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]]] = {
    ('apps', 'deployments'): [
        ({'name': 'Ready', 'description': 'Number of the pod with ready state'},
         lambda o: f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"),
        ({'name': 'Up-to-date', 'type': 'integer'}, lambda o: (o.get('status') or {}).get('updatedReplicas', 0)),
        ({'name': 'Available', 'type': 'integer'}, lambda o: (o.get('status') or {}).get('availableReplicas', 0)),
    ],
    ('', 'services'): [
        ({'name': 'Type'}, lambda o: (o.get('spec') or {}).get('type', 'ClusterIP')),
        ({'name': 'Cluster-IP'}, lambda o: (o.get('spec') or {}).get('clusterIP') or '<none>'),
        ({'name': 'Port(s)'}, _service_ports),
    ],
}

_EVENT_COLUMNS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
    ({'name': 'Last Seen'}, lambda o: _age(t) if (t := o.get('lastTimestamp') or o.get('eventTime') or
                                                  o['metadata'].get('creationTimestamp')) else '<unknown>'),
    ({'name': 'Type'}, lambda o: o.get('type', '')),
    ({'name': 'Reason'}, lambda o: o.get('reason', '')),
    ({'name': 'Object'}, lambda o: f"{(o.get('involvedObject') or o.get('regarding') or {}).get('kind', '').lower()}/"
                                   f"{(o.get('involvedObject') or o.get('regarding') or {}).get('name', '')}"),
    ({'name': 'Message'}, lambda o: o.get('message') or o.get('note') or ''),
]


def _age(timestamp: str) -> str:
    """How the API server prints a date column: the time since, like kubectl's ages."""
    then = datetime.datetime.fromisoformat(timestamp.replace('Z', '+00:00'))
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= 2 * size:
            return f'{seconds // size}{unit}'
    return f'{max(seconds, 0)}s'


def _json_body(request: kmock.Request) -> dict[str, Any]:
    if 'protobuf' in request.headers.get('Content-Type', ''):
        raise ApiError(415, 'UnsupportedMediaType', 'the emulator accepts JSON only, not protobuf')
    try:
        body = json.loads(request.body or b'null')
    except ValueError as e:
        raise ApiError(400, 'BadRequest', f'the body is not valid JSON: {e}')
    if not isinstance(body, dict):
        raise ApiError(400, 'BadRequest', 'the body must be a JSON object')
    return body


def _ok(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(status=status, payload=payload)


def _stream_response(stream: AsyncIterator[Any]) -> Response:
    return Response(status=200, headers={'Content-Type': 'application/json'}, payload=stream)


async def _gone_stream(error: ApiError) -> AsyncIterator[Any]:
    yield {'type': 'ERROR', 'object': error.status()}
