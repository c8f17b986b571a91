"""The emulator's per-client request accounting (``KubeEmulator.request_counts()``), which
hack/bench_scale.py reads to measure what the operator sends; and its routing staying
independent of how many requests it has served."""

from __future__ import annotations

import json
import threading
import time

import requests

from headway.sandbox.apiserver import KubeEmulator
from headway.sandbox.apiserver.rbac import MASTERS

CONFIGMAPS = '/api/v1/namespaces/default/configmaps'


def _session(token: str, agent: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({'Authorization': f'Bearer {token}', 'User-Agent': f'{agent} (test)'})
    return session


def test_requests_are_counted_per_client_verb_and_resource(kube_emulator: KubeEmulator) -> None:
    url = str(kube_emulator.url).rstrip('/')
    operator = _session(kube_emulator.token_for('system:serviceaccount:ops:op', [MASTERS]), 'op/1.0')
    admin = _session('emulator-token', 'admin/2.0')
    assert operator.post(url + CONFIGMAPS, json={'metadata': {'name': 'a'}}).status_code == 201
    for _ in range(3):
        assert operator.get(url + CONFIGMAPS, params={'labelSelector': 'x=y'}).ok
    assert operator.patch(url + CONFIGMAPS + '/a', data=json.dumps({'data': {'k': 'v'}}),
                          headers={'Content-Type': 'application/merge-patch+json'}).ok
    assert operator.get(url + '/api/v1').ok  # discovery counts too, by path
    assert admin.get(url + CONFIGMAPS + '/a').ok
    assert admin.get(url + CONFIGMAPS + '/missing').status_code == 404  # answered: counted

    counts = kube_emulator.request_counts()
    op = 'system:serviceaccount:ops:op'
    assert counts[(op, 'op/1.0', 'create', 'configmaps')] == 1
    assert counts[(op, 'op/1.0', 'list', 'configmaps')] == 3
    assert counts[(op, 'op/1.0', 'patch', 'configmaps')] == 1
    assert counts[(op, 'op/1.0', 'get', '/api/v1')] == 1
    assert counts[('kubernetes-admin', 'admin/2.0', 'get', 'configmaps')] == 2
    assert sum(n for (user, *_), n in counts.items() if user == op) == 6


def test_a_watch_counts_once_however_many_events_it_streams(kube_emulator: KubeEmulator) -> None:
    url = str(kube_emulator.url).rstrip('/')
    watcher = _session(kube_emulator.token_for('watcher', [MASTERS]), 'w/1')
    events: list[str] = []

    def watch() -> None:
        with watcher.get(url + CONFIGMAPS, params={'watch': 'true', 'timeoutSeconds': '3'}, stream=True) as response:
            for line in response.iter_lines():
                if line:
                    events.append(json.loads(line)['type'])
                    if len(events) == 5:
                        return

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    for i in range(5):
        requests.post(url + CONFIGMAPS, json={'metadata': {'name': f'cm-{i}'}}, timeout=5).raise_for_status()
    thread.join(10)
    assert events == ['ADDED'] * 5
    counts = kube_emulator.request_counts()
    assert {key: n for key, n in counts.items() if key[0] == 'watcher'} == {('watcher', 'w/1', 'watch', 'configmaps'): 1}


def test_routing_cost_does_not_grow_with_the_requests_served(kube_emulator: KubeEmulator) -> None:
    """kmock matches a request to its reactions by scanning every request it ever served; the
    emulator routes its own requests directly, so the 2,000th request is as fast as the first."""
    url = str(kube_emulator.url).rstrip('/')
    session = requests.Session()

    def timed(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            assert session.get(url + CONFIGMAPS).ok
        return (time.perf_counter() - start) / n

    first = timed(200)
    for _ in range(1800):
        session.get(url + '/api/v1/namespaces/default/pods')
    later = timed(200)
    assert later < first * 3 + 0.002, (first, later)
