"""
Authentication and RBAC authorization for the Kubernetes API emulator, as kube-apiserver does them.

Authentication (bearer tokens only):
- the admin token (``emulator-token``, what ``write_kubeconfig()`` writes by default) is the user
  ``kubernetes-admin`` in ``system:masters``: every request is allowed, as on a real cluster;
- tokens issued by ``KubeEmulator.token_for(user)``: a ServiceAccount
  (``system:serviceaccount:NS:NAME``, groups ``system:serviceaccounts``,
  ``system:serviceaccounts:NS``, ``system:authenticated``) or any other user name;
- any other bearer token (or another scheme) → 401 Unauthorized;
- no ``Authorization`` header at all → the admin. A deliberate deviation (a real server would
  treat it as ``system:anonymous``): the emulator always accepted anonymous requests, and the
  tests of its other behaviours rely on that. RBAC applies to issued tokens.

Authorization: the request's attributes are derived as ``RequestInfoFactory`` does
(``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``): verb from the method (GET on a
collection → list, or watch with ``?watch=``; DELETE on a collection → deletecollection; a
``fieldSelector=metadata.name=X`` on list/watch names the object for ``resourceNames``), API
group, resource, subresource, namespace (for ``namespaces/NAME`` the namespace is NAME), name.
Then the RBAC authorizer's rules (``pkg/registry/rbac/validation/rule.go``,
``plugin/pkg/auth/authorizer/rbac``) over the Role/ClusterRole/RoleBinding/ClusterRoleBinding
objects in the emulator's store:
- ClusterRoleBindings grant their ClusterRole's rules everywhere (any namespace, cluster scope,
  non-resource URLs); RoleBindings grant their Role's or ClusterRole's resource rules in the
  binding's namespace only;
- subjects: User by name, Group by membership, ServiceAccount by namespace (defaulting to the
  binding's namespace) and name;
- rules: ``verbs``, ``apiGroups``, ``resources`` (``*``, ``resource/subresource``,
  ``*/subresource``; ``*`` also covers subresources), ``resourceNames`` (never match a request
  without a name, e.g. create or an unfiltered list), ``nonResourceURLs`` (exact or ``prefix*``);
- a binding whose role does not exist grants nothing; the denial's message then carries the
  ``RBAC: ... not found`` reason, as the real one does;
- the bootstrap policy every cluster has, built in (not stored objects): ``system:discovery``
  and ``system:public-info-viewer`` (GET of /api, /apis, /version, /openapi, /healthz, ...) and
  ``system:basic-user`` (self subject access/rules reviews) for ``system:authenticated``.
A denial is 403 Forbidden with the real message, e.g. ``deployments.apps is forbidden: User
"system:serviceaccount:ns:sa" cannot list resource "deployments" in API group "apps" in the
namespace "ml"`` (``at the cluster scope`` without a namespace, ``… "name" is forbidden`` for a
named object, ``forbidden: User … cannot get path "/x"`` for a non-resource URL).

Every authorization decision is recorded (``Decision``) so tests can compare what a client
used with what it was granted: ``KubeEmulator.authorizations()``.

Not emulated: privilege-escalation checks on writing roles/bindings (``escalate``/``bind``),
aggregated ClusterRoles (``aggregationRule``), impersonation, TokenReview/SubjectAccessReview
APIs, other authorizers (Node, webhooks).
"""
from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp.web

