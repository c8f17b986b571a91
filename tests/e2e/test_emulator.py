"""
The emulated kube-apiserver behaves like the real one where operators rely on it.

Every test pins the REAL Kubernetes API behaviour over plain HTTP (aiohttp) or the official
client, so it would pass against a real cluster too; each one fails against kmock's plain
``KubernetesEmulator``. Only the emulator-specific knobs (``start_deployment_controller``,
``install_crd`` as a shortcut for POSTing a CRD) stand in for what a real cluster does itself.
"""
import asyncio
import json
import re
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import kopf.testing
import kubernetes.client
import kubernetes.config
import pytest
import pytest_asyncio

from headway.sandbox.apiserver import KubeEmulator

NS = 'team-a'
WIDGETS = f'/apis/example.headway.dev/v1/namespaces/{NS}/widgets'
DEPLOYMENTS = f'/apis/apps/v1/namespaces/{NS}/deployments'
CONFIGMAPS = f'/api/v1/namespaces/{NS}/configmaps'
MERGE = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'
STRATEGIC = 'application/strategic-merge-patch+json'

WIDGET_CRD: dict[str, Any] = {
    'apiVersion': 'apiextensions.k8s.io/v1',
    'kind': 'CustomResourceDefinition',
    'metadata': {'name': 'widgets.example.headway.dev'},
    'spec': {
        'group': 'example.headway.dev',
        'scope': 'Namespaced',
        'names': {'plural': 'widgets', 'singular': 'widget', 'kind': 'Widget', 'shortNames': ['wd']},
        'versions': [{
            'name': 'v1', 'served': True, 'storage': True,
            'subresources': {'status': {}},
            'schema': {'openAPIV3Schema': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}},
        }],
    },
}


