"""
Server-side apply and managedFields in the emulated kube-apiserver (``operator/headway/sandbox/apiserver/apply.py``).

Like ``test_emulator.py``, every test speaks plain HTTP (or runs kubectl) and pins what a real
kube-apiserver answers — status codes, Status reasons, conflict causes, the FieldsV1 format —
so it passes against a real cluster too. Only details the emulator approximates (e.g. the ``.``
marks of Go structs) are left unasserted.
"""
import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from headway.sandbox.apiserver import KubeEmulator
from tests.e2e.gadgets import GADGETS_PATH, gadget_crd
from tests.e2e.test_emulator import CONFIGMAPS, DEPLOYMENTS, MERGE, NS, STRATEGIC, Api, api  # noqa: F401

APPLY = 'application/apply-patch+yaml'
SERVICES = f'/api/v1/namespaces/{NS}/services'
GADGETS = GADGETS_PATH.format(namespace=NS)
KUBECTL_UA = 'kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07'

GADGET_CRD = gadget_crd(
    spec={'type': 'object', 'properties': {
        'backends': {'type': 'array', 'x-kubernetes-list-type': 'map',
                     'x-kubernetes-list-map-keys': ['name'],
                     'items': {'type': 'object', 'required': ['name'], 'properties': {
                         'name': {'type': 'string'}, 'weight': {'type': 'integer'}}}},
        'tags': {'type': 'array', 'x-kubernetes-list-type': 'set', 'items': {'type': 'string'}},
        'hosts': {'type': 'array', 'items': {'type': 'string'}},  # atomic by default
        'selector': {'type': 'object', 'x-kubernetes-map-type': 'atomic',
                     'additionalProperties': {'type': 'string'}},
        'replicas': {'type': 'integer'},
    }},
    status={'type': 'object', 'properties': {
        'phase': {'type': 'string'},
        'conditions': {'type': 'array', 'x-kubernetes-list-type': 'map',
                       'x-kubernetes-list-map-keys': ['type'],
                       'items': {'type': 'object', 'properties': {
                           'type': {'type': 'string'}, 'status': {'type': 'string'}}}},
    }},
)


def web(image: str = 'registry.example/model:1', *, labels: dict[str, str] | None = None,
        env: list[dict[str, str]] | None = None, sidecar: bool = False, **spec: Any) -> dict[str, Any]:
    """The Deployment headway renders: no replicas (an HPA may own them)."""
    containers = [{'name': 'model', 'image': image, 'ports': [{'containerPort': 8080, 'name': 'http'}],
                   'env': env if env is not None else [{'name': 'MODEL', 'value': 'a'}]}]
    if sidecar:
        containers.append({'name': 'proxy', 'image': 'registry.example/proxy:1'})
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': {'name': 'web', 'labels': labels if labels is not None else {'app': 'web', 'tier': 'model'}},
        'spec': {'selector': {'matchLabels': {'app': 'web'}},
                 'template': {'metadata': {'labels': {'app': 'web'}}, 'spec': {'containers': containers}},
                 **spec},
    }


async def apply(api: Api, path: str, body: Any, manager: str | None = 'headway', *, force: bool | None = True,
                as_yaml: bool = False, **params: str) -> tuple[int, Any]:
    query = dict(params)
    if manager is not None:
        query['fieldManager'] = manager
    if force is not None:
        query['force'] = 'true' if force else 'false'
    data = yaml.safe_dump(body) if as_yaml else json.dumps(body)
    async with api.session.patch(path, data=data, headers={'Content-Type': APPLY}, params=query) as response:
        return response.status, await response.json(content_type=None)


async def patch(api: Api, path: str, body: Any, manager: str | None, content_type: str = MERGE,
                user_agent: str | None = None) -> tuple[int, Any]:
    params = {'fieldManager': manager} if manager else {}
    headers = {'Content-Type': content_type, **({'User-Agent': user_agent} if user_agent else {})}
    async with api.session.patch(path, data=json.dumps(body), headers=headers, params=params) as response:
        return response.status, await response.json(content_type=None)


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e['manager'], e['operation']): e for e in obj['metadata'].get('managedFields', [])}


