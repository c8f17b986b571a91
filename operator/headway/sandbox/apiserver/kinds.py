"""
What a real cluster adds to built-in objects beyond storing them.

* **API defaulting** (``SetDefaults_*`` in kube-apiserver), so that an operator comparing its
  desired spec with the stored one sees the same drift as on a real cluster:
  Deployments (replicas, strategy, revisionHistoryLimit, progressDeadlineSeconds, pod template
  and container defaults, probe defaults), Services (type, sessionAffinity, port protocol and
  targetPort, an allocated clusterIP kept across updates), Namespaces (phase Active).
  Only the commonly used fields are defaulted — not every field the real server fills in.

* **A Deployment controller** (kube-controller-manager is absent) — :class:`DeploymentController`.
  It creates no ReplicaSets or Pods; it only writes ``.status`` of Deployments, through the same
  code path as a client's ``/status`` write (new resourceVersion, a MODIFIED watch event):

  1. As soon as ``metadata.generation != status.observedGeneration``: the rollout starts —
     ``observedGeneration`` is set, the new pods are not ready yet; the counts follow the real
     RollingUpdate arithmetic (maxSurge/maxUnavailable, default 25%/25%) with the previously
     available pods still serving (Recreate: none). ``Progressing=True/ReplicaSetUpdated``;
     ``Available`` is True only if the still-available pods satisfy maxUnavailable.
  2. After ``delay`` seconds, all pods are ready: replicas = updated = ready = available =
     ``spec.replicas``; ``Available=True/MinimumReplicasAvailable``,
     ``Progressing=True/NewReplicaSetAvailable``.
     EXCEPT if an image contains ``does-not-exist`` (mirrors ImagePullBackOff): the rollout
     stays at step 1 for good, and after ``spec.progressDeadlineSeconds`` (default 600)
     ``Progressing`` becomes ``False/ProgressDeadlineExceeded``. So a fresh Deployment with a
     bad image reports ``Available=False/MinimumReplicasUnavailable`` with no ready replicas,
     while a bad update of a healthy Deployment keeps ``Available=True`` (old pods still serve)
     with ``updatedReplicas`` never becoming available — exactly as on a real cluster.
  With ``pods_ready`` (the sandbox's data plane: a real server per Deployment), step 2 also
  waits until it returns True for the Deployment, as readiness probes hold a real rollout.
  ``spec.replicas: 0`` completes at once with all counts 0 and ``Available=True``.
  As on the real API, zero counts are omitted from the status (``omitempty``), so read them
  with ``status.get('readyReplicas', 0)``.
"""
import asyncio
import hashlib
import itertools
import math
from collections.abc import Callable
from typing import Any

BAD_IMAGE_MARKER = 'does-not-exist'
PROBE_PERIOD = 0.25  # seconds between readiness checks of pods that are not ready yet (pods_ready)
_cluster_ips = itertools.count(10)


# --- API defaulting -----------------------------------------------------------------------------