class Api:
    """A thin HTTP client: every call returns (status code, JSON body)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, *,
                   content_type: str = 'application/json', **params: str) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {'Content-Type': content_type}
        async with self.session.request(method, path, data=data, headers=headers, params=params) as response:
            return response.status, await response.json(content_type=None)

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.call('GET', path, **params)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call('POST', path, body)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call('PUT', path, body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE) -> tuple[int, Any]:
        return await self.call('PATCH', path, body, content_type=content_type)

    async def delete(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call('DELETE', path, body)

    async def watch(self, path: str, *, count: int | None = None, **params: str) -> list[dict[str, Any]]:
        """Collect watch events until ``count`` arrive or the server ends the stream."""
        events: list[dict[str, Any]] = []
        timeout = aiohttp.ClientTimeout(total=5)
        async with self.session.get(path, params={'watch': 'true', **params}, timeout=timeout) as response:
            assert response.status == 200
            async for line in response.content:
                if line.strip():
                    events.append(json.loads(line))
                if count is not None and len(events) >= count:
                    break
        return events

    async def wait_for(self, path: str, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.get(path)
            if status == 200 and predicate(body):
                found: dict[str, Any] = body
                return found
            assert time.monotonic() < deadline, f"Timed out waiting on {path}: {body}"
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture()
async def api(kube_emulator: KubeEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(base_url=str(kube_emulator.url)) as session:
        yield Api(session)


async def gone(api: Api, path: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while (await api.get(path))[0] != 404:
        assert time.monotonic() < deadline, f'{path} still there'
        await asyncio.sleep(0.02)


async def create_widget_crd(api: Api) -> None:
    status, _ = await api.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', WIDGET_CRD)
    assert status == 201
    await api.wait_for('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.headway.dev',
                       lambda crd: any(c['type'] == 'Established' and c['status'] == 'True'
                                       for c in crd.get('status', {}).get('conditions', [])))


def deployment(name: str, image: str = 'registry.example/model:1', **spec: Any) -> dict[str, Any]:
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': {'name': name, 'labels': {'app': name}},
        'spec': {
            'selector': {'matchLabels': {'app': name}},
            'template': {
                'metadata': {'labels': {'app': name}},
                'spec': {'containers': [{'name': 'main', 'image': image,
                                         'env': [{'name': 'A', 'value': '1'}]}]},
            },
            **spec,
        },
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get('status', {}).get('conditions', []) if c['type'] == type_), {})


# --- 1. Discovery ---------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_builtin_resources_are_discoverable(api: Api) -> None:
    _, core = await api.get('/api/v1')
    assert {'namespaces', 'events', 'pods', 'configmaps', 'services'} <= {r['name'] for r in core['resources']}
    _, groups = await api.get('/apis')
    assert {'apps', 'apiextensions.k8s.io', 'events.k8s.io'} <= {g['name'] for g in groups['groups']}
    _, apps = await api.get('/apis/apps/v1')
    resources = {r['name']: r for r in apps['resources']}
    assert resources['deployments']['shortNames'] == ['deploy']
    assert 'shortNames' not in resources['deployments/status']  # else kubectl finds "deploy" ambiguous
    _, autoscaling = await api.get('/apis/autoscaling')
    assert autoscaling['preferredVersion']['version'] == 'v2'


# --- 2. Server-set fields -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_server_sets_uid_resource_version_timestamp_generation(api: Api) -> None:
    status, first = await api.post(CONFIGMAPS, {'metadata': {'name': 'one'}, 'data': {'a': '1'}})
    assert status == 201
    meta = first['metadata']
    uuid.UUID(meta['uid'])
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', meta['creationTimestamp'])
    assert meta['resourceVersion'].isdigit()

    _, second = await api.post(DEPLOYMENTS, deployment('two'))
    assert int(second['metadata']['resourceVersion']) > int(meta['resourceVersion'])  # one global counter
    assert second['metadata']['generation'] == 1
    assert second['apiVersion'] == 'apps/v1' and second['kind'] == 'Deployment'

    _, labelled = await api.patch(f'{DEPLOYMENTS}/two', {'metadata': {'labels': {'x': 'y'}}})
    assert labelled['metadata']['generation'] == 1  # metadata changes keep the generation
    assert int(labelled['metadata']['resourceVersion']) > int(second['metadata']['resourceVersion'])
    _, scaled = await api.patch(f'{DEPLOYMENTS}/two', {'spec': {'replicas': 3}})
    assert scaled['metadata']['generation'] == 2
    _, unchanged = await api.patch(f'{DEPLOYMENTS}/two', {'spec': {'replicas': 3}})
    assert unchanged['metadata']['resourceVersion'] == scaled['metadata']['resourceVersion']  # no-op


@pytest.mark.asyncio
async def test_generate_name_conflicts_and_missing_names(api: Api) -> None:
    _, a = await api.post(CONFIGMAPS, {'metadata': {'generateName': 'cm-'}})
    _, b = await api.post(CONFIGMAPS, {'metadata': {'generateName': 'cm-'}})
    assert re.fullmatch(r'cm-[a-z0-9]{5}', a['metadata']['name'])
    assert a['metadata']['name'] != b['metadata']['name']

    status, body = await api.post(CONFIGMAPS, {'metadata': {'name': a['metadata']['name']}})
    assert (status, body['reason']) == (409, 'AlreadyExists')
    status, body = await api.post(CONFIGMAPS, {'metadata': {}, 'data': {}})
    assert (status, body['reason']) == (422, 'Invalid')


@pytest.mark.asyncio
async def test_invalid_names_and_labels_are_rejected(api: Api) -> None:
    status, body = await api.post(CONFIGMAPS, {'metadata': {'name': 'Upper_Case'}})
    assert (status, body['reason']) == (422, 'Invalid')
    status, body = await api.post(CONFIGMAPS, {'metadata': {'name': 'ok', 'labels': {'model': 'x' * 64}}})
    assert (status, body['reason']) == (422, 'Invalid')


# --- 3. Optimistic concurrency & PUT --------------------------------------------------------------

@pytest.mark.asyncio
async def test_stale_resource_version_conflicts_on_patch_and_put(api: Api) -> None:
    _, created = await api.post(CONFIGMAPS, {'metadata': {'name': 'cm'}, 'data': {'a': '1'}})
    stale = created['metadata']['resourceVersion']
    status, updated = await api.patch(f'{CONFIGMAPS}/cm', {'data': {'a': '2'}})
    assert status == 200

    status, body = await api.patch(f'{CONFIGMAPS}/cm', {'metadata': {'resourceVersion': stale}, 'data': {'a': '3'}})
    assert (status, body['reason']) == (409, 'Conflict')
    status, body = await api.put(f'{CONFIGMAPS}/cm', {**created, 'data': {'a': '3'}})
    assert (status, body['reason']) == (409, 'Conflict')

    status, replaced = await api.put(f'{CONFIGMAPS}/cm', {**updated, 'data': {'b': '4'}})
    assert status == 200 and replaced['data'] == {'b': '4'}
    assert int(replaced['metadata']['resourceVersion']) > int(updated['metadata']['resourceVersion'])
    unconditional = {'metadata': {'name': 'cm'}, 'data': {'c': '5'}}
    status, replaced = await api.put(f'{CONFIGMAPS}/cm', unconditional)  # built-ins allow it
    assert status == 200 and replaced['data'] == {'c': '5'}


@pytest.mark.asyncio
async def test_put_of_custom_resources_requires_resource_version(api: Api) -> None:
    await create_widget_crd(api)
    _, widget = await api.post(WIDGETS, {'metadata': {'name': 'w'}, 'spec': {'size': 1}})
    status, body = await api.put(f'{WIDGETS}/w', {'metadata': {'name': 'w'}, 'spec': {'size': 2}})
    assert (status, body['reason']) == (422, 'Invalid')
    status, body = await api.put(f'{WIDGETS}/w', {**widget, 'spec': {'size': 2}})
    assert status == 200 and body['spec'] == {'size': 2} and body['metadata']['generation'] == 2


# --- 4. Patch content types ------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_merge_and_json_patches(api: Api) -> None:
    await api.post(CONFIGMAPS, {'metadata': {'name': 'cm', 'labels': {'a': '1', 'b': '2'}}, 'data': {'k': 'v'}})
    _, merged = await api.patch(f'{CONFIGMAPS}/cm', {'metadata': {'labels': {'a': None, 'c': '3'}}})
    assert merged['metadata']['labels'] == {'b': '2', 'c': '3'}

    rv = merged['metadata']['resourceVersion']
    ops = [{'op': 'test', 'path': '/metadata/resourceVersion', 'value': rv},
           {'op': 'add', 'path': '/data/x', 'value': 'y'},
           {'op': 'move', 'from': '/data/k', 'path': '/data/moved'},
           {'op': 'remove', 'path': '/metadata/labels/b'}]
    status, patched = await api.patch(f'{CONFIGMAPS}/cm', ops, JSON_PATCH)
    assert status == 200 and patched['data'] == {'x': 'y', 'moved': 'v'}
    assert patched['metadata']['labels'] == {'c': '3'}

    status, body = await api.patch(f'{CONFIGMAPS}/cm', ops[:2], JSON_PATCH)  # rv is stale now
    assert (status, body['reason']) == (422, 'Invalid')


@pytest.mark.asyncio
async def test_strategic_merge_patch_merges_lists_by_key(api: Api) -> None:
    await api.post(DEPLOYMENTS, deployment('web'))
    sidecar = {'name': 'sidecar', 'image': 'proxy:1'}
    smp = {'spec': {'template': {'spec': {'containers': [
        {'name': 'main', 'env': [{'name': 'B', 'value': '2'}]}, sidecar]}}}}
    status, patched = await api.patch(f'{DEPLOYMENTS}/web', smp, STRATEGIC)
    assert status == 200
    main, side = patched['spec']['template']['spec']['containers']
    assert main['image'] == 'registry.example/model:1'  # kept: merged by name, not replaced
    assert main['env'] == [{'name': 'A', 'value': '1'}, {'name': 'B', 'value': '2'}]
    assert side['image'] == 'proxy:1'

    directives = {'metadata': {'finalizers': ['example.com/b']},  # finalizers merge as a set
                  'spec': {'template': {'spec': {'containers': [
                      {'name': 'main', 'env': [{'name': 'A', '$patch': 'delete'}]}]}}}}
    await api.patch(f'{DEPLOYMENTS}/web', {'metadata': {'finalizers': ['example.com/a']}})
    _, patched = await api.patch(f'{DEPLOYMENTS}/web', directives, STRATEGIC)
    assert patched['metadata']['finalizers'] == ['example.com/a', 'example.com/b']
    assert patched['spec']['template']['spec']['containers'][0]['env'] == [{'name': 'B', 'value': '2'}]

    await create_widget_crd(api)
    await api.post(WIDGETS, {'metadata': {'name': 'w'}})
    status, _ = await api.patch(f'{WIDGETS}/w', {'spec': {'size': 1}}, STRATEGIC)
    assert status == 415  # not supported for custom resources


# --- 5. The status subresource ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_status_subresource_is_isolated(api: Api) -> None:
    await create_widget_crd(api)
    _, created = await api.post(WIDGETS, {'metadata': {'name': 'w'}, 'spec': {'size': 1}, 'status': {'x': 1}})
    assert 'status' not in created  # create cannot set the status

    status, main = await api.patch(f'{WIDGETS}/w', {'spec': {'size': 2}, 'status': {'phase': 'Fake'}})
    assert status == 200 and main['spec'] == {'size': 2} and 'status' not in main
    assert main['metadata']['generation'] == 2

    status, body = await api.patch(f'{WIDGETS}/w/status', {'spec': {'size': 99}, 'status': {'phase': 'Ready'}})
    assert status == 200 and body['status'] == {'phase': 'Ready'} and body['spec'] == {'size': 2}
    assert body['metadata']['generation'] == 2  # status writes never bump the generation

    status, via_get = await api.get(f'{WIDGETS}/w/status')
    assert status == 200 and via_get['status'] == {'phase': 'Ready'}
    status, body = await api.put(f'{WIDGETS}/w/status', {**via_get, 'status': {'phase': 'Done'}})
    assert status == 200 and body['status'] == {'phase': 'Done'}

    await api.post(DEPLOYMENTS, deployment('web'))
    status, body = await api.patch(f'{DEPLOYMENTS}/web/status', {'status': {'observedGeneration': 1}})
    assert status == 200 and body['status'] == {'observedGeneration': 1}


# --- 6. Finalizers & garbage collection -----------------------------------------------------------

def owned_by(owner: dict[str, Any]) -> list[dict[str, Any]]:
    return [{'apiVersion': owner['apiVersion'], 'kind': owner['kind'],
             'name': owner['metadata']['name'], 'uid': owner['metadata']['uid'], 'controller': True}]


@pytest.mark.asyncio
async def test_finalizers_block_deletion_until_removed(api: Api) -> None:
    _, created = await api.post(CONFIGMAPS, {'metadata': {'name': 'cm', 'finalizers': ['example.com/keep']}})

    status, deleting = await api.delete(f'{CONFIGMAPS}/cm')
    assert status == 200 and deleting['metadata']['deletionTimestamp']
    assert deleting['metadata']['deletionGracePeriodSeconds'] == 0
    status, body = await api.patch(f'{CONFIGMAPS}/cm', {'metadata': {'finalizers': ['example.com/keep', 'new']}})
    assert status == 422  # no new finalizers once deleting
    status, _ = await api.get(f'{CONFIGMAPS}/cm')
    assert status == 200  # still there

    await api.patch(f'{CONFIGMAPS}/cm', {'metadata': {'finalizers': None}})
    status, _ = await api.get(f'{CONFIGMAPS}/cm')
    assert status == 404
    events = await api.watch(CONFIGMAPS, count=2, resourceVersion=created['metadata']['resourceVersion'])
    assert [e['type'] for e in events] == ['MODIFIED', 'DELETED']  # no MODIFIED for the last removal
    assert events[1]['object']['metadata']['deletionTimestamp']


@pytest.mark.asyncio
async def test_garbage_collection_by_owner_references(api: Api) -> None:
    _, owner = await api.post(DEPLOYMENTS, deployment('owner'))
    _, child = await api.post(CONFIGMAPS, {'metadata': {'name': 'child', 'ownerReferences': owned_by(owner),
                                                        'finalizers': ['example.com/hold']}})
    _, grandchild = await api.post(CONFIGMAPS, {'metadata': {'name': 'grandchild',
                                                             'ownerReferences': owned_by(child)}})
    _, other = await api.post(CONFIGMAPS, {'metadata': {'name': 'other'}})
    shared = owned_by(owner) + [{**owned_by(other)[0], 'controller': False}]
    await api.post(CONFIGMAPS, {'metadata': {'name': 'shared', 'ownerReferences': shared}})

    await api.delete(f'{DEPLOYMENTS}/owner')
    await api.wait_for(f'{CONFIGMAPS}/child', lambda obj: bool(obj['metadata'].get('deletionTimestamp')))
    kept = await api.wait_for(f'{CONFIGMAPS}/shared', lambda obj: len(obj['metadata']['ownerReferences']) == 1)
    assert kept['metadata']['ownerReferences'][0]['uid'] == other['metadata']['uid']
    status, _ = await api.get(f'{CONFIGMAPS}/grandchild')
    assert status == 200  # its owner is not gone yet: it only has a deletionTimestamp

    await api.patch(f'{CONFIGMAPS}/child', {'metadata': {'finalizers': []}})
    deadline = time.monotonic() + 5
    while (await api.get(f'{CONFIGMAPS}/grandchild'))[0] != 404:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_dependents_created_after_their_owner_is_gone_are_collected(api: Api) -> None:
    """A controller that read its owner just before the deletion creates a child too late:
    the real garbage collector deletes it, since none of its owners exists."""
    _, owner = await api.post(DEPLOYMENTS, deployment('owner'))
    await api.delete(f'{DEPLOYMENTS}/owner')
    status, _ = await api.post(CONFIGMAPS, {'metadata': {'name': 'late', 'ownerReferences': owned_by(owner)}})
    assert status == 201
    deadline = time.monotonic() + 5
    while (await api.get(f'{CONFIGMAPS}/late'))[0] != 404:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_orphan_propagation_keeps_dependents(api: Api) -> None:
    _, owner = await api.post(DEPLOYMENTS, deployment('owner'))
    await api.post(CONFIGMAPS, {'metadata': {'name': 'child', 'ownerReferences': owned_by(owner)}})
    status, _ = await api.delete(f'{DEPLOYMENTS}/owner', {'propagationPolicy': 'Orphan'})
    assert status == 200
    await asyncio.sleep(0.2)  # a hold, not a wait: the (asynchronous) garbage collector leaves it alone
    status, child = await api.get(f'{CONFIGMAPS}/child')
    assert status == 200 and not child['metadata'].get('ownerReferences')


# --- 7. Selectors -----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_label_and_field_selectors_on_list_and_watch(api: Api) -> None:
    for name, labels in [('a', {'app': 'x', 'tier': 'web'}), ('b', {'app': 'x'}), ('c', {'app': 'y'})]:
        await api.post(CONFIGMAPS, {'metadata': {'name': name, 'labels': labels}})

    async def names(**params: str) -> list[str]:
        status, body = await api.get(CONFIGMAPS, **params)
        assert status == 200, body
        return [item['metadata']['name'] for item in body['items']]

    assert await names(labelSelector='app=x') == ['a', 'b']
    assert await names(labelSelector='app==x,tier') == ['a']
    assert await names(labelSelector='app!=x') == ['c']
    assert await names(labelSelector='app in (x,y),!tier') == ['b', 'c']
    assert await names(labelSelector='app notin (x)') == ['c']
    assert await names(fieldSelector='metadata.name=b') == ['b']
    assert await names(fieldSelector=f'metadata.namespace={NS},metadata.name!=b') == ['a', 'c']
    status, _ = await api.get(CONFIGMAPS, labelSelector='app in (x')
    assert status == 400

    _, listing = await api.get(CONFIGMAPS, labelSelector='tier=web')
    await api.patch(f'{CONFIGMAPS}/b', {'metadata': {'labels': {'tier': 'web'}}})  # enters the selection
    await api.patch(f'{CONFIGMAPS}/c', {'metadata': {'labels': {'other': 'change'}}})  # never selected
    await api.patch(f'{CONFIGMAPS}/a', {'metadata': {'labels': {'tier': None}}})  # leaves it
    events = await api.watch(CONFIGMAPS, count=2, labelSelector='tier=web',
                             resourceVersion=listing['metadata']['resourceVersion'])
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [('ADDED', 'b'), ('DELETED', 'a')]


# --- 8. Namespaces ---------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_namespaces_can_be_listed(api: Api) -> None:
    await api.post(CONFIGMAPS, {'metadata': {'name': 'cm'}})
    status, body = await api.get('/api/v1/namespaces')
    assert status == 200 and body['kind'] == 'NamespaceList'
    assert {'default', 'kube-system', 'kube-public', 'kube-node-lease', NS} <= {ns['metadata']['name'] for ns in body['items']}
    status, body = await api.get(f'/api/v1/namespaces/{NS}')
    assert status == 200 and body['status']['phase'] == 'Active' and body['spec']['finalizers'] == ['kubernetes']


@pytest.mark.asyncio
async def test_nothing_is_created_in_a_missing_or_terminating_namespace(api: Api) -> None:
    """NamespaceLifecycle admission and the namespace controller: a namespace must exist; a deleted
    one is Terminating while its objects are deleted, refuses new ones, and goes once none is left —
    an object whose finalizer stays holds it."""
    status, body = await api.post('/api/v1/namespaces/nowhere/configmaps', {'metadata': {'name': 'cm'}})
    assert (status, body['reason'], body['message']) == (404, 'NotFound', 'namespaces "nowhere" not found')
    assert body['details'] == {'name': 'nowhere', 'kind': 'namespaces'}

    await api.post(CONFIGMAPS, {'metadata': {'name': 'held', 'finalizers': ['example.com/hold']}})
    await api.post(CONFIGMAPS, {'metadata': {'name': 'free'}})
    status, namespace = await api.delete(f'/api/v1/namespaces/{NS}')
    assert status == 200 and namespace['status']['phase'] == 'Terminating' and namespace['metadata']['deletionTimestamp']
    await gone(api, f'{CONFIGMAPS}/free')
    held = await api.wait_for(f'{CONFIGMAPS}/held', lambda cm: bool(cm['metadata'].get('deletionTimestamp')))
    assert held['metadata']['finalizers'] == ['example.com/hold']
    status, body = await api.post(CONFIGMAPS, {'metadata': {'name': 'late'}})
    assert (status, body['reason']) == (403, 'Forbidden')
    assert body['message'] == ('configmaps "late" is forbidden: unable to create new content in namespace '
                               f'{NS} because it is being terminated')
    assert body['details']['causes'][0]['reason'] == 'NamespaceTerminating'
    status, namespace = await api.get(f'/api/v1/namespaces/{NS}')
    assert status == 200 and namespace['status']['phase'] == 'Terminating'  # held by the finalizer
    status, namespace = await api.patch(f'/api/v1/namespaces/{NS}', {'metadata': {'labels': {'team': 'a'}}})
    assert status == 200 and namespace['spec']['finalizers'] == ['kubernetes']  # an update does not let it go early
    assert (await api.get(f'/api/v1/namespaces/{NS}'))[0] == 200

    await api.patch(f'{CONFIGMAPS}/held', {'metadata': {'finalizers': None}})
    await gone(api, f'{CONFIGMAPS}/held')
    await gone(api, f'/api/v1/namespaces/{NS}')
    status, _ = await api.post('/api/v1/namespaces', {'metadata': {'name': NS}})  # and the name can be used again
    assert status == 201


@pytest.mark.asyncio
async def test_the_system_namespaces_cannot_be_deleted(api: Api) -> None:
    for name in ('default', 'kube-system', 'kube-public'):
        status, body = await api.delete(f'/api/v1/namespaces/{name}')
        assert (status, body['message']) == (403, f'namespaces "{name}" is forbidden: this namespace may not be deleted')
    status, _ = await api.delete('/api/v1/namespaces')
    assert status == 405
    status, body = await api.get('/api/v1/namespaces/default')
    assert status == 200 and body['status']['phase'] == 'Active'


# --- 9. Lists & watches ------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_lists_carry_kind_and_resource_version(api: Api) -> None:
    await api.post(CONFIGMAPS, {'metadata': {'name': 'a'}})
    _, last = await api.post(CONFIGMAPS, {'metadata': {'name': 'b'}})
    status, body = await api.get(CONFIGMAPS)
    assert status == 200 and body['kind'] == 'ConfigMapList' and body['apiVersion'] == 'v1'
    assert int(body['metadata']['resourceVersion']) >= int(last['metadata']['resourceVersion'])
    assert all(item['kind'] == 'ConfigMap' and item['apiVersion'] == 'v1' for item in body['items'])

    _, page = await api.get(CONFIGMAPS, limit='1')
    assert [i['metadata']['name'] for i in page['items']] == ['a'] and page['metadata']['continue']
    _, page = await api.get(CONFIGMAPS, limit='1', **{'continue': page['metadata']['continue']})
    assert [i['metadata']['name'] for i in page['items']] == ['b']


@pytest.mark.asyncio
async def test_watch_resumes_from_resource_version_and_times_out(api: Api) -> None:
    await api.post(CONFIGMAPS, {'metadata': {'name': 'before'}})
    _, listing = await api.get(CONFIGMAPS)
    await api.post(CONFIGMAPS, {'metadata': {'name': 'after'}})
    await api.patch(f'{CONFIGMAPS}/after', {'data': {'k': 'v'}})

    started = time.monotonic()
    events = await api.watch(CONFIGMAPS, resourceVersion=listing['metadata']['resourceVersion'],
                             timeoutSeconds='1')
    assert 0.9 < time.monotonic() - started < 10  # the server ends the stream (after 1 s; the client's own bound is 5 s)
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [
        ('ADDED', 'after'), ('MODIFIED', 'after')]
    assert events[-1]['object']['data'] == {'k': 'v'}
    assert all(e['object']['kind'] == 'ConfigMap' and e['object']['metadata']['resourceVersion']
               for e in events)

    events = await api.watch(CONFIGMAPS, timeoutSeconds='1')  # no resourceVersion: the current state
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [
        ('ADDED', 'after'), ('ADDED', 'before')]

    events = await api.watch(CONFIGMAPS, count=1, resourceVersion='1')  # long compacted
    assert events[0]['type'] == 'ERROR' and events[0]['object']['code'] == 410


@pytest.mark.asyncio
async def test_watch_bookmarks_carry_only_a_resource_version_every_earlier_event_was_sent_for(
        kube_emulator: KubeEmulator, api: Api) -> None:
    """As the apiserver's cacher: only a watch that allows bookmarks gets them; a bookmark holds
    kind, apiVersion and a resourceVersion (nothing else), sent when no event is pending, and it
    counts events the watch's selector left out (so a quiet watch resumes from a fresh version)."""
    await api.post(CONFIGMAPS, {'metadata': {'name': 'before', 'labels': {'app': 'x'}}})
    _, listing = await api.get(CONFIGMAPS)
    since = listing['metadata']['resourceVersion']

    plain = await api.watch(CONFIGMAPS, resourceVersion=since, timeoutSeconds='3')
    assert plain == []  # no bookmark unless asked, even 2 s before the timeout

    # 2 s before timeoutSeconds ends the stream (the cacher's "right before the watcher timeout").
    events = await api.watch(CONFIGMAPS, resourceVersion=since, timeoutSeconds='3', allowWatchBookmarks='true')
    assert events == [{'type': 'BOOKMARK', 'object': {'kind': 'ConfigMap', 'apiVersion': 'v1',
                                                      'metadata': {'resourceVersion': since}}}]

    _, other = await api.post(CONFIGMAPS, {'metadata': {'name': 'other', 'labels': {'app': 'y'}}})
    kube_emulator.bookmark_seconds = 0.2  # periodic ones (about a minute on a real server)
    events = await api.watch(CONFIGMAPS, count=2, resourceVersion=since, labelSelector='app=x',
                             allowWatchBookmarks='true', timeoutSeconds='4')
    assert [e['type'] for e in events] == ['BOOKMARK', 'BOOKMARK']  # 'other' is not selected...
    assert events[0]['object']['metadata'] == {'resourceVersion': other['metadata']['resourceVersion']}  # ...yet counted


