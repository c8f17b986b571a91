"""
The emulated kube-apiserver authenticates and authorises like the real one (``operator/headway/sandbox/apiserver/rbac.py``).

Each test pins real RBAC behaviour over plain HTTP, so it would pass against a real cluster too:
only ``token_for()`` (issuing a ServiceAccount's token) stands in for what a real cluster does
itself (a ServiceAccount token from the TokenRequest API). RBAC objects are written by the admin.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from headway.sandbox.apiserver import KubeEmulator

SA = 'system:serviceaccount:headway-system:headway'
NS, OTHER = 'team-a', 'team-b'
RBAC = '/apis/rbac.authorization.k8s.io/v1'
MERGE = 'application/merge-patch+json'


class Client:
    """HTTP as one identity: every call returns (status code, JSON body)."""

    def __init__(self, kube: KubeEmulator, token: str | None) -> None:
        self.base = str(kube.url).rstrip('/')
        self.headers = {'Authorization': f'Bearer {token}'} if token else {}

    def call(self, method: str, path: str, body: Any = None, *, content_type: str = 'application/json',
             **params: str) -> tuple[int, Any]:
        headers = {**self.headers, 'Content-Type': content_type}
        response = requests.request(method, self.base + path, data=None if body is None else json.dumps(body),
                                    headers=headers, params=params, timeout=10)
        try:
            return response.status_code, response.json()
        except ValueError:  # a watch stream: zero or more JSON lines
            return response.status_code, [json.loads(line) for line in response.text.splitlines() if line]

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        return self.call('GET', path, **params)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call('POST', path, body)


@pytest.fixture()
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator.running_in_thread() as emulator:
        emulator.create_namespace(NS, OTHER)
        yield emulator


@pytest.fixture()
def admin(kube: KubeEmulator) -> Client:
    return Client(kube, 'emulator-token')


@pytest.fixture()
def sa(kube: KubeEmulator) -> Client:
    return Client(kube, kube.token_for(SA))


def deployment(name: str) -> dict[str, Any]:
    labels = {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name}, 'spec': {
        'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
            'containers': [{'name': 'c', 'image': 'nginx'}]}}}}


def grant(admin: Client, rules: list[dict[str, Any]], *, namespace: str | None = NS, name: str = 'r',
          subject: dict[str, Any] | None = None, cluster_role: bool | None = None) -> None:
    """A Role+RoleBinding in the namespace, or (namespace=None) a ClusterRole+ClusterRoleBinding;
    cluster_role=True with a namespace: a ClusterRole bound by a RoleBinding."""
    subject = subject or {'kind': 'ServiceAccount', 'name': 'headway', 'namespace': 'headway-system'}
    use_cluster_role = namespace is None or bool(cluster_role)
    role_kind = 'ClusterRole' if use_cluster_role else 'Role'
    role_path = f'{RBAC}/clusterroles' if use_cluster_role else f'{RBAC}/namespaces/{namespace}/roles'
    meta: dict[str, Any] = {'name': name} if use_cluster_role else {'name': name, 'namespace': namespace}
    assert admin.post(role_path, {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': role_kind,
                                  'metadata': meta, 'rules': rules})[0] == 201
    binding_kind = 'ClusterRoleBinding' if namespace is None else 'RoleBinding'
    binding_path = f'{RBAC}/clusterrolebindings' if namespace is None else f'{RBAC}/namespaces/{namespace}/rolebindings'
    binding_meta = {'name': name} if namespace is None else {'name': name, 'namespace': namespace}
    assert admin.post(binding_path, {
        'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': binding_kind, 'metadata': binding_meta,
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': role_kind, 'name': name},
        'subjects': [subject]})[0] == 201


def deployments(namespace: str | None = NS, name: str | None = None, sub: str | None = None) -> str:
    path = '/apis/apps/v1' + (f'/namespaces/{namespace}' if namespace else '') + '/deployments'
    return path + (f'/{name}' if name else '') + (f'/{sub}' if sub else '')


# --- Authentication --------------------------------------------------------------------------------

def test_unknown_token_is_unauthorized(kube: KubeEmulator) -> None:
    status, body = Client(kube, 'not-a-token').get('/api/v1/namespaces')
    assert status == 401
    assert body == {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                    'message': 'Unauthorized', 'reason': 'Unauthorized', 'code': 401}
    assert Client(kube, 'not-a-token').get('/api')[0] == 401  # discovery too


def test_admin_may_do_everything(admin: Client) -> None:
    assert admin.post(deployments(), deployment('web'))[0] == 201
    assert admin.get(deployments(None))[0] == 200
    assert admin.get('/api/v1/namespaces')[0] == 200
    assert admin.call('DELETE', deployments(name='web'))[0] == 200


def test_issued_tokens_are_stable_per_identity(kube: KubeEmulator) -> None:
    assert kube.token_for(SA) == kube.token_for(SA) != kube.token_for('system:serviceaccount:other:headway')


# --- Discovery and non-resource URLs -------------------------------------------------------------------

def test_discovery_is_open_to_every_authenticated_user(sa: Client) -> None:
    for path in ('/api', '/api/v1', '/apis', '/apis/apps', '/apis/apps/v1', '/version'):
        assert sa.get(path)[0] == 200, path


def test_other_non_resource_urls_are_forbidden(sa: Client) -> None:
    status, body = sa.get('/metrics')
    assert status == 403
    assert body['message'] == f'forbidden: User "{SA}" cannot get path "/metrics"'
    assert body['reason'] == 'Forbidden' and body['details'] == {}


# --- Denials: the real message shape ------------------------------------------------------------------

def test_without_bindings_everything_is_forbidden_with_the_real_message(sa: Client) -> None:
    status, body = sa.get(deployments())
    assert status == 403
    assert body == {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'reason': 'Forbidden',
                    'message': f'deployments.apps is forbidden: User "{SA}" cannot list resource "deployments" '
                               f'in API group "apps" in the namespace "{NS}"',
                    'details': {'group': 'apps', 'kind': 'deployments'}, 'code': 403}
    status, body = sa.get('/api/v1/namespaces')
    assert body['message'] == (f'namespaces is forbidden: User "{SA}" cannot list resource "namespaces" '
                               f'in API group "" at the cluster scope')
    status, body = sa.get(deployments(name='web'))
    assert body['message'] == (f'deployments.apps "web" is forbidden: User "{SA}" cannot get resource "deployments" '
                               f'in API group "apps" in the namespace "{NS}"')
    assert body['details'] == {'name': 'web', 'group': 'apps', 'kind': 'deployments'}
    status, body = sa.call('PATCH', deployments(name='web', sub='status'), {}, content_type=MERGE)
    assert body['message'] == (f'deployments.apps "web" is forbidden: User "{SA}" cannot patch resource '
                               f'"deployments/status" in API group "apps" in the namespace "{NS}"')
    status, body = sa.get(deployments(None), watch='true')
    assert body['message'] == (f'deployments.apps is forbidden: User "{SA}" cannot watch resource "deployments" '
                               f'in API group "apps" at the cluster scope')


# --- Scope: Role vs ClusterRole, RoleBinding vs ClusterRoleBinding ----------------------------------------

def test_a_rolebinding_grants_in_its_namespace_only(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']}])
    assert sa.get(deployments())[0] == 200
    assert sa.get(deployments(OTHER))[0] == 403
    assert sa.get(deployments(None))[0] == 403  # all namespaces = the cluster scope


def test_a_clusterrole_bound_by_a_rolebinding_grants_in_that_namespace_only(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']}], cluster_role=True)
    assert sa.get(deployments())[0] == 200
    assert sa.get(deployments(OTHER))[0] == 403
    assert sa.get(deployments(None))[0] == 403


def test_a_clusterrolebinding_grants_everywhere(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']},
                  {'apiGroups': [''], 'resources': ['namespaces'], 'verbs': ['list']}], namespace=None)
    assert sa.get(deployments())[0] == sa.get(deployments(OTHER))[0] == sa.get(deployments(None))[0] == 200
    assert sa.get('/api/v1/namespaces')[0] == 200


def test_a_namespace_is_in_its_own_namespace(admin: Client, sa: Client) -> None:
    # GET /api/v1/namespaces/NAME is authorised in namespace NAME: a Role there may grant it.
    admin.post('/api/v1/namespaces', {'metadata': {'name': OTHER}})
    grant(admin, [{'apiGroups': [''], 'resources': ['namespaces'], 'verbs': ['get']}])
    assert sa.get(f'/api/v1/namespaces/{NS}')[0] == 200
    assert sa.get(f'/api/v1/namespaces/{OTHER}')[0] == 403


def test_changes_to_bindings_apply_at_once(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']}])
    assert sa.get(deployments())[0] == 200
    assert admin.call('DELETE', f'{RBAC}/namespaces/{NS}/rolebindings/r')[0] == 200
    assert sa.get(deployments())[0] == 403


def test_a_binding_to_a_missing_role_grants_nothing_and_says_why(admin: Client, sa: Client) -> None:
    assert admin.post(f'{RBAC}/namespaces/{NS}/rolebindings', {
        'metadata': {'name': 'dangling'},
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Role', 'name': 'nope'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'headway', 'namespace': 'headway-system'}]})[0] == 201
    status, body = sa.get(deployments())
    assert status == 403
    assert body['message'].endswith(': RBAC: role.rbac.authorization.k8s.io "nope" not found')


# --- Verbs ---------------------------------------------------------------------------------------------

def test_each_verb_is_its_own_permission(admin: Client, sa: Client) -> None:
    admin.post(deployments(), deployment('web'))
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['get', 'list']}])
    assert sa.get(deployments(name='web'))[0] == 200
    assert sa.get(deployments())[0] == 200
    assert sa.get(deployments(), watch='true', timeoutSeconds='1')[0] == 403  # watch is not list
    assert sa.post(deployments(), deployment('api'))[0] == 403  # create
    assert sa.call('PUT', deployments(name='web'), deployment('web'))[0] == 403  # update
    assert sa.call('PATCH', deployments(name='web'), {}, content_type=MERGE)[0] == 403  # patch
    assert sa.call('DELETE', deployments(name='web'))[0] == 403  # delete
    status, body = sa.call('DELETE', deployments())  # deletecollection
    assert status == 403 and 'cannot deletecollection resource "deployments"' in body['message']


def test_write_verbs_when_granted(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'],
                   'verbs': ['create', 'update', 'patch', 'delete', 'deletecollection', 'watch']}])
    assert sa.post(deployments(), deployment('web'))[0] == 201
    assert sa.call('PATCH', deployments(name='web'), {'metadata': {'labels': {'a': 'b'}}}, content_type=MERGE)[0] == 200
    assert sa.call('DELETE', deployments(name='web'))[0] == 200
    assert sa.call('DELETE', deployments())[0] == 200
    assert sa.get(deployments(), watch='true', timeoutSeconds='1')[0] == 200
    assert sa.get(deployments())[0] == 403  # and still no list


def test_wildcard_verbs_groups_and_resources(admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['*'], 'resources': ['deployments', 'services'], 'verbs': ['*']}])
    assert sa.get(deployments())[0] == 200
    assert sa.get(f'/api/v1/namespaces/{NS}/services')[0] == 200
    assert sa.get(f'/api/v1/namespaces/{NS}/configmaps')[0] == 403
    grant(admin, [{'apiGroups': [''], 'resources': ['*'], 'verbs': ['list']}], name='core')
    assert sa.get(f'/api/v1/namespaces/{NS}/configmaps')[0] == 200
    assert sa.get(f'/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets')[0] == 403  # another group


# --- Subresources and resourceNames ------------------------------------------------------------------------

def test_subresources_are_separate_permissions(admin: Client, sa: Client) -> None:
    admin.post(deployments(), deployment('web'))
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['get', 'patch']}])
    assert sa.call('PATCH', deployments(name='web'), {}, content_type=MERGE)[0] == 200
    assert sa.call('PATCH', deployments(name='web', sub='status'), {}, content_type=MERGE)[0] == 403
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments/status'], 'verbs': ['patch']}], name='status')
    assert sa.call('PATCH', deployments(name='web', sub='status'), {}, content_type=MERGE)[0] == 200
    assert sa.get(deployments(name='web', sub='status'))[0] == 403  # get was granted on the main resource only


def test_star_slash_subresource_and_star_cover_subresources(admin: Client, sa: Client) -> None:
    admin.post(deployments(), deployment('web'))
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['*/status'], 'verbs': ['get']}])
    assert sa.get(deployments(name='web', sub='status'))[0] == 200
    assert sa.get(deployments(name='web'))[0] == 403
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['*'], 'verbs': ['patch']}], name='all')
    assert sa.call('PATCH', deployments(name='web', sub='status'), {}, content_type=MERGE)[0] == 200


def test_resource_names(admin: Client, sa: Client) -> None:
    admin.post(deployments(), deployment('web'))
    admin.post(deployments(), deployment('api'))
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'resourceNames': ['web'],
                   'verbs': ['get', 'list', 'create']}])
    assert sa.get(deployments(name='web'))[0] == 200
    assert sa.get(deployments(name='api'))[0] == 403
    assert sa.get(deployments())[0] == 403  # a list names no object
    assert sa.get(deployments(), fieldSelector='metadata.name=web')[0] == 200  # ... unless it selects one by name
    assert sa.post(deployments(), deployment('web2'))[0] == 403  # create names no object either


# --- Subjects ------------------------------------------------------------------------------------------

def test_subjects_user_group_and_serviceaccount(kube: KubeEmulator, admin: Client, sa: Client) -> None:
    rules = [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']}]
    other_sa = Client(kube, kube.token_for('system:serviceaccount:elsewhere:headway'))
    grant(admin, rules, subject={'kind': 'Group', 'name': 'system:serviceaccounts:headway-system',
                                 'apiGroup': 'rbac.authorization.k8s.io'})
    assert sa.get(deployments())[0] == 200
    assert other_sa.get(deployments())[0] == 403
    grant(admin, rules, namespace=OTHER, subject={'kind': 'User', 'name': 'system:serviceaccount:elsewhere:headway',
                                                  'apiGroup': 'rbac.authorization.k8s.io'})
    assert other_sa.get(deployments(OTHER))[0] == 200
    # A ServiceAccount subject without a namespace means the RoleBinding's namespace.
    local = Client(kube, kube.token_for(f'system:serviceaccount:{NS}:local'))
    grant(admin, rules, name='local', subject={'kind': 'ServiceAccount', 'name': 'local'})
    assert local.get(deployments())[0] == 200


# --- The record -----------------------------------------------------------------------------------------

def test_every_decision_is_recorded(kube: KubeEmulator, admin: Client, sa: Client) -> None:
    grant(admin, [{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['list']}])
    sa.get(deployments())
    sa.get(deployments(OTHER), watch='1')
    sa.get('/apis/apps/v1')
    decisions = kube.authorizations(SA)
    assert [(d.verb, d.group, d.resource, d.subresource, d.namespace, d.allowed) for d in decisions] == [
        ('list', 'apps', 'deployments', '', NS, True),
        ('watch', 'apps', 'deployments', '', OTHER, False),
        ('get', '', '', '', '', True),  # discovery: a non-resource request
    ]
    assert decisions[2].path == '/apis/apps/v1'
    assert decisions[0].permission == ('apps', 'deployments', 'list')
    assert all(d.user == 'kubernetes-admin' for d in kube.authorizations('kubernetes-admin'))