def apply_defaults(group: str, plural: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Fill in the server-side defaults in place (``old`` is the stored object on updates)."""
    if (group, plural) == ('apps', 'deployments'):
        _default_deployment(obj)
    elif (group, plural) == ('', 'services'):
        _default_service(obj, old)
    elif (group, plural) == ('', 'namespaces'):
        obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])
        obj.setdefault('status', {}).setdefault('phase', 'Active')


def _default_deployment(obj: dict[str, Any]) -> None:
    spec = obj.setdefault('spec', {})
    spec.setdefault('replicas', 1)
    spec.setdefault('revisionHistoryLimit', 10)
    spec.setdefault('progressDeadlineSeconds', 600)
    strategy = spec.setdefault('strategy', {})
    strategy.setdefault('type', 'RollingUpdate')
    if strategy['type'] == 'RollingUpdate':
        rolling = strategy.setdefault('rollingUpdate', {})
        rolling.setdefault('maxUnavailable', '25%')
        rolling.setdefault('maxSurge', '25%')
    pod_spec = spec.setdefault('template', {}).setdefault('spec', {})
    pod_spec.setdefault('restartPolicy', 'Always')
    pod_spec.setdefault('terminationGracePeriodSeconds', 30)
    pod_spec.setdefault('dnsPolicy', 'ClusterFirst')
    pod_spec.setdefault('securityContext', {})
    pod_spec.setdefault('schedulerName', 'default-scheduler')
    for container in pod_spec.get('containers', []) + pod_spec.get('initContainers', []):
        _default_container(container)


def _default_container(container: dict[str, Any]) -> None:
    image: str = container.get('image', '')
    untagged = ':' not in image.rsplit('/', 1)[-1] and '@' not in image
    container.setdefault('imagePullPolicy', 'Always' if untagged or image.endswith(':latest') else 'IfNotPresent')
    container.setdefault('terminationMessagePath', '/dev/termination-log')
    container.setdefault('terminationMessagePolicy', 'File')
    container.setdefault('resources', {})
    for port in container.get('ports', []):
        port.setdefault('protocol', 'TCP')
    for probe_name in ('livenessProbe', 'readinessProbe', 'startupProbe'):
        if probe := container.get(probe_name):
            probe.setdefault('timeoutSeconds', 1)
            probe.setdefault('periodSeconds', 10)
            probe.setdefault('successThreshold', 1)
            probe.setdefault('failureThreshold', 3)
            if 'httpGet' in probe:
                probe['httpGet'].setdefault('scheme', 'HTTP')


def _default_service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault('spec', {})
    spec.setdefault('type', 'ClusterIP')
    spec.setdefault('sessionAffinity', 'None')
    for port in spec.get('ports', []):
        port.setdefault('protocol', 'TCP')
        port.setdefault('targetPort', port.get('port'))
    if spec['type'] != 'ExternalName':
        old_ip = ((old or {}).get('spec') or {}).get('clusterIP')
        if 'clusterIP' not in spec:
            number = next(_cluster_ips)
            spec['clusterIP'] = old_ip or f'10.96.{number // 250}.{number % 250 + 2}'
        spec.setdefault('clusterIPs', [spec['clusterIP']])
        spec.setdefault('ipFamilies', ['IPv4'])
        spec.setdefault('ipFamilyPolicy', 'SingleStack')
        spec.setdefault('internalTrafficPolicy', 'Cluster')


# --- Deployment status ----------------------------------------------------------------------------

def has_bad_image(deployment: dict[str, Any]) -> bool:
    pod_spec = (((deployment.get('spec') or {}).get('template') or {}).get('spec') or {})
    containers = pod_spec.get('containers', []) + pod_spec.get('initContainers', [])
    return any(BAD_IMAGE_MARKER in (c.get('image') or '') for c in containers)


def _scaled(value: int | str | None, replicas: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith('%'):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _rolling_limits(spec: dict[str, Any], replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as the real controller resolves them."""
    strategy = spec.get('strategy') or {}
    if strategy.get('type', 'RollingUpdate') != 'RollingUpdate':
        return 0, replicas
    rolling = strategy.get('rollingUpdate') or {}
    surge = _scaled(rolling.get('maxSurge', '25%'), replicas, round_up=True)
    unavailable = _scaled(rolling.get('maxUnavailable', '25%'), replicas, round_up=False)
    return (surge, unavailable) if surge or unavailable else (surge, 1)


def _condition(old_status: dict[str, Any], type_: str, status: bool, reason: str, message: str,
               now: str) -> dict[str, Any]:
    previous: dict[str, Any] = next(
        (c for c in old_status.get('conditions') or [] if c.get('type') == type_), {})
    same = previous.get('status') == str(status)
    return {
        'type': type_, 'status': str(status), 'reason': reason, 'message': message,
        'lastUpdateTime': now,
        'lastTransitionTime': previous.get('lastTransitionTime', now) if same else now,
    }


def deployment_status(deployment: dict[str, Any], *, phase: str, old_available: int,
                      now: str) -> dict[str, Any]:
    """The status the real controller reports; phase is 'rolling', 'complete' or 'deadline'."""
    spec = deployment.get('spec') or {}
    old_status = deployment.get('status') or {}
    replicas: int = spec.get('replicas', 1)
    template_hash = hashlib.sha256(repr(spec.get('template')).encode()).hexdigest()[:10]
    rs_name = f"{deployment['metadata']['name']}-{template_hash}"
    surge, max_unavailable = _rolling_limits(spec, replicas)

    if phase == 'complete' or replicas == 0:
        total = updated = available = replicas
    elif phase == 'scaling':  # same template, new size: no pod is replaced
        total = updated = replicas
        available = min(old_available, replicas)
    else:
        available = min(old_available, max(replicas - max_unavailable, 0))  # old pods kept serving
        updated = min(replicas, replicas + surge - available)
        total = available + updated
    counts = {'replicas': total, 'updatedReplicas': updated, 'readyReplicas': available,
              'availableReplicas': available, 'unavailableReplicas': max(total - available, 0)}

    is_available = available >= replicas - max_unavailable
    available_condition = _condition(
        old_status, 'Available', is_available,
        'MinimumReplicasAvailable' if is_available else 'MinimumReplicasUnavailable',
        f"Deployment {'has' if is_available else 'does not have'} minimum availability.", now)
    if phase == 'complete' or replicas == 0:
        progressing = (True, 'NewReplicaSetAvailable', f'ReplicaSet "{rs_name}" has successfully progressed.')
    elif phase == 'deadline':
        progressing = (False, 'ProgressDeadlineExceeded', f'ReplicaSet "{rs_name}" has timed out progressing.')
    else:
        progressing = (True, 'ReplicaSetUpdated', f'ReplicaSet "{rs_name}" is progressing.')
    return {
        'observedGeneration': deployment['metadata'].get('generation', 1),
        **{key: value for key, value in counts.items() if value},  # omitempty, as the real API
        'conditions': [available_condition, _condition(old_status, 'Progressing', *progressing, now)],
    }


ObjKey = tuple[str, str, str | None, str]


class DeploymentController:
    """
    The simulated Deployment controller; see the module docstring for the behaviour.

    It is driven by the emulator's internal event feed (``subscribe``), reads the stored objects
    via ``read`` and writes via ``write_status`` (the emulator's ``/status`` write path).
    """

    def __init__(self, *, delay: float,
                 subscribe: Callable[[], 'asyncio.Queue[Any]'],
                 unsubscribe: Callable[['asyncio.Queue[Any]'], None],
                 read: Callable[[ObjKey], dict[str, Any] | None],
                 write_status: Callable[[ObjKey, dict[str, Any]], None],
                 now: Callable[[], str],
                 pods_ready: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self._delay = delay
        self._pods_ready = pods_ready  # a kubelet's readiness probes: None = ready after the delay
        self._subscribe, self._unsubscribe = subscribe, unsubscribe
        self._read, self._write_status, self._now = read, write_status, now
        self._timers: dict[ObjKey, asyncio.TimerHandle] = {}
        self._templates: dict[ObjKey, str] = {}  # the pod template last observed, per Deployment
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, existing: list[tuple[ObjKey, dict[str, Any]]]) -> None:
        self._queue = self._subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        for key, obj in existing:
            self._observe(key, obj)

    def stop(self) -> None:
        if self._queue is not None:
            self._unsubscribe(self._queue)
        if self._task is not None:
            self._task.cancel()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _run(self, queue: 'asyncio.Queue[Any]') -> None:
        while (event := await queue.get()) is not None:
            if event.key[:2] != ('apps', 'deployments'):
                continue
            elif event.type == 'DELETED':
                self._reschedule(event.key, None)
            else:
                self._observe(event.key, event.obj)

    def _observe(self, key: ObjKey, obj: dict[str, Any]) -> None:
        generation = obj['metadata'].get('generation', 1)
        status = obj.get('status') or {}
        if status.get('observedGeneration') == generation:
            return
        old_available: int = status.get('availableReplicas', 0)
        template = hashlib.sha256(repr((obj.get('spec') or {}).get('template')).encode()).hexdigest()
        phase = 'scaling' if self._templates.get(key) == template else 'rolling'
        self._templates[key] = template
        self._write_status(key, deployment_status(obj, phase=phase, old_available=old_available,
                                                  now=self._now()))
        self._reschedule(key, (self._delay, self._advance, generation, old_available, 'complete'))

    def _advance(self, key: ObjKey, generation: int, old_available: int, phase: str) -> None:
        self._timers.pop(key, None)
        obj = self._read(key)
        if obj is None or obj['metadata'].get('generation', 1) != generation:
            return  # deleted or superseded by a newer generation
        if phase == 'complete' and has_bad_image(obj):
            deadline = float(obj['spec'].get('progressDeadlineSeconds', 600))
            self._reschedule(key, (deadline, self._advance, generation, old_available, 'deadline'))
            return
        if phase == 'complete' and (obj.get('spec') or {}).get('replicas', 1) and not self._probe(obj):
            self._reschedule(key, (PROBE_PERIOD, self._advance, generation, old_available, phase))
            return
        self._write_status(key, deployment_status(obj, phase=phase, old_available=old_available,
                                                  now=self._now()))

    def _probe(self, obj: dict[str, Any]) -> bool:
        if self._pods_ready is None:
            return True
        try:
            return self._pods_ready(obj)
        except Exception:  # a broken probe must not hold every Deployment for good
            return True

    def _reschedule(self, key: ObjKey, call: tuple[Any, ...] | None) -> None:
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()
        if call is not None:
            delay, fn, *args = call
            self._timers[key] = asyncio.get_running_loop().call_later(delay, fn, key, *args)