# --- 10. CRDs ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_installed_crds_are_served(kube_emulator: KubeEmulator, api: Api) -> None:
    crd = kube_emulator.install_crd(WIDGET_CRD)
    assert condition(crd, 'Established')['status'] == 'True'
    _, discovery = await api.get('/apis/example.headway.dev/v1')
    widgets = {r['name']: r for r in discovery['resources']}
    assert widgets['widgets']['kind'] == 'Widget' and widgets['widgets']['namespaced'] is True
    assert widgets['widgets']['shortNames'] == ['wd'] and 'widgets/status' in widgets

    status, widget = await api.post(WIDGETS, {'metadata': {'name': 'w'}, 'spec': {'size': 1}})
    assert status == 201 and widget['kind'] == 'Widget'
    assert widget['apiVersion'] == 'example.headway.dev/v1'
    _, listing = await api.get('/apis/example.headway.dev/v1/widgets')  # cluster-wide
    assert listing['kind'] == 'WidgetList' and [w['metadata']['name'] for w in listing['items']] == ['w']


# --- 11. The Deployment controller -----------------------------------------------------------------

@pytest.mark.asyncio
async def test_deployments_become_available(kube_emulator: KubeEmulator, api: Api) -> None:
    kube_emulator.start_deployment_controller(delay=0.05)
    await api.post(DEPLOYMENTS, deployment('web', replicas=2))
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status'].get('availableReplicas') == 2)
    assert web['status']['observedGeneration'] == 1
    assert web['status']['replicas'] == web['status']['updatedReplicas'] == web['status']['readyReplicas'] == 2
    assert (condition(web, 'Available')['status'], condition(web, 'Available')['reason']) == (
        'True', 'MinimumReplicasAvailable')
    assert condition(web, 'Progressing')['reason'] == 'NewReplicaSetAvailable'

    await api.patch(f'{DEPLOYMENTS}/web', {'spec': {'replicas': 0}})
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status']['observedGeneration'] == 2)
    assert web['status'].get('replicas', 0) == web['status'].get('availableReplicas', 0) == 0
    assert condition(web, 'Available')['status'] == 'True'