def fields(obj: dict[str, Any], manager: str, operation: str = 'Apply') -> dict[str, Any]:
    entry = entries(obj).get((manager, operation))
    return entry['fieldsV1'] if entry else {}


def owns(obj: dict[str, Any], manager: str, *path: str, operation: str = 'Apply') -> bool:
    node: Any = fields(obj, manager, operation)
    for pe in path:
        if not isinstance(node, dict) or pe not in node:
            return False
        node = node[pe]
    return True


def container(obj: dict[str, Any], name: str = 'model') -> dict[str, Any]:
    return next(c for c in obj['spec']['template']['spec']['containers'] if c['name'] == name)


MODEL = ('f:spec', 'f:template', 'f:spec', 'f:containers', 'k:{"name":"model"}')


# --- managedFields on every write --------------------------------------------------------------------

@pytest.mark.asyncio
async def test_apply_creates_the_object_and_records_an_apply_entry(api: Api) -> None:
    status, created = await apply(api, f'{DEPLOYMENTS}/web', web(), as_yaml=True)
    assert status == 201
    assert created['metadata']['generation'] == 1 and created['spec']['replicas'] == 1  # defaulted
    [entry] = created['metadata']['managedFields']
    assert {k: entry[k] for k in ('manager', 'operation', 'apiVersion', 'fieldsType')} == {
        'manager': 'headway', 'operation': 'Apply', 'apiVersion': 'apps/v1', 'fieldsType': 'FieldsV1'}
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', entry['time'])
    assert 'subresource' not in entry
    f = entry['fieldsV1']
    assert f['f:metadata'] == {'f:labels': {'f:app': {}, 'f:tier': {}}}  # no name/namespace: never owned
    model = f['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"model"}']
    assert model['.'] == {} and model['f:image'] == {} and model['f:name'] == {}
    assert model['f:env'] == {'k:{"name":"MODEL"}': {'.': {}, 'f:name': {}, 'f:value': {}}}
    assert model['f:ports'] == {'k:{"containerPort":8080,"protocol":"TCP"}': {
        '.': {}, 'f:containerPort': {}, 'f:name': {}}}  # protocol: the key's default
    assert f['f:spec']['f:selector'] == {}  # a LabelSelector is atomic
    assert 'f:replicas' not in f['f:spec'] and 'f:status' not in f  # defaults are nobody's

    status, again = await apply(api, f'{DEPLOYMENTS}/web', web())
    assert status == 200


@pytest.mark.asyncio
async def test_other_writes_record_update_entries_by_field_manager_or_user_agent(api: Api) -> None:
    async with api.session.post(CONFIGMAPS, json={'metadata': {'name': 'cfg'}, 'data': {'a': '1'}},
                                params={'fieldManager': 'creator'}) as response:
        assert response.status == 201
        created = await response.json()
    assert fields(created, 'creator', 'Update') == {'f:data': {'.': {}, 'f:a': {}}}
    assert entries(created)[('creator', 'Update')]['apiVersion'] == 'v1'

    # The manager takes what it changes, away from the others.
    _, edited = await patch(api, f'{CONFIGMAPS}/cfg', {'data': {'a': '2', 'b': '1'}}, 'kubectl-edit')
    assert fields(edited, 'kubectl-edit', 'Update') == {'f:data': {'f:a': {}, 'f:b': {}}}
    assert fields(edited, 'creator', 'Update') == {'f:data': {}}  # still the map itself: a member, no children

    # Without fieldManager: the User-Agent up to its first "/".
    _, labelled = await patch(api, f'{CONFIGMAPS}/cfg', {'metadata': {'labels': {'x': 'y'}}}, None,
                              user_agent=KUBECTL_UA)
    assert fields(labelled, 'kubectl', 'Update') == {'f:metadata': {'f:labels': {'.': {}, 'f:x': {}}}}

    # A write that changes nothing moves nothing, not even a time.
    _, same = await patch(api, f'{CONFIGMAPS}/cfg', {'data': {'a': '2'}}, 'someone-else')
    assert same['metadata']['managedFields'] == labelled['metadata']['managedFields']
    assert same['metadata']['resourceVersion'] == labelled['metadata']['resourceVersion']

    # Removing a field drops it from every entry (an empty entry disappears).
    _, removed = await patch(api, f'{CONFIGMAPS}/cfg', {'metadata': {'labels': None}}, 'cleaner')
    assert ('kubectl', 'Update') not in entries(removed) and ('cleaner', 'Update') not in entries(removed)

    # PUT is an Update as well.
    body = {**removed, 'data': {'a': '3', 'b': '1'}}
    async with api.session.put(f'{CONFIGMAPS}/cfg', json=body, params={'fieldManager': 'replacer'}) as response:
        replaced = await response.json()
    assert fields(replaced, 'replacer', 'Update') == {'f:data': {'f:a': {}}}


