"""
The emulated kube-apiserver admits custom resources as the real one does (``operator/headway/sandbox/apiserver/admission.py``).

Every test pins REAL kube-apiserver behaviour (v1.30+: validation ratcheting is on) over plain
HTTP or kubectl, so it would pass against a real cluster too: schema and CEL validation of every
write with 422 Invalid and per-field causes, unknown fields per ``fieldValidation`` (400 when
Strict, a ``Warning`` header when Warn, the default), pruning, defaulting, transition rules, and the
OpenAPI documents kubectl reads before it writes. CRDs are installed by POSTing them, as anywhere.
"""
import asyncio
import copy
import json
import shutil
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from headway.sandbox.apiserver import KubeEmulator
from tests.e2e.gadgets import GADGETS_PATH, gadget_crd

ROOT = Path(__file__).resolve().parents[2]
MD_CRD: dict[str, Any] = yaml.safe_load((ROOT / 'crds' / 'modeldeployments.serving.headway.dev.yaml').read_text())
CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions'
NS = 'team-a'
MDS = f'/apis/serving.headway.dev/v1alpha1/namespaces/{NS}/modeldeployments'
GADGETS = GADGETS_PATH.format(namespace=NS)
MERGE = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'

GADGET_CRD = gadget_crd(
    spec={
        'type': 'object',
        'required': ['size'],
        'properties': {
            'size': {'type': 'integer', 'minimum': 0, 'maximum': 10},
            'colour': {'type': 'string', 'default': 'blue'},
            'serial': {'type': 'string', 'x-kubernetes-validations': [
                {'rule': 'self == oldSelf', 'message': 'serial is immutable'}]},
            'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
        },
    },
    status={'type': 'object', 'properties': {'count': {'type': 'integer', 'minimum': 0}}},
)