@pytest.mark.asyncio
async def test_scaling_replaces_no_pod(kube_emulator: KubeEmulator, api: Api) -> None:
    """A new size with the same template: every pod stays on the current template (the real
    controller scales the ReplicaSet; it does not roll)."""
    kube_emulator.start_deployment_controller(delay=0.5)
    await api.post(DEPLOYMENTS, deployment('web', replicas=2))
    await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status'].get('availableReplicas') == 2)
    await api.patch(f'{DEPLOYMENTS}/web', {'spec': {'replicas': 3}})
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status']['observedGeneration'] == 2)
    assert web['status']['replicas'] == web['status']['updatedReplicas'] == 3  # no old-template pod
    assert web['status']['availableReplicas'] == 2  # the new pod is not ready yet
    await api.patch(f'{DEPLOYMENTS}/web', {'spec': {'replicas': 1}})
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status']['observedGeneration'] == 3)
    assert web['status']['replicas'] == web['status']['updatedReplicas'] == 1
    assert web['status']['availableReplicas'] == 1


@pytest.mark.asyncio
async def test_pods_ready_holds_a_deployment_until_its_pods_answer(kube_emulator: KubeEmulator, api: Api) -> None:
    """The sandbox's readiness probe: a Deployment becomes available only once ``pods_ready`` says
    its pods serve (a real model server that takes a while to load)."""
    serving: set[str] = set()
    asked = asyncio.Event()

    def pods_ready(obj: dict[str, Any]) -> bool:
        asked.set()
        return obj['metadata']['name'] in serving

    kube_emulator.start_deployment_controller(delay=0.05, pods_ready=pods_ready)
    await api.post(DEPLOYMENTS, deployment('web', replicas=2))
    await asyncio.wait_for(asked.wait(), 10)
    _, web = await api.get(f'{DEPLOYMENTS}/web')
    assert web['status'].get('availableReplicas', 0) == 0 and condition(web, 'Available')['status'] == 'False'
    serving.add('web')
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status'].get('availableReplicas') == 2)
    assert condition(web, 'Available')['status'] == 'True'