ADMIN_TOKEN = 'emulator-token'
ADMIN_USER = 'kubernetes-admin'
AUTHENTICATED = 'system:authenticated'
MASTERS = 'system:masters'
RBAC_GROUP = 'rbac.authorization.k8s.io'
_SA_USER = re.compile(r'^system:serviceaccount:([^:]+):([^:]+)$')
_SPECIAL_VERBS = {'proxy', 'watch'}
_NAMESPACE_SUBRESOURCES = {'status', 'finalize'}
# The bootstrap ClusterRoles bound to every authenticated user (plugin/pkg/auth/authorizer/rbac/
# bootstrappolicy/policy.go): system:discovery, system:public-info-viewer, system:basic-user.
_BOOTSTRAP_RULES: tuple[dict[str, Any], ...] = (
    {'verbs': ['get'], 'nonResourceURLs': [
        '/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*',
        '/readyz', '/version', '/version/']},
    {'verbs': ['create'], 'apiGroups': ['authorization.k8s.io'],
     'resources': ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']},
    {'verbs': ['create'], 'apiGroups': ['authentication.k8s.io'], 'resources': ['selfsubjectreviews']},
)


@dataclasses.dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()


ADMIN = Identity(ADMIN_USER, (MASTERS, AUTHENTICATED))


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What the authorizer decides on (``authorizer.Attributes``)."""
    verb: str
    resource_request: bool
    path: str
    group: str = ''
    version: str = ''
    resource: str = ''
    subresource: str = ''
    namespace: str = ''
    name: str = ''


@dataclasses.dataclass(frozen=True)
class Decision:
    """One authorization decision: who did what, and whether it was allowed."""
    user: str
    verb: str
    group: str
    resource: str  # '' for a non-resource request (see ``path``)
    subresource: str
    namespace: str  # '' at the cluster scope
    name: str
    path: str
    allowed: bool

    @property
    def permission(self) -> tuple[str, str, str]:
        """(group, resource[/subresource], verb) — how an RBAC rule names what it grants."""
        resource = f'{self.resource}/{self.subresource}' if self.subresource else self.resource
        return self.group, resource, self.verb


def request_attributes(method: str, path: str, params: Mapping[str, str]) -> Attributes:
    """The request's attributes, as the real ``RequestInfoFactory.NewRequestInfo()`` derives them."""
    method = method.upper()
    parts = [part for part in path.strip('/').split('/') if part]
    non_resource = Attributes(verb=method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ('api', 'apis'):
        return non_resource
    prefix, rest = parts[0], parts[1:]
    group = ''
    if prefix == 'apis':
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    via_method = rest[0] not in _SPECIAL_VERBS
    if not via_method:
        verb, rest = rest[0], rest[1:]
        if not rest:
            return non_resource  # the real server answers 404 here
    else:
        verb = {'POST': 'create', 'GET': 'get', 'HEAD': 'get', 'PUT': 'update', 'PATCH': 'patch',
                'DELETE': 'delete'}.get(method, '')
    namespace = ''
    if rest[0] == 'namespaces' and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ''
    subresource = rest[2] if len(rest) >= 3 and verb != 'proxy' else ''
    if via_method and not name and verb == 'get':
        verb = 'watch' if str(params.get('watch', '')).lower() in ('true', '1') else 'list'
        exact = _exact_name(params.get('fieldSelector') or '')
        if exact:
            name = exact
    if via_method and not name and verb == 'delete':
        verb = 'deletecollection'
    return Attributes(verb=verb, resource_request=True, path=path, group=group, version=version,
                      resource=resource, subresource=subresource, namespace=namespace, name=name)


def _exact_name(field_selector: str) -> str:
    for term in field_selector.split(','):
        match = re.fullmatch(r'\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*', term)
        if match and match[1] == 'metadata.name' and match[2] != '!=' and match[3] and '/' not in match[3]:
            return match[3]
    return ''


# --- RBAC rules ----------------------------------------------------------------------------------

def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """``RuleAllows()`` of the real RBAC authorizer."""
    verbs = rule.get('verbs') or []
    if '*' not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return any(url == '*' or url == attrs.path or (url.endswith('*') and attrs.path.startswith(url[:-1]))
                   for url in rule.get('nonResourceURLs') or [])
    groups = rule.get('apiGroups') or []
    if '*' not in groups and attrs.group not in groups:
        return False
    combined = f'{attrs.resource}/{attrs.subresource}' if attrs.subresource else attrs.resource
    if not any(r == '*' or r == combined or (attrs.subresource and r == f'*/{attrs.subresource}')
               for r in rule.get('resources') or []):
        return False
    names = rule.get('resourceNames') or []
    return not names or attrs.name in names


def applies_to(identity: Identity, subject: Mapping[str, Any], binding_namespace: str) -> bool:
    """``appliesToUser()``: does a binding's subject name this identity?"""
    kind, name = subject.get('kind'), subject.get('name')
    if kind == 'User':
        return identity.user == name
    if kind == 'Group':
        return name in identity.groups
    if kind == 'ServiceAccount':
        namespace = subject.get('namespace') or binding_namespace
        return bool(namespace) and identity.user == f'system:serviceaccount:{namespace}:{name}'
    return False


Store = Mapping[tuple[str, str, str | None, str], Mapping[str, Any]]


def _objects(store: Store, plural: str, namespace: str | None = None) -> Iterable[Mapping[str, Any]]:
    for (group, kind, ns, _), obj in list(store.items()):
        if group == RBAC_GROUP and kind == plural and (namespace is None or ns == namespace):
            yield obj


def authorize(identity: Identity, attrs: Attributes, store: Store) -> tuple[bool, str]:
    """(allowed, reason): system:masters, the bootstrap policy, then the stored RBAC objects."""
    if MASTERS in identity.groups:
        return True, ''
    if AUTHENTICATED in identity.groups and any(rule_allows(rule, attrs) for rule in _BOOTSTRAP_RULES):
        return True, ''
    errors: list[str] = []

    def rules_of(role_ref: Mapping[str, Any], namespace: str | None) -> list[Mapping[str, Any]]:
        kind, name = role_ref.get('kind'), role_ref.get('name', '')
        if kind == 'ClusterRole':
            role = store.get((RBAC_GROUP, 'clusterroles', None, name))
        elif kind == 'Role' and namespace:
            role = store.get((RBAC_GROUP, 'roles', namespace, name))
        else:
            role = None
        if role is None:
            errors.append(f'{str(kind).lower()}.{RBAC_GROUP} "{name}" not found')
            return []
        return list(role.get('rules') or [])

    for binding in _objects(store, 'clusterrolebindings'):
        if any(applies_to(identity, s, '') for s in binding.get('subjects') or []):
            if any(rule_allows(rule, attrs) for rule in rules_of(binding.get('roleRef') or {}, None)):
                return True, ''
    if attrs.resource_request and attrs.namespace:
        for binding in _objects(store, 'rolebindings', attrs.namespace):
            if any(applies_to(identity, s, attrs.namespace) for s in binding.get('subjects') or []):
                if any(rule_allows(rule, attrs) for rule in rules_of(binding.get('roleRef') or {}, attrs.namespace)):
                    return True, ''
    return False, ('RBAC: ' + ', '.join(errors)) if errors else ''


def forbidden_status(identity: Identity, attrs: Attributes, reason: str) -> dict[str, Any]:
    """The 403 body the real server sends (``forbiddenMessage()`` + ``NewForbidden()``)."""
    if not attrs.resource_request:
        message = f'User "{identity.user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f'{attrs.resource}/{attrs.subresource}' if attrs.subresource else attrs.resource
        where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else 'at the cluster scope')
        message = (f'User "{identity.user}" cannot {attrs.verb} resource "{resource}" '
                   f'in API group "{attrs.group}" {where}')
    if reason:
        message = f'{message}: {reason}'
    details: dict[str, Any] = {}
    if not attrs.resource_request:
        message = f'forbidden: {message}'
    else:
        qualified = f'{attrs.resource}.{attrs.group}' if attrs.group else attrs.resource
        subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
        message = f'{subject} is forbidden: {message}'
        details = {'group': attrs.group, 'kind': attrs.resource}
        if attrs.name:
            details['name'] = attrs.name
    return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'message': message,
            'reason': 'Forbidden', 'details': details, 'code': 403}