@pytest.mark.asyncio
async def test_managed_fields_can_be_reset_with_a_single_empty_entry(api: Api) -> None:
    await apply(api, f'{DEPLOYMENTS}/web', web())
    status, stripped = await patch(api, f'{DEPLOYMENTS}/web', {'metadata': {'managedFields': [{}]}}, 'janitor')
    assert status == 200
    assert 'managedFields' not in stripped['metadata']  # as the Server-Side Apply docs describe


# --- Apply errors ----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_apply_requires_a_field_manager_and_force_only_on_apply(api: Api) -> None:
    status, body = await apply(api, f'{DEPLOYMENTS}/web', web(), manager=None)
    assert (status, body['reason']) == (422, 'Invalid')
    assert body['message'] == ('PatchOptions.meta.k8s.io "" is invalid: '
                               'fieldManager: Required value: is required for apply patch')
    assert body['details']['causes'] == [{'reason': 'FieldValueRequired', 'field': 'fieldManager',
                                          'message': 'Required value: is required for apply patch'}]

    await apply(api, f'{DEPLOYMENTS}/web', web())
    async with api.session.patch(f'{DEPLOYMENTS}/web', data=json.dumps({'spec': {'replicas': 2}}),
                                 headers={'Content-Type': MERGE}, params={'force': 'true'}) as response:
        assert response.status == 422
        body = await response.json()
    assert body['details']['causes'][0]['field'] == 'force'


@pytest.mark.asyncio
async def test_apply_refuses_managed_fields_other_kinds_and_other_names(api: Api) -> None:
    status, created = await apply(api, f'{DEPLOYMENTS}/web', web())
    assert status == 201

    status, body = await apply(api, f'{DEPLOYMENTS}/web', {
        **web(), 'metadata': {'name': 'web', 'managedFields': created['metadata']['managedFields']}})
    assert (status, body['reason'], body['message']) == (400, 'BadRequest', 'metadata.managedFields must be nil')

    status, body = await apply(api, f'{DEPLOYMENTS}/web', {**web(), 'kind': 'StatefulSet'})
    assert (status, body['reason'], body['message']) == (400, 'BadRequest',
                                                         'invalid object type: apps/v1, Kind=StatefulSet')
    status, body = await apply(api, f'{DEPLOYMENTS}/web', {**web(), 'apiVersion': 'apps/v1beta1'})
    assert (status, body['message']) == (400, 'invalid object type: apps/v1beta1, Kind=Deployment')

    status, body = await apply(api, f'{DEPLOYMENTS}/other', web())
    assert (status, body['reason']) == (400, 'BadRequest')
    assert body['message'] == 'the name of the object (web) does not match the name on the URL (other)'
    status, _ = await api.get(f'{DEPLOYMENTS}/other')
    assert status == 404