@pytest.mark.asyncio
async def test_deployments_with_unpullable_images_never_become_ready(kube_emulator: KubeEmulator,
                                                                     api: Api) -> None:
    kube_emulator.start_deployment_controller(delay=0.05)
    await api.post(DEPLOYMENTS, deployment('bad', image='registry.example/does-not-exist:1',
                                           replicas=2, progressDeadlineSeconds=1))
    bad = await api.wait_for(f'{DEPLOYMENTS}/bad', lambda d: d.get('status', {}).get('observedGeneration') == 1)
    await asyncio.sleep(0.2)  # a hold, not a wait: four controller passes later, still nothing ready
    _, bad = await api.get(f'{DEPLOYMENTS}/bad')
    assert bad['status'].get('readyReplicas', 0) == bad['status'].get('availableReplicas', 0) == 0
    assert bad['status']['unavailableReplicas'] == 2
    assert (condition(bad, 'Available')['status'], condition(bad, 'Available')['reason']) == (
        'False', 'MinimumReplicasUnavailable')
    assert (condition(bad, 'Progressing')['status'], condition(bad, 'Progressing')['reason']) == (
        'True', 'ReplicaSetUpdated')
    bad = await api.wait_for(f'{DEPLOYMENTS}/bad', lambda d: condition(d, 'Progressing')['status'] == 'False')
    assert condition(bad, 'Progressing')['reason'] == 'ProgressDeadlineExceeded'

    # A bad update of a healthy Deployment: the old pods keep serving, the new ones never get ready.
    await api.post(DEPLOYMENTS, deployment('web', replicas=4))
    await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status'].get('availableReplicas') == 4)
    image = [{'op': 'replace', 'path': '/spec/template/spec/containers/0/image', 'value': 'does-not-exist:2'}]
    await api.patch(f'{DEPLOYMENTS}/web', image, JSON_PATCH)
    web = await api.wait_for(f'{DEPLOYMENTS}/web', lambda d: d['status']['observedGeneration'] == 2)
    await asyncio.sleep(0.2)  # a hold, not a wait: four controller passes later, the new pods are still not ready
    _, web = await api.get(f'{DEPLOYMENTS}/web')
    assert condition(web, 'Available')['status'] == 'True'
    assert web['status']['availableReplicas'] == 3 and web['status']['updatedReplicas'] == 2
    assert condition(web, 'Progressing')['reason'] == 'ReplicaSetUpdated'