class Api:
    """A thin HTTP client: every call returns (status code, JSON body, response headers)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str = 'application/json',
                   accept: str = 'application/json', **params: str) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body)
        headers = {'Content-Type': content_type, 'Accept': accept}
        async with self.session.request(method, path, data=data, headers=headers, params=params) as response:
            return response.status, await response.json(content_type=None), response.headers

    async def get(self, path: str, **params: str) -> tuple[int, Any, Any]:
        return await self.call('GET', path, **params)

    async def post(self, path: str, body: Any, **params: str) -> tuple[int, Any, Any]:
        return await self.call('POST', path, body, **params)

    async def put(self, path: str, body: Any, **params: str) -> tuple[int, Any, Any]:
        return await self.call('PUT', path, body, **params)

    async def patch(self, path: str, body: Any, content_type: str = MERGE, **params: str) -> tuple[int, Any, Any]:
        return await self.call('PATCH', path, body, content_type=content_type, **params)

    async def install(self, crd: dict[str, Any]) -> None:
        """Create or replace a CRD, then wait until it is Established."""
        name = crd['metadata']['name']
        status, current, _ = await self.get(f'{CRDS}/{name}')
        if status == 404:
            status, body, _ = await self.post(CRDS, crd)
            assert status == 201, body
        else:
            new = copy.deepcopy(crd)
            new['metadata']['resourceVersion'] = current['metadata']['resourceVersion']
            status, body, _ = await self.put(f'{CRDS}/{name}', new)
            assert status == 200, body
        deadline = time.monotonic() + 10
        while True:
            _, body, _ = await self.get(f'{CRDS}/{name}')
            if any(c['type'] == 'Established' and c['status'] == 'True' for c in body.get('status', {}).get('conditions', [])):
                return
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture()
async def api(kube_emulator: KubeEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(base_url=str(kube_emulator.url)) as session:
        api = Api(session)
        await api.install(MD_CRD)
        await api.install(GADGET_CRD)
        yield api


def model_deployment(name: str = 'fraud', **spec: Any) -> dict[str, Any]:
    return {'apiVersion': 'serving.headway.dev/v1alpha1', 'kind': 'ModelDeployment',
            'metadata': {'name': name},
            'spec': {'model': {'bento': 'fraud_scorer:1.0.0', 'image': 'registry.example.com/fraud:1.0.0'}, **spec}}


def gadget(name: str = 'g', **spec: Any) -> dict[str, Any]:
    return {'apiVersion': 'example.headway.dev/v1', 'kind': 'Gadget', 'metadata': {'name': name},
            'spec': {'size': 1, **spec}}


def causes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c['field'], c['reason']) for c in body['details']['causes']]


# --- Validation: OpenAPI schema and CEL ------------------------------------------------------------

async def test_schema_violations_are_422_with_a_cause_per_field(api: Api) -> None:
    status, body, _ = await api.post(MDS, model_deployment(replicas=-1))
    assert status == 422
    assert body['reason'] == 'Invalid'
    assert body['message'] == ('ModelDeployment.serving.headway.dev "fraud" is invalid: spec.replicas: Invalid value: '
                               '-1: spec.replicas in body should be greater than or equal to 0')
    assert body['details'] == {'name': 'fraud', 'group': 'serving.headway.dev', 'kind': 'ModelDeployment', 'causes': [{
        'reason': 'FieldValueInvalid', 'field': 'spec.replicas',
        'message': 'Invalid value: -1: spec.replicas in body should be greater than or equal to 0'}]}

    bad = model_deployment()
    del bad['spec']['model']['image']
    bad['spec']['model']['bento'] = 'x' * 200
    bad['spec']['model']['imagePullPolicy'] = 'Sometimes'
    status, body, _ = await api.post(MDS, bad)
    assert status == 422
    assert set(causes(body)) >= {('spec.model.image', 'FieldValueRequired'),
                                 ('spec.model.bento', 'FieldValueTooLong'),
                                 ('spec.model.imagePullPolicy', 'FieldValueNotSupported')}
    assert body['message'].startswith('ModelDeployment.serving.headway.dev "fraud" is invalid: [')
    assert 'spec.model.image: Required value' in body['message']

    status, body, _ = await api.post(MDS, model_deployment(replicas='three'))
    assert status == 422
    assert ('spec.replicas', 'FieldValueTypeInvalid') in causes(body)


async def test_cel_rules_are_enforced(api: Api) -> None:
    autoscaling = {'minReplicas': 3, 'maxReplicas': 2, 'metrics': [{'cpu': {'averageUtilization': 80}}]}
    status, body, _ = await api.post(MDS, model_deployment(autoscaling=autoscaling))
    assert status == 422
    assert body['details']['causes'] == [{
        'reason': 'FieldValueInvalid', 'field': 'spec.autoscaling.maxReplicas',
        'message': 'Invalid value: "object": maxReplicas must be greater than or equal to minReplicas'}] or \
        body['details']['causes'] == [{  # Kubernetes 1.30+ omits the value of objects in CEL errors
            'reason': 'FieldValueInvalid', 'field': 'spec.autoscaling.maxReplicas',
            'message': 'Invalid value: maxReplicas must be greater than or equal to minReplicas'}]

    status, body, _ = await api.post(MDS, model_deployment(replicas=2, autoscaling={**autoscaling, 'maxReplicas': 5}))
    assert status == 422
    assert causes(body) == [('spec.replicas', 'FieldValueInvalid')]
    assert 'set replicas or autoscaling, not both' in body['message']


async def test_every_kind_of_write_is_validated(api: Api) -> None:
    status, created, _ = await api.post(MDS, model_deployment(replicas=1))
    assert status == 201
    path = f'{MDS}/fraud'

    invalid = copy.deepcopy(created)
    invalid['spec']['replicas'] = 5000
    status, body, _ = await api.put(path, invalid)
    assert (status, causes(body)) == (422, [('spec.replicas', 'FieldValueInvalid')])
    status, body, _ = await api.patch(path, {'spec': {'replicas': 5000}})
    assert (status, causes(body)) == (422, [('spec.replicas', 'FieldValueInvalid')])
    status, body, _ = await api.patch(path, [{'op': 'replace', 'path': '/spec/replicas', 'value': 5000}], JSON_PATCH)
    assert (status, causes(body)) == (422, [('spec.replicas', 'FieldValueInvalid')])
    status, body, _ = await api.patch(path, [{'op': 'remove', 'path': '/spec/model/image'}], JSON_PATCH)
    assert (status, causes(body)[0]) == (422, ('spec.model.image', 'FieldValueRequired'))

    status, body, _ = await api.patch(f'{path}/status', {'status': {'phase': 'Exploding'}})
    assert (status, causes(body)) == (422, [('status.phase', 'FieldValueNotSupported'),
                                            ('<nil>', 'FieldValueInvalid')])  # CEL rules were skipped
    assert body['details']['causes'][1]['message'].startswith('Invalid value: "null": some validation rules were not checked')
    status, body, _ = await api.put(f'{path}/status', {**created, 'status': {'observedGeneration': 'one'}})
    assert (status, causes(body)[0]) == (422, ('status.observedGeneration', 'FieldValueTypeInvalid'))

    status, body, _ = await api.get(path)
    assert body['spec']['replicas'] == 1 and 'status' not in body  # nothing was stored


async def test_status_and_main_resource_are_validated_apart(api: Api) -> None:
    status, created, _ = await api.post(GADGETS, gadget())
    assert status == 201
    path = f'{GADGETS}/g'
    # The main resource ignores .status (even an invalid one), /status ignores everything else.
    status, body, _ = await api.patch(path, {'spec': {'size': 2}, 'status': {'count': -1}})
    assert status == 200 and body['spec']['size'] == 2 and 'status' not in body
    status, body, _ = await api.patch(f'{path}/status', {'spec': {'size': 99}, 'status': {'count': 3}})
    assert status == 200 and body['spec']['size'] == 2 and body['status'] == {'count': 3}
    status, body, _ = await api.patch(f'{path}/status', {'status': {'count': -3}})
    assert (status, causes(body)) == (422, [('status.count', 'FieldValueInvalid')])
    assert body['message'] == ('Gadget.example.headway.dev "g" is invalid: status.count: Invalid value: -3: '
                               'status.count in body should be greater than or equal to 0')


async def test_transition_rules_compare_with_the_stored_object(api: Api) -> None:
    status, _, _ = await api.post(GADGETS, gadget(serial='A-1'))
    assert status == 201  # no oldSelf on a create
    status, body, _ = await api.patch(f'{GADGETS}/g', {'spec': {'serial': 'B-2'}})
    assert status == 422
    assert body['details']['causes'] == [{'reason': 'FieldValueInvalid', 'field': 'spec.serial',
                                          'message': 'Invalid value: "B-2": serial is immutable'}]
    status, body, _ = await api.patch(f'{GADGETS}/g', {'spec': {'serial': 'A-1', 'size': 3}})
    assert status == 200 and body['spec']['size'] == 3


async def test_unchanged_fields_are_not_revalidated_ratcheting(api: Api) -> None:
    status, _, _ = await api.post(GADGETS, gadget(size=8))
    assert status == 201
    tighter = copy.deepcopy(GADGET_CRD)
    tighter['spec']['versions'][0]['schema']['openAPIV3Schema']['properties']['spec']['properties']['size']['maximum'] = 5
    await api.install(tighter)
    # size 8 is now invalid, but writes that leave it alone are admitted ...
    status, body, _ = await api.patch(f'{GADGETS}/g', {'spec': {'colour': 'red'}})
    assert status == 200, body
    status, body, _ = await api.patch(f'{GADGETS}/g/status', {'status': {'count': 1}})
    assert status == 200, body
    # ... and one that changes it must satisfy the new bound.
    status, body, _ = await api.patch(f'{GADGETS}/g', {'spec': {'size': 7}})
    assert (status, causes(body)) == (422, [('spec.size', 'FieldValueInvalid')])


# --- Unknown fields: fieldValidation, pruning -------------------------------------------------------

async def test_strict_field_validation_rejects_unknown_fields(api: Api) -> None:
    body = model_deployment()
    body['spec']['model']['foo'] = 'bar'
    body['spec']['colour'] = 'red'
    status, result, _ = await api.post(MDS, body, fieldValidation='Strict')
    assert status == 400
    assert result['reason'] == 'BadRequest'
    assert result['message'] == ('ModelDeployment in version "v1alpha1" cannot be handled as a ModelDeployment: '
                                 'strict decoding error: unknown field "spec.colour", unknown field "spec.model.foo"')

    status, created, _ = await api.post(MDS, model_deployment(), fieldValidation='Strict')
    assert status == 201
    status, result, _ = await api.patch(f'{MDS}/fraud', {'spec': {'foo': 1}}, fieldValidation='Strict')
    assert (status, result['message']) == (400, 'strict decoding error: unknown field "spec.foo"')
    status, result, _ = await api.patch(f'{MDS}/fraud', [{'op': 'add', 'path': '/spec/foo', 'value': 1}], JSON_PATCH,
                                        fieldValidation='Strict')
    assert (status, result['message']) == (400, 'strict decoding error: unknown field "spec.foo"')
    status, result, _ = await api.put(f'{MDS}/fraud', {**created, 'spec': {**created['spec'], 'foo': 1}},
                                      fieldValidation='Strict')
    assert status == 400 and result['message'].endswith('strict decoding error: unknown field "spec.foo"')
    status, result, _ = await api.patch(f'{MDS}/fraud/status', {'status': {'foo': 1}}, fieldValidation='Strict')
    assert (status, result['message']) == (400, 'strict decoding error: unknown field "status.foo"')


async def test_unknown_fields_are_pruned_with_a_warning_by_default(api: Api) -> None:
    body = model_deployment()
    body['spec']['model']['foo'] = 'bar'
    body['metadata']['colour'] = 'red'
    status, created, headers = await api.post(MDS, body)  # no fieldValidation: Warn
    assert status == 201
    assert headers.getall('Warning') in (
        ['299 - "unknown field \\"metadata.colour\\"", 299 - "unknown field \\"spec.model.foo\\""'],
        ['299 - "unknown field \\"metadata.colour\\""', '299 - "unknown field \\"spec.model.foo\\""'])
    assert 'foo' not in created['spec']['model'] and 'colour' not in created['metadata']
    _, stored, _ = await api.get(f'{MDS}/fraud')
    assert 'foo' not in stored['spec']['model']

    status, patched, headers = await api.patch(f'{MDS}/fraud', {'spec': {'foo': 1}}, fieldValidation='Warn')
    assert status == 200 and 'foo' not in patched['spec']
    assert headers.getall('Warning') == ['299 - "unknown field \\"spec.foo\\""']
    status, patched, headers = await api.patch(f'{MDS}/fraud/status', {'status': {'phase': 'Pending', 'foo': 1}})
    assert status == 200 and patched['status'] == {'phase': 'Pending'}  # status is pruned too
    assert headers.getall('Warning') == ['299 - "unknown field \\"status.foo\\""']


async def test_ignore_prunes_silently_and_preserve_unknown_fields_keeps(api: Api) -> None:
    status, created, headers = await api.post(GADGETS, gadget(foo=1, extra={'anything': {'goes': [1, 2]}}),
                                              fieldValidation='Ignore')
    assert status == 201
    assert 'Warning' not in headers
    assert 'foo' not in created['spec']
    assert created['spec']['extra'] == {'anything': {'goes': [1, 2]}}  # x-kubernetes-preserve-unknown-fields
    status, created, headers = await api.post(GADGETS, gadget('h', extra={'x': 1}), fieldValidation='Strict')
    assert status == 201 and 'Warning' not in headers


# --- Defaults -----------------------------------------------------------------------------------------------

async def test_schema_defaults_are_applied_on_write_and_read(api: Api) -> None:
    status, created, _ = await api.post(MDS, model_deployment(autoscaling={
        'maxReplicas': 3, 'metrics': [{'cpu': {'averageUtilization': 80}}]}))
    assert status == 201
    assert created['spec']['model']['port'] == 3000
    assert created['spec']['autoscaling']['minReplicas'] == 1
    status, created, _ = await api.post(GADGETS, gadget())
    assert created['spec']['colour'] == 'blue'
    status, patched, _ = await api.patch(f'{GADGETS}/g', [{'op': 'remove', 'path': '/spec/colour'}], JSON_PATCH)
    assert status == 200 and patched['spec']['colour'] == 'blue'  # defaulted again

    # A default added to the CRD later shows on objects stored before (defaulting on read).
    newer = copy.deepcopy(GADGET_CRD)
    newer['spec']['versions'][0]['schema']['openAPIV3Schema']['properties']['spec']['properties']['shape'] = {
        'type': 'string', 'default': 'round'}
    await api.install(newer)
    _, stored, _ = await api.get(f'{GADGETS}/g')
    assert stored['spec']['shape'] == 'round'


# --- OpenAPI for clients (kubectl) -----------------------------------------------------------------

async def test_openapi_v3_serves_the_crd_schemas(api: Api) -> None:
    status, root, _ = await api.get('/openapi/v3')
    assert status == 200
    url = root['paths']['apis/serving.headway.dev/v1alpha1']['serverRelativeURL']
    assert url.startswith('/openapi/v3/apis/serving.headway.dev/v1alpha1?hash=')
    status, doc, _ = await api.get(url)
    assert status == 200
    schema = doc['components']['schemas']['dev.headway.serving.v1alpha1.ModelDeployment']
    assert schema['x-kubernetes-group-version-kind'] == [
        {'group': 'serving.headway.dev', 'version': 'v1alpha1', 'kind': 'ModelDeployment'}]
    assert schema['properties']['spec']['properties']['model']['required'] == ['bento', 'image']
    assert 'dev.headway.serving.v1alpha1.ModelDeploymentList' in doc['components']['schemas']
    patch = doc['paths']['/apis/serving.headway.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}']['patch']
    assert patch['x-kubernetes-group-version-kind'] == {
        'group': 'serving.headway.dev', 'version': 'v1alpha1', 'kind': 'ModelDeployment'}
    assert 'fieldValidation' in [p['name'] for p in patch['parameters']]  # kubectl: server-side validation


async def test_openapi_v2_is_served_as_json(api: Api) -> None:
    status, doc, _ = await api.get('/openapi/v2')
    assert status == 200
    assert doc['swagger'] == '2.0'
    assert doc['definitions']['dev.headway.serving.v1alpha1.ModelDeployment']['x-kubernetes-group-version-kind'] == [
        {'group': 'serving.headway.dev', 'version': 'v1alpha1', 'kind': 'ModelDeployment'}]


# --- kubectl ----------------------------------------------------------------------------------------------

MANIFEST = textwrap.dedent("""\
    apiVersion: serving.headway.dev/v1alpha1
    kind: ModelDeployment
    metadata:
      name: fraud
      namespace: default
    spec:
      model:
        bento: fraud_scorer:1.0.0
        image: registry.example.com/fraud:1.0.0
    """)


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(['kubectl', '--kubeconfig', str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture()
def kubeconfig(kube_emulator: KubeEmulator, tmp_path: Path) -> Path:
    kube_emulator.install_crd(MD_CRD)
    return kube_emulator.write_kubeconfig(tmp_path / 'kubeconfig')


@pytest.mark.skipif(shutil.which('kubectl') is None, reason='kubectl is not installed')
def test_kubectl_apply_validates_on_the_server(kubeconfig: Path) -> None:
    unknown = MANIFEST.replace('    image: registry', '    imagee: typo\n    image: registry')
    result = kubectl(kubeconfig, 'apply', '-f', '-', stdin=unknown)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.model.imagee"' in result.stderr

    invalid = MANIFEST + '  replicas: -1\n'
    result = kubectl(kubeconfig, 'apply', '-f', '-', stdin=invalid)
    assert result.returncode != 0
    assert 'spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0' in result.stderr

    result = kubectl(kubeconfig, 'apply', '-f', '-', stdin=MANIFEST)
    assert result.returncode == 0, result.stderr
    assert 'modeldeployment.serving.headway.dev/fraud created' in result.stdout
    result = kubectl(kubeconfig, 'apply', '-f', '-', stdin=MANIFEST + '  replicas: 2\n')
    assert result.returncode == 0, result.stderr
    assert 'configured' in result.stdout
    result = kubectl(kubeconfig, 'get', 'md', 'fraud', '-o', 'jsonpath={.spec.replicas} {.spec.model.port}')
    assert result.stdout == '2 3000'


@pytest.mark.skipif(shutil.which('kubectl') is None, reason='kubectl is not installed')
def test_kubectl_explain_reads_the_schema(kubeconfig: Path) -> None:
    result = kubectl(kubeconfig, 'explain', 'md.spec.model')
    assert result.returncode == 0, result.stderr
    assert 'KIND:       ModelDeployment' in result.stdout
    assert 'bento\t<string> -required-' in result.stdout
    assert 'The version that should be in production' in result.stdout