# --- Conflicts & ownership -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_conflicts_with_another_managers_change_unless_forced(api: Api) -> None:
    """(a) kubectl edit changes headway's image and a label; headway's forced re-apply wins them back."""
    await apply(api, f'{DEPLOYMENTS}/web', web())
    status, edited = await patch(api, f'{DEPLOYMENTS}/web', {
        'metadata': {'labels': {'tier': 'edited'}},
        'spec': {'template': {'spec': {'containers': [{'name': 'model', 'image': 'registry.example/model:hotfix'}]}}},
    }, 'kubectl-edit', STRATEGIC)
    assert status == 200 and container(edited)['image'] == 'registry.example/model:hotfix'
    assert owns(edited, 'kubectl-edit', *MODEL, 'f:image', operation='Update')
    assert not owns(edited, 'headway', *MODEL, 'f:image')  # taken away by the Update

    status, body = await apply(api, f'{DEPLOYMENTS}/web', web(), force=False)
    assert (status, body['reason']) == (409, 'Conflict')
    image = '.spec.template.spec.containers[name="model"].image'
    assert sorted(body['details']['causes'], key=lambda c: c['field']) == [
        {'reason': 'FieldManagerConflict', 'message': 'conflict with "kubectl-edit" using apps/v1',
         'field': '.metadata.labels.tier'},
        {'reason': 'FieldManagerConflict', 'message': 'conflict with "kubectl-edit" using apps/v1',
         'field': image},
    ]
    assert body['message'].startswith('Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:')
    assert f'\n- {image}' in body['message'] and '\n- .metadata.labels.tier' in body['message']
    _, unchanged = await api.get(f'{DEPLOYMENTS}/web')
    assert unchanged['metadata']['resourceVersion'] == edited['metadata']['resourceVersion']

    status, body = await apply(api, f'{DEPLOYMENTS}/web', web(labels={'app': 'web', 'tier': 'edited'}), force=False)
    assert status == 409 and body['message'] == (
        f'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: {image}')

    status, forced = await apply(api, f'{DEPLOYMENTS}/web', web(), force=True)
    assert status == 200
    assert container(forced)['image'] == 'registry.example/model:1'
    assert forced['metadata']['labels']['tier'] == 'model'
    assert forced['metadata']['generation'] == 3
    assert owns(forced, 'headway', *MODEL, 'f:image') and owns(forced, 'headway', 'f:metadata', 'f:labels', 'f:tier')
    assert ('kubectl-edit', 'Update') not in entries(forced)  # nothing left to own


@pytest.mark.asyncio
async def test_applying_the_same_value_co_owns_without_conflict(api: Api) -> None:
    await apply(api, f'{DEPLOYMENTS}/web', web(replicas=2))
    status, both = await apply(api, f'{DEPLOYMENTS}/web', {**web(), 'spec': {'replicas': 2}}, 'hpa-bridge', force=False)
    assert status == 200
    assert owns(both, 'headway', 'f:spec', 'f:replicas') and owns(both, 'hpa-bridge', 'f:spec', 'f:replicas')

    status, body = await apply(api, f'{DEPLOYMENTS}/web', web(replicas=3), force=False)
    assert status == 409
    assert body['details']['causes'] == [{'reason': 'FieldManagerConflict', 'message': 'conflict with "hpa-bridge"',
                                          'field': '.spec.replicas'}]  # an applier: no "using"


@pytest.mark.asyncio
async def test_fields_of_other_managers_are_left_alone(api: Api) -> None:
    """(b) argocd's annotation and an autoscaler's replicas survive headway's re-apply."""
    await apply(api, f'{DEPLOYMENTS}/web', web())
    await patch(api, f'{DEPLOYMENTS}/web', {'metadata': {'annotations': {
        'argocd.argoproj.io/tracking-id': 'app:apps/Deployment:team-a/web'}}}, 'argocd-controller')
    await patch(api, f'{DEPLOYMENTS}/web', {'spec': {'replicas': 5}}, 'kube-controller-manager')

    status, reapplied = await apply(api, f'{DEPLOYMENTS}/web', web('registry.example/model:2'), force=False)
    assert status == 200
    assert reapplied['spec']['replicas'] == 5
    assert reapplied['metadata']['annotations'] == {'argocd.argoproj.io/tracking-id': 'app:apps/Deployment:team-a/web'}
    assert owns(reapplied, 'kube-controller-manager', 'f:spec', 'f:replicas', operation='Update')
    assert owns(reapplied, 'argocd-controller', 'f:metadata', 'f:annotations',
                'f:argocd.argoproj.io/tracking-id', operation='Update')