@pytest.mark.asyncio
async def test_api_defaults_built_in_objects(api: Api) -> None:
    _, web = await api.post(DEPLOYMENTS, deployment('web'))
    assert web['spec']['replicas'] == 1
    assert web['spec']['strategy'] == {'type': 'RollingUpdate',
                                       'rollingUpdate': {'maxUnavailable': '25%', 'maxSurge': '25%'}}
    assert web['spec']['template']['spec']['containers'][0]['imagePullPolicy'] == 'IfNotPresent'
    services = f'/api/v1/namespaces/{NS}/services'
    _, svc = await api.post(services, {'metadata': {'name': 'web'}, 'spec': {'ports': [{'port': 80}]}})
    assert svc['spec']['type'] == 'ClusterIP' and svc['spec']['clusterIP']
    assert svc['spec']['ports'] == [{'port': 80, 'protocol': 'TCP', 'targetPort': 80}]
    status, replaced = await api.put(f'{services}/web', {'metadata': {'name': 'web'}, 'spec': {'ports': [{'port': 81}]}})
    assert status == 200 and replaced['spec']['clusterIP'] == svc['spec']['clusterIP']


# --- 12. Events -------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_events_are_posted_with_generated_names(api: Api) -> None:
    core_event = {'metadata': {'generateName': 'kopf-event-'}, 'type': 'Normal', 'reason': 'Logging',
                  'message': 'hello', 'involvedObject': {'kind': 'Widget', 'name': 'w', 'namespace': NS}}
    names = set()
    for _ in range(2):
        status, event = await api.post(f'/api/v1/namespaces/{NS}/events', core_event)
        assert status == 201
        names.add(event['metadata']['name'])
    assert len(names) == 2
    _, found = await api.get(f'/api/v1/namespaces/{NS}/events', fieldSelector='involvedObject.name=w')
    assert len(found['items']) == 2

    new_event = {'metadata': {'generateName': 'headway-'}, 'type': 'Normal', 'reason': 'Promoted',
                 'note': 'canary promoted', 'action': 'Promote', 'eventTime': '2024-01-01T00:00:00.000000Z',
                 'reportingController': 'headway.dev/operator', 'reportingInstance': 'headway-0',
                 'regarding': {'kind': 'Widget', 'name': 'w', 'namespace': NS}}
    status, event = await api.post(f'/apis/events.k8s.io/v1/namespaces/{NS}/events', new_event)
    assert status == 201 and event['metadata']['name'].startswith('headway-')