UNAUTHORIZED = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                'message': 'Unauthorized', 'reason': 'Unauthorized', 'code': 401}


@dataclasses.dataclass
class Guard:
    """The emulator's authentication & authorization state: issued tokens and the decisions."""
    tokens: dict[str, Identity] = dataclasses.field(default_factory=lambda: {ADMIN_TOKEN: ADMIN})
    decisions: list[Decision] = dataclasses.field(default_factory=list)

    def issue(self, user: str, groups: Iterable[str] = ()) -> str:
        """A bearer token for ``user`` (one per user and groups: issued again, the same token)."""
        match = _SA_USER.match(user)
        implied = ('system:serviceaccounts', f'system:serviceaccounts:{match.group(1)}') if match else ()
        identity = Identity(user, tuple(dict.fromkeys([*groups, *implied, AUTHENTICATED])))
        for token, known in self.tokens.items():
            if known == identity:
                return token
        token = f'emulator-{secrets.token_hex(16)}'
        self.tokens[token] = identity
        return token

    def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        header = next((value for key, value in headers.items() if key.lower() == 'authorization'), None)
        if header is None:
            return ADMIN  # see the module docstring: anonymous requests act as the admin here
        scheme, _, token = header.strip().partition(' ')
        if scheme.lower() != 'bearer':
            return None
        return self.tokens.get(token.strip())

    def check(self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str],
              store: Store) -> aiohttp.web.Response | None:
        """None if the request may proceed; else the 401/403 response to send."""
        identity = self.authenticate(headers)
        if identity is None:
            return aiohttp.web.json_response(UNAUTHORIZED, status=401)
        attrs = request_attributes(method, path, params)
        allowed, reason = authorize(identity, attrs, store)
        self.decisions.append(Decision(
            user=identity.user, verb=attrs.verb, group=attrs.group, resource=attrs.resource,
            subresource=attrs.subresource, namespace=attrs.namespace, name=attrs.name, path=path,
            allowed=allowed))
        if allowed:
            return None
        return aiohttp.web.json_response(forbidden_status(identity, attrs, reason), status=403)