@pytest.mark.asyncio
async def test_fields_no_longer_applied_are_removed_unless_someone_else_owns_them(api: Api) -> None:
    """(c) headway stops rendering a label, an env var, a sidecar: gone; a co-owned one stays."""
    await apply(api, f'{DEPLOYMENTS}/web', web(sidecar=True, env=[{'name': 'MODEL', 'value': 'a'},
                                                                  {'name': 'DEBUG', 'value': '1'}]))
    await apply(api, f'{DEPLOYMENTS}/web', {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {
        'name': 'web', 'labels': {'tier': 'model'}}}, 'team-tooling', force=False)  # co-owns the label

    status, pruned = await apply(api, f'{DEPLOYMENTS}/web', web(labels={'app': 'web'}))
    assert status == 200
    assert [c['name'] for c in pruned['spec']['template']['spec']['containers']] == ['model']
    assert container(pruned)['env'] == [{'name': 'MODEL', 'value': 'a'}]
    assert pruned['metadata']['labels'] == {'app': 'web', 'tier': 'model'}  # still team-tooling's
    assert not owns(pruned, 'headway', 'f:metadata', 'f:labels', 'f:tier')  # merely disowned

    await apply(api, f'{DEPLOYMENTS}/web', {'apiVersion': 'apps/v1', 'kind': 'Deployment',
                                            'metadata': {'name': 'web'}}, 'team-tooling')
    _, released = await api.get(f'{DEPLOYMENTS}/web')
    assert released['metadata']['labels'] == {'app': 'web'}
    assert ('team-tooling', 'Apply') not in entries(released)


@pytest.mark.asyncio
async def test_a_no_op_apply_writes_nothing(api: Api) -> None:
    """(d) an unchanged re-apply: same resourceVersion, same managedFields (times too), no event."""
    _, first = await apply(api, f'{DEPLOYMENTS}/web', web())
    await asyncio.sleep(1.1)  # a hold, not a wait: managedFields times have 1 s resolution, so a new time would show
    status, second = await apply(api, f'{DEPLOYMENTS}/web', web())
    assert status == 200
    assert second['metadata']['resourceVersion'] == first['metadata']['resourceVersion']
    assert second['metadata']['managedFields'] == first['metadata']['managedFields']
    assert second['metadata']['generation'] == 1
    events = await api.watch(DEPLOYMENTS, resourceVersion=first['metadata']['resourceVersion'], timeoutSeconds='1')
    assert events == []