# --- The official client & kopf ----------------------------------------------------------------------

def test_kubernetes_client_works(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    config = kube_emulator.write_kubeconfig(tmp_path / 'kubeconfig')
    with kubernetes.config.new_client_from_config(str(config)) as client:
        apps = kubernetes.client.AppsV1Api(client)
        apps.create_namespaced_deployment(NS, deployment('web'))
        patched = apps.patch_namespaced_deployment('web', NS, {'spec': {'template': {'spec': {
            'containers': [{'name': 'main', 'image': 'registry.example/model:2'}]}}}})  # strategic
        assert patched.spec.template.spec.containers[0].env[0].name == 'A'
        assert patched.metadata.generation == 2
        patched.spec.replicas = 3
        replaced = apps.replace_namespaced_deployment('web', NS, patched)
        assert replaced.spec.replicas == 3
        with pytest.raises(kubernetes.client.ApiException) as error:
            apps.replace_namespaced_deployment('web', NS, patched)  # stale resourceVersion
        assert error.value.status == 409
        assert [d.metadata.name for d in apps.list_namespaced_deployment(NS, label_selector='app=web').items] == ['web']
        apps.delete_namespaced_deployment('web', NS)
        assert apps.list_namespaced_deployment(NS).items == []


OPERATOR = '''
import kopf

@kopf.on.create('example.headway.dev', 'v1', 'widgets')
def widget_created(spec, patch, **_):
    patch.status['phase'] = 'Ready'
    patch.status['size'] = spec.get('size')

@kopf.on.delete('example.headway.dev', 'v1', 'widgets')
def widget_deleted(logger, **_):
    logger.info('Cleaning up.')
'''


def test_kopf_runs_against_emulator(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    kube_emulator.install_crd(WIDGET_CRD)
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / 'kubeconfig')
    operator = tmp_path / 'widget_operator.py'
    operator.write_text(textwrap.dedent(OPERATOR))
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10

    # The module's handlers go to the default registry: use a fresh one, restore the old one after.
    # In-process, $KUBECONFIG is useless (the kubernetes client reads it once, at import), so log in
    # explicitly; a subprocess operator would just get KUBECONFIG=<kubeconfig> in its environment.
    previous_registry = kopf.get_default_registry()
    registry = type(previous_registry)()
    kopf.on.login(registry=registry)(lambda **_: kube_emulator.connection_info())
    kopf.set_default_registry(registry)
    try:
        with kopf.testing.KopfRunner(['run', '--standalone', '-A', '--verbose', str(operator)],
                                     settings=settings, timeout=30) as runner:
            with kubernetes.config.new_client_from_config(str(kubeconfig)) as client:
                widgets = kubernetes.client.CustomObjectsApi(client)
                widgets.create_namespaced_custom_object('example.headway.dev', 'v1', NS, 'widgets', {
                    'apiVersion': 'example.headway.dev/v1', 'kind': 'Widget',
                    'metadata': {'name': 'w'}, 'spec': {'size': 3}})
                widget = _poll(lambda: widgets.get_namespaced_custom_object(
                    'example.headway.dev', 'v1', NS, 'widgets', 'w'),
                    lambda w: w.get('status', {}).get('phase') == 'Ready')
                assert widget['status']['size'] == 3
                assert widget['metadata']['finalizers'] == ['kopf.zalando.org/KopfFinalizerMarker']
                widgets.delete_namespaced_custom_object('example.headway.dev', 'v1', NS, 'widgets', 'w')
                _poll(lambda: kube_emulator.get_object('widgets.v1.example.headway.dev', NS, 'w'),
                      lambda w: w is None)  # kopf removed its finalizer
    finally:
        kopf.set_default_registry(previous_registry)
    assert runner.exception is None and runner.exit_code == 0
    assert "Handler 'widget_created' succeeded" in runner.output
    assert "Handler 'widget_deleted' succeeded" in runner.output
    assert 'Traceback' not in runner.output


def _poll(fetch: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not predicate(value := fetch()):
        assert time.monotonic() < deadline, f"Timed out; last seen: {value}"
        time.sleep(0.05)
    return value