@pytest.mark.asyncio
async def test_service_ports_merge_by_port_and_protocol(api: Api) -> None:
    service = {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'web'},
               'spec': {'selector': {'app': 'web'}, 'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}]}}
    status, created = await apply(api, f'{SERVICES}/web', service)
    assert status == 201
    assert 'k:{"port":80,"protocol":"TCP"}' in fields(created, 'headway')['f:spec']['f:ports']
    assert fields(created, 'headway')['f:spec']['f:selector'] == {}  # a Service's selector is atomic
    metrics = {**service, 'spec': {'ports': [{'name': 'metrics', 'port': 9090, 'targetPort': 9090}]}}
    status, merged = await apply(api, f'{SERVICES}/web', metrics, 'metrics-addon', force=False)
    assert status == 200
    assert [p['port'] for p in merged['spec']['ports']] == [80, 9090]


# --- Custom resources: list types from the CRD schema, the status subresource -----------------------------

async def create_gadget_crd(api: Api) -> None:
    status, _ = await api.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', GADGET_CRD)
    assert status == 201
    await api.wait_for('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.headway.dev',
                       lambda crd: any(c['type'] == 'Established' and c['status'] == 'True'
                                       for c in crd.get('status', {}).get('conditions', [])))


def gadget(**spec: Any) -> dict[str, Any]:
    return {'apiVersion': 'example.headway.dev/v1', 'kind': 'Gadget', 'metadata': {'name': 'g'}, 'spec': spec}


@pytest.mark.asyncio
async def test_custom_resources_follow_their_schemas_list_and_map_types(api: Api) -> None:
    await create_gadget_crd(api)
    status, first = await apply(api, f'{GADGETS}/g', gadget(
        backends=[{'name': 'blue', 'weight': 100}], tags=['a'], hosts=['a.example'], selector={'x': '1'}))
    assert status == 201
    f = fields(first, 'headway')['f:spec']
    assert f['f:backends'] == {'k:{"name":"blue"}': {'.': {}, 'f:name': {}, 'f:weight': {}}}
    assert f['f:tags'] == {'v:"a"': {}} and f['f:hosts'] == {} and f['f:selector'] == {}

    # A second manager adds a backend and a tag: maps and sets merge per item.
    status, second = await apply(api, f'{GADGETS}/g', gadget(backends=[{'name': 'green', 'weight': 0}], tags=['b']),
                                 'rollout', force=False)
    assert status == 200
    assert second['spec']['backends'] == [{'name': 'blue', 'weight': 100}, {'name': 'green', 'weight': 0}]
    assert second['spec']['tags'] == ['a', 'b']

    # Atomic lists and maps are one field: another value conflicts, as a whole.
    status, body = await apply(api, f'{GADGETS}/g', gadget(hosts=['b.example'], selector={'y': '2'}),
                               'rollout', force=False)
    assert status == 409
    assert sorted(c['field'] for c in body['details']['causes']) == ['.spec.hosts', '.spec.selector']
    assert {c['message'] for c in body['details']['causes']} == {'conflict with "headway"'}

    status, body = await apply(api, f'{GADGETS}/g', gadget(backends=[{'name': 'blue', 'weight': 50}]),
                               'rollout', force=False)
    assert status == 409 and body['details']['causes'][0]['field'] == '.spec.backends[name="blue"].weight'


@pytest.mark.asyncio
async def test_status_is_applied_through_its_subresource_only(api: Api) -> None:
    await create_gadget_crd(api)
    status, _ = await apply(api, f'{GADGETS}/g/status', {**gadget(), 'status': {'phase': 'Ready'}})
    assert status == 404  # apply does not create through /status

    _, created = await apply(api, f'{GADGETS}/g', {**gadget(replicas=1), 'status': {'phase': 'Ignored'}})
    assert 'status' not in created and 'f:status' not in fields(created, 'headway')

    status, applied = await apply(api, f'{GADGETS}/g/status', {
        **gadget(replicas=9), 'status': {'phase': 'Ready', 'conditions': [{'type': 'Ready', 'status': 'True'}]}},
        'headway-status')
    assert status == 200
    assert applied['status']['phase'] == 'Ready' and applied['spec']['replicas'] == 1
    entry = entries(applied)[('headway-status', 'Apply')]
    assert entry['subresource'] == 'status'
    assert entry['fieldsV1'] == {'f:status': {'f:phase': {}, 'f:conditions': {
        'k:{"type":"Ready"}': {'.': {}, 'f:type': {}, 'f:status': {}}}}}
    assert applied['metadata']['generation'] == 1

    status, body = await apply(api, f'{GADGETS}/g/status', {**gadget(), 'status': {'phase': 'Failed'}},
                               'another-controller', force=False)
    assert status == 409
    assert body['details']['causes'][0]['message'] == 'conflict with "headway-status" with subresource "status"'


# --- Clients: Table output, kubectl -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_tables_keep_the_full_object_metadata(api: Api) -> None:
    await apply(api, f'{DEPLOYMENTS}/web', web())
    accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json'
    async with api.session.get(DEPLOYMENTS, headers={'Accept': accept}) as response:
        table = await response.json()
    assert table['rows'][0]['object']['metadata']['managedFields'][0]['manager'] == 'headway'


@pytest.mark.skipif(shutil.which('kubectl') is None, reason='kubectl is not installed')
def test_kubectl_server_side_apply(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    """(e) kubectl apply --server-side, its conflicts and --force-conflicts, --show-managed-fields."""
    env = {**os.environ, 'KUBECONFIG': str(kube_emulator.write_kubeconfig(tmp_path / 'kubeconfig', namespace=NS))}

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(['kubectl', *args], env=env, capture_output=True, text=True, timeout=60)

    manifest = tmp_path / 'web.yaml'
    manifest.write_text(yaml.safe_dump(web()))
    # --validate=false: client-side schema checks need /openapi for built-ins (not this module's concern).
    done = kubectl('apply', '--server-side', '--validate=false', '-f', str(manifest))
    assert done.returncode == 0, done.stderr
    assert 'serverside-applied' in done.stdout

    shown = yaml.safe_load(kubectl('get', 'deployment', 'web', '-o', 'yaml', '--show-managed-fields').stdout)
    assert [(e['manager'], e['operation']) for e in shown['metadata']['managedFields']] == [('kubectl', 'Apply')]
    hidden = yaml.safe_load(kubectl('get', 'deployment', 'web', '-o', 'yaml').stdout)
    assert 'managedFields' not in hidden['metadata']  # kubectl hides them by default

    assert kubectl('set', 'image', 'deployment/web', 'model=registry.example/model:hotfix').returncode == 0
    assert kubectl('label', 'deployment', 'web', 'team=serving').returncode == 0
    shown = yaml.safe_load(kubectl('get', 'deployment', 'web', '-o', 'yaml', '--show-managed-fields').stdout)
    assert {('kubectl-set', 'Update'), ('kubectl-label', 'Update')} <= {
        (e['manager'], e['operation']) for e in shown['metadata']['managedFields']}

    refused = kubectl('apply', '--server-side', '--validate=false', '-f', str(manifest))
    assert refused.returncode == 1
    assert ('Apply failed with 1 conflict: conflict with "kubectl-set" using apps/v1: '
            '.spec.template.spec.containers[name="model"].image') in refused.stderr
    forced = kubectl('apply', '--server-side', '--force-conflicts', '--validate=false', '-f', str(manifest))
    assert forced.returncode == 0, forced.stderr
    image = kubectl('get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')
    assert image.stdout == 'registry.example/model:1'
    assert kubectl('get', 'deployment', 'web', '-o', 'jsonpath={.metadata.labels.team}').stdout == 'serving'


@pytest.mark.skipif(shutil.which('kubectl') is None, reason='kubectl is not installed')
def test_kubectl_get_prints_the_columns_of_the_built_in_kinds(tmp_path: Path) -> None:
    """`kubectl get deploy,svc,events` reads as on a cluster: READY, UP-TO-DATE, AVAILABLE; TYPE,
    CLUSTER-IP, PORT(S); LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    with KubeEmulator.running_in_thread(deployment_controller_delay=0.2) as kube:
        kube.create_namespace(NS)
        _print_built_in_columns(kube, tmp_path)


def _print_built_in_columns(kube: KubeEmulator, tmp_path: Path) -> None:
    env = {**os.environ, 'KUBECONFIG': str(kube.write_kubeconfig(tmp_path / 'kubeconfig', namespace=NS))}

    def kubectl(*args: str) -> str:
        done = subprocess.run(['kubectl', *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    service = {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'web', 'namespace': NS},
               'spec': {'selector': {'app': 'web'}, 'ports': [{'name': 'http', 'port': 3000, 'protocol': 'TCP'}]}}
    event = {'apiVersion': 'v1', 'kind': 'Event', 'metadata': {'name': 'web.1', 'namespace': NS},
             'involvedObject': {'kind': 'Deployment', 'name': 'web', 'namespace': NS, 'apiVersion': 'apps/v1'},
             'reason': 'Scaled', 'message': 'scaled to 2', 'type': 'Normal', 'lastTimestamp': '2026-01-01T00:00:00Z'}
    for manifest, name in ((web(replicas=2), 'web.yaml'), (service, 'svc.yaml'), (event, 'event.yaml')):
        (tmp_path / name).write_text(yaml.safe_dump(manifest))
        kubectl('apply', '--server-side', '--validate=false', '-f', str(tmp_path / name))

    deadline = time.monotonic() + 30
    while (rows := kubectl('get', 'deployment', 'web').splitlines())[1].split()[1] != '2/2':
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert rows[0].split() == ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']
    assert rows[1].split()[:4] == ['web', '2/2', '2', '2']

    header, row = kubectl('get', 'service', 'web').splitlines()
    assert header.split() == ['NAME', 'TYPE', 'CLUSTER-IP', 'PORT(S)', 'AGE']
    assert row.split()[0:2] == ['web', 'ClusterIP'] and row.split()[3] == '3000/TCP'

    header, row = kubectl('get', 'events').splitlines()[:2]
    assert header.split() == ['LAST', 'SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']
    assert row.split()[1:] == ['Normal', 'Scaled', 'deployment/web', 'scaled', 'to', '2']
    assert 'web.1' in kubectl('get', 'events', '-o', 'wide').splitlines()[1]
