"""
Admission of custom resources for ``KubeEmulator``, as kube-apiserver's apiextensions handler does it.

Every client write of a custom resource — create (POST), update (PUT), each patch type and
``/status`` writes — passes here before it is stored:

1. **Unknown fields** (``fieldValidation`` query parameter, default ``Warn``): fields the CRD's
   structural schema does not declare (and that no ``x-kubernetes-preserve-unknown-fields``
   keeps), and unknown top-level ``metadata`` fields, are pruned. ``Strict`` answers 400
   BadRequest instead — ``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding
   error: unknown field "spec.foo"`` for POST/PUT, ``strict decoding error: unknown field
   "spec.foo"`` for patches — ``Warn`` adds a ``Warning: 299 - "unknown field \\"spec.foo\\""``
   response header, ``Ignore`` prunes silently. A server-side apply patch with unknown fields
   fails as on the real server (500 ``failed to create typed patch object ...: .spec.foo: field
   not declared in schema``).
2. **Defaults** of the schema are applied (and to stored objects when their CRD changes, as the
   real server applies them when it reads an object from etcd).
3. **Validation** (``crdschema.py``): OpenAPI v3 schema and CEL
   ``x-kubernetes-validations``; transition rules (``oldSelf``) see the stored object on updates.
   Main-resource writes are validated without ``status`` (when the status subresource is on),
   ``/status`` writes validate the status (the rest is the stored object). Failures answer 422
   Invalid with ``details.causes[]`` (``reason`` FieldValueInvalid, FieldValueRequired, ...,
   ``field``, ``message``) and the real message, e.g. ``ModelDeployment.serving.headway.dev "x"
   is invalid: spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or
   equal to 0``. On updates, errors on values the write did not change are dropped (validation
   ratcheting, on by default since Kubernetes 1.30).

It also serves the OpenAPI documents of the installed CRDs, which kubectl needs before it writes:
``/openapi/v3`` (discovery: ``{"paths": {"apis/G/V": {"serverRelativeURL": ...}}}``), the per
group-version documents (``components.schemas`` named ``<reversed group>.<version>.<Kind>`` with
``x-kubernetes-group-version-kind``; PATCH operations that list ``fieldValidation``, so kubectl
uses server-side field validation and no client-side schema) and ``/openapi/v2`` as JSON
(protobuf, which kubectl asks for, is answered 406).

Approximations: internal writes (simulated controllers, garbage collection) are not admitted;
a rule the CEL library cannot evaluate is skipped (recorded in ``Admission.gaps``), not refused;
ratcheting compares values by path (list items by index, not only by map keys); unknown fields
under ``.status`` of a main-resource write are pruned without being reported; an invalid
``fieldValidation`` value is treated as ``Warn`` (the real server answers 422); built-in kinds
are not admitted here and have no OpenAPI documents.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Iterator, MutableMapping
from typing import Any

import kmock
from kmock._internal.rendering import Response

from headway.sandbox.apiserver import crdschema

GroupPlural = tuple[str, str]

REASONS = {  # field.ErrorType values, as in Status.details.causes[].reason
    crdschema.REQUIRED: 'FieldValueRequired',
    crdschema.INVALID: 'FieldValueInvalid',
    crdschema.NOT_SUPPORTED: 'FieldValueNotSupported',
    crdschema.DUPLICATE: 'FieldValueDuplicate',
    crdschema.FORBIDDEN: 'FieldValueForbidden',
    crdschema.TOO_LONG: 'FieldValueTooLong',
    crdschema.TOO_MANY: 'FieldValueTooMany',
    crdschema.TYPE_INVALID: 'FieldValueTypeInvalid',
}
DIRECTIVES = ('Ignore', 'Warn', 'Strict')
APPLY_PATCH = 'application/apply-patch'
_MISSING: Any = object()
logger = logging.getLogger(__name__)


def _api_error(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Exception:
    from headway.sandbox.apiserver.server import ApiError  # imported late: server.py imports this module
    return ApiError(code, reason, message, details)


@dataclasses.dataclass
class Scope:
    """One client request being served: how it asked for field validation, its warnings."""
    method: str
    content_type: str
    directive: str
    warnings: list[str] = dataclasses.field(default_factory=list)

    def respond(self, response: Response) -> Response:
        """The response, with the ``Warning`` header if the request earned warnings."""
        if not self.warnings:
            return response
        text = ', '.join('299 - ' + json.dumps(w) for w in self.warnings)
        headers = {**(response.headers or {}), 'Warning': text}
        return Response(status=response.status, reason=response.reason, payload=response.payload,
                        cookies=response.cookies, headers=headers)


@dataclasses.dataclass
class Admission:
    """The CRDs' validators and the request being served; see the module docstring."""
    validators: dict[GroupPlural, crdschema.CrdValidator] = dataclasses.field(default_factory=dict)
    gaps: list[str] = dataclasses.field(default_factory=list)  # CEL rules skipped (library gaps)
    scope: Scope | None = None

    # --- Registration ----------------------------------------------------------------------------

    def register(self, crd: dict[str, Any], store: MutableMapping[Any, dict[str, Any]]) -> None:
        """(Re-)register a CRD; stored objects get the defaults of its (new) schema, as on read."""
        spec = crd['spec']
        key = (spec['group'], spec['names']['plural'])
        validator = crdschema.CrdValidator(copy.deepcopy(crd))
        self.validators[key] = validator
        for obj_key, obj in list(store.items()):
            if tuple(obj_key[:2]) == key:
                version = str(obj.get('apiVersion', '')).rpartition('/')[2]
                if validator.version_entry(version) is None:
                    continue
                fresh = copy.deepcopy(obj)
                crdschema._prune_unknown(fresh, validator.schema(version), (), [], root=True)
                crdschema.apply_schema_defaults(fresh, validator.schema(version))
                if fresh != obj:
                    store[obj_key] = fresh

    # --- Requests --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def request(self, request: kmock.Request) -> Iterator[Scope]:
        """Serve one client request: its writes are admitted, its warnings collected."""
        directive = str(request.params.get('fieldValidation') or 'Warn')
        scope = Scope(method=request.method.value.upper(), directive=directive if directive in DIRECTIVES else 'Warn',
                      content_type=request.headers.get('Content-Type', ''))
        previous, self.scope = self.scope, scope
        try:
            yield scope
        finally:
            self.scope = previous

    def admit(self, obj: dict[str, Any], old: dict[str, Any] | None, *,
              status_only: bool = False) -> dict[str, Any]:
        """The object to store for a client's write of ``obj`` (``old``: the stored one, None on a
        create), or an ApiError. Other writes and built-in kinds pass unchanged."""
        group, _, version = str(obj.get('apiVersion', '')).rpartition('/')
        plural = self._plural(group, str(obj.get('kind', '')))
        validator = self.validators.get((group, plural)) if plural else None
        if validator is None or self.scope is None or validator.version_entry(version) is None:
            return obj
        scope, kind, name = self.scope, str(obj['kind']), str(obj['metadata'].get('name', ''))
        review = validator.review(obj, version, subresource='status' if status_only else None, old=old)
        stored = review.obj
        if not status_only and self._has_status(validator, version) and 'status' in obj:
            stored['status'] = copy.deepcopy(obj['status'])  # the main resource keeps the status

        unknown = sorted(err.path for err in review.unknown)
        if unknown and APPLY_PATCH in scope.content_type:
            ns = obj['metadata'].get('namespace') or ''
            raise _api_error(500, 'InternalError', f'failed to create typed patch object ({ns}/{name}; '
                             f'{group}/{version}, Kind={kind}): .{unknown[0]}: field not declared in schema')
        if unknown and scope.directive == 'Strict':
            strict = 'strict decoding error: ' + ', '.join(f'unknown field "{path}"' for path in unknown)
            if scope.method == 'PATCH':
                raise _api_error(400, 'BadRequest', strict)
            raise _api_error(400, 'BadRequest', f'{kind} in version "{version}" cannot be handled as a {kind}: {strict}')
        if scope.directive == 'Warn':
            scope.warnings += [f'unknown field "{path}"' for path in unknown]
        if unknown:
            logger.info('%s %s %s/%s: pruned unknown fields %s', scope.method, kind, obj['metadata'].get('namespace'),
                        name, ', '.join(unknown))

        errors = []
        for err in review.errors:
            if err.type == crdschema.CEL_GAP:
                self.gaps.append(str(err))
            elif old is None or not _unchanged(err.path, stored, old):
                errors.append(err)
        if errors and all(not e.path for e in errors) and any(not e.path for e in review.errors) and \
                len(errors) < len(review.errors):
            errors = []  # only "some validation rules were not checked" is left: its cause ratcheted
        if errors:
            error = invalid(kind, group, name, errors)
            logger.info('%s %s %s/%s refused: %s', scope.method, kind, obj['metadata'].get('namespace'), name, error)
            raise error
        return stored

    def _plural(self, group: str, kind: str) -> str | None:
        for (g, plural), validator in self.validators.items():
            if g == group and validator.kind == kind:
                return plural
        return None

    @staticmethod
    def _has_status(validator: crdschema.CrdValidator, version: str) -> bool:
        entry = validator.version_entry(version) or {}
        return 'status' in (entry.get('subresources') or (validator.crd.get('spec') or {}).get('subresources') or {})

    # --- OpenAPI ---------------------------------------------------------------------------------

    @staticmethod
    def is_openapi_request(request: kmock.Request) -> bool:
        return request.url.path.rstrip('/') in ('/openapi/v2', '/openapi/v3') or \
            request.url.path.startswith('/openapi/v3/')

    def serve_openapi(self, request: kmock.Request) -> Response:
        path = request.url.path.rstrip('/')
        if path == '/openapi/v2':
            accept = request.headers.get('Accept', '')
            if 'protobuf' in accept and 'json' not in accept:
                return Response(status=406, payload=_status(406, 'NotAcceptable',
                                'the emulator serves /openapi/v2 as JSON only'))
            return Response(status=200, payload=self.openapi_v2())
        if path == '/openapi/v3':
            return Response(status=200, payload={'paths': {
                f'apis/{group}/{version}': {'serverRelativeURL': f'/openapi/v3/apis/{group}/{version}?hash={_hash(doc)}'}
                for (group, version), doc in sorted(self._documents().items())}})
        match = re.fullmatch(r'/openapi/v3/apis/([^/]+)/([^/]+)', path)
        document = self._documents().get((match[1], match[2])) if match else None
        if document is None:
            return Response(status=404, payload=_status(404, 'NotFound', 'the server could not find the requested resource'))
        return Response(status=200, payload=document)

    def _documents(self) -> dict[tuple[str, str], dict[str, Any]]:
        """An OpenAPI v3 document per group-version the CRDs serve, as the CRD builder makes them."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for (group, plural), validator in sorted(self.validators.items()):
            spec = validator.crd['spec']
            for entry in spec.get('versions') or []:
                if not entry.get('served', True):
                    continue
                doc = out.setdefault((group, entry['name']), {
                    'openapi': '3.0.0', 'info': {'title': 'Kubernetes CRD Swagger', 'version': 'v0.1.0'},
                    'paths': {}, 'components': {'schemas': copy.deepcopy(_META_SCHEMAS)}})
                _add_resource(doc, validator, entry, plural)
        return out

    def openapi_v2(self) -> dict[str, Any]:
        """The same, merged into one Swagger 2.0 document (``#/definitions/...`` references)."""
        paths: dict[str, Any] = {}
        definitions: dict[str, Any] = {}
        for doc in self._documents().values():
            text = json.dumps(doc).replace('#/components/schemas/', '#/definitions/')
            converted = json.loads(text)
            definitions.update(converted['components']['schemas'])
            for path, item in converted['paths'].items():
                paths[path] = {verb: _v2_operation(op) for verb, op in item.items()}
        return {'swagger': '2.0', 'info': {'title': 'Kubernetes', 'version': 'v1.32.0'},
                'paths': paths, 'definitions': definitions}


def invalid(kind: str, group: str, name: str, errors: list[crdschema.FieldError]) -> Exception:
    """errors.NewInvalid: 422 with one cause per field error and the aggregated message."""
    causes, messages = [], []
    for err in errors:
        text = str(err)
        field = err.path or '<nil>'
        body = text[len(field) + 2:] if text.startswith(field + ': ') else text
        causes.append({'reason': REASONS.get(err.type, 'FieldValueInvalid'), 'message': body, 'field': field})
        if text not in messages:
            messages.append(text)
    aggregated = messages[0] if len(messages) == 1 else '[' + ', '.join(messages) + ']'
    return _api_error(422, 'Invalid', f'{kind}.{group} "{name}" is invalid: {aggregated}',
                      {'name': name, 'group': group, 'kind': kind, 'causes': causes})


# --- Ratcheting --------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\.?([^.\[\]]+)|\[([^\]]*)\]')


def _resolve(obj: Any, path: str) -> Any:
    for name, index in _TOKEN.findall(path):
        part = name or index
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def _unchanged(path: str, new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether an error's field has the same value (or is missing under the same parent) as before."""
    if not path or path == '<nil>':
        return False
    a, b = _resolve(new, path), _resolve(old, path)
    if a is _MISSING and b is _MISSING:
        parent = path[:max(path.rfind('.'), path.rfind('['), 0)]
        return bool(parent) and _resolve(new, parent) == _resolve(old, parent) is not _MISSING
    return a is not _MISSING and a == b


# --- OpenAPI documents ---------------------------------------------------------------------------------

def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'Status', 'metadata': {}, 'status': 'Failure',
            'message': message, 'reason': reason, 'code': code}


def schema_name(group: str, version: str, kind: str) -> str:
    """How the API server names a kind's schema: ``dev.headway.serving.v1alpha1.ModelDeployment``."""
    return '.'.join([*reversed(group.split('.')), version, kind])


META = 'io.k8s.apimachinery.pkg.apis.meta.v1'
_REF = '#/components/schemas/'
_TYPE_META = {
    'apiVersion': {'type': 'string', 'description': 'APIVersion defines the versioned schema of this representation '
                   'of an object. Servers should convert recognized schemas to the latest internal value, and may '
                   'reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/'
                   'sig-architecture/api-conventions.md#resources'},
    'kind': {'type': 'string', 'description': 'Kind is a string value representing the REST resource this object '
             'represents. Servers may infer this from the endpoint the client submits requests to. Cannot be '
             'updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/'
             'api-conventions.md#types-kinds'},
}
_STRING_MAP = {'type': 'object', 'additionalProperties': {'type': 'string', 'default': ''}}
_META_SCHEMAS: dict[str, Any] = {
    f'{META}.ObjectMeta': {
        'type': 'object',
        'description': 'ObjectMeta is metadata that all persisted resources must have, which includes all objects '
                       'users must create.',
        'properties': {
            'name': {'type': 'string', 'description': 'Name must be unique within a namespace.'},
            'generateName': {'type': 'string', 'description': 'An optional prefix used by the server to generate '
                             'a unique name, if the Name field has not been provided.'},
            'namespace': {'type': 'string', 'description': 'Namespace defines the space within which each name '
                          'must be unique.'},
            'uid': {'type': 'string', 'description': 'UID is the unique in time and space value for this object.'},
            'resourceVersion': {'type': 'string', 'description': 'An opaque value that represents the internal '
                                'version of this object.'},
            'generation': {'type': 'integer', 'format': 'int64', 'description': 'A sequence number representing a '
                           'specific generation of the desired state.'},
            'creationTimestamp': {'allOf': [{'$ref': f'{_REF}{META}.Time'}], 'description': 'When this object was created.'},
            'deletionTimestamp': {'allOf': [{'$ref': f'{_REF}{META}.Time'}], 'description': 'When this resource will '
                                  'be deleted.'},
            'deletionGracePeriodSeconds': {'type': 'integer', 'format': 'int64'},
            'labels': {**_STRING_MAP, 'description': 'Map of string keys and values that can be used to organize '
                       'and categorize (scope and select) objects.'},
            'annotations': {**_STRING_MAP, 'description': 'Annotations is an unstructured key value map stored with '
                            'a resource that may be set by external tools to store and retrieve arbitrary metadata.'},
            'finalizers': {'type': 'array', 'items': {'type': 'string', 'default': ''},
                           'x-kubernetes-list-type': 'set', 'description': 'Must be empty before the object is '
                           'deleted from the registry.'},
            'ownerReferences': {'type': 'array', 'items': {'default': {}, 'allOf': [{'$ref': f'{_REF}{META}.OwnerReference'}]},
                                'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['uid'],
                                'description': 'List of objects depended by this object.'},
            'managedFields': {'type': 'array', 'items': {'default': {}, 'allOf': [{'$ref': f'{_REF}{META}.ManagedFieldsEntry'}]},
                              'description': 'ManagedFields maps workflow-id and version to the set of fields that '
                              'are managed by that workflow.'},
        },
    },
    f'{META}.ListMeta': {
        'type': 'object', 'description': 'ListMeta describes metadata that synthetic resources must have.',
        'properties': {'continue': {'type': 'string'}, 'remainingItemCount': {'type': 'integer', 'format': 'int64'},
                       'resourceVersion': {'type': 'string'}, 'selfLink': {'type': 'string'}},
    },
    f'{META}.OwnerReference': {
        'type': 'object', 'required': ['apiVersion', 'kind', 'name', 'uid'],
        'description': 'OwnerReference contains enough information to let you identify an owning object.',
        'properties': {'apiVersion': {'type': 'string', 'default': ''}, 'kind': {'type': 'string', 'default': ''},
                       'name': {'type': 'string', 'default': ''}, 'uid': {'type': 'string', 'default': ''},
                       'controller': {'type': 'boolean'}, 'blockOwnerDeletion': {'type': 'boolean'}},
        'x-kubernetes-map-type': 'atomic',
    },
    f'{META}.ManagedFieldsEntry': {
        'type': 'object', 'description': 'ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of '
        'the resource that the fieldset applies to.',
        'properties': {'apiVersion': {'type': 'string'}, 'fieldsType': {'type': 'string'},
                       'fieldsV1': {'type': 'object'}, 'manager': {'type': 'string'}, 'operation': {'type': 'string'},
                       'subresource': {'type': 'string'}, 'time': {'allOf': [{'$ref': f'{_REF}{META}.Time'}]}},
    },
    f'{META}.Time': {'type': 'string', 'format': 'date-time', 'description': 'Time is a wrapper around time.Time '
                     'which supports correct marshaling to YAML and JSON.'},
    f'{META}.Patch': {'type': 'object', 'description': 'Patch is provided to give a concrete name and type to the '
                      'Kubernetes PATCH request body.'},
    f'{META}.Status': {
        'type': 'object', 'description': 'Status is a return value for calls that don\'t return other objects.',
        'properties': {'apiVersion': {'type': 'string'}, 'code': {'type': 'integer', 'format': 'int32'},
                       'details': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
                       'kind': {'type': 'string'}, 'message': {'type': 'string'},
                       'metadata': {'allOf': [{'$ref': f'{_REF}{META}.ListMeta'}], 'default': {}},
                       'reason': {'type': 'string'}, 'status': {'type': 'string'}},
    },
    f'{META}.DeleteOptions': {
        'type': 'object', 'description': 'DeleteOptions may be provided when deleting an API object.',
        'properties': {'apiVersion': {'type': 'string'}, 'dryRun': {'type': 'array', 'items': {'type': 'string'}},
                       'gracePeriodSeconds': {'type': 'integer', 'format': 'int64'}, 'kind': {'type': 'string'},
                       'orphanDependents': {'type': 'boolean'}, 'preconditions': {'type': 'object'},
                       'propagationPolicy': {'type': 'string'}},
    },
}


def _query(name: str, description: str, type_: str = 'string') -> dict[str, Any]:
    return {'name': name, 'in': 'query', 'description': description, 'schema': {'type': type_, 'uniqueItems': True}}


_DRY_RUN = _query('dryRun', 'When present, indicates that modifications should not be persisted.')
_FIELD_MANAGER = _query('fieldManager', 'fieldManager is a name associated with the actor or entity that is making '
                        'these changes.')
_FIELD_VALIDATION = _query('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the '
                           'request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: '
                           '- Ignore - Warn (the default) - Strict')
_FORCE = _query('force', 'Force is going to "force" Apply requests.', 'boolean')
_PATCH_TYPES = ('application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml')


def _add_resource(doc: dict[str, Any], validator: crdschema.CrdValidator, entry: dict[str, Any], plural: str) -> None:
    spec = validator.crd['spec']
    group, version, kind = spec['group'], entry['name'], spec['names']['kind']
    list_kind = spec['names'].get('listKind') or f'{kind}List'
    name, list_name = schema_name(group, version, kind), schema_name(group, version, list_kind)
    gvk = {'group': group, 'version': version, 'kind': kind}

    schema = copy.deepcopy(validator.schema(version))
    props = schema.setdefault('properties', {})
    props.update(copy.deepcopy(_TYPE_META))
    props['metadata'] = {'allOf': [{'$ref': f'{_REF}{META}.ObjectMeta'}], 'description': "Standard object's metadata. "
                         'More info: https://git.k8s.io/community/contributors/devel/sig-architecture/'
                         'api-conventions.md#metadata'}
    schema['x-kubernetes-group-version-kind'] = [gvk]
    schemas = doc['components']['schemas']
    schemas[name] = schema
    schemas[list_name] = {
        'type': 'object', 'required': ['items'], 'description': f'{list_kind} is a list of {kind}',
        'properties': {**copy.deepcopy(_TYPE_META),
                       'items': {'type': 'array', 'items': {'$ref': f'{_REF}{name}'},
                                 'description': f'List of {plural}. More info: https://git.k8s.io/community/'
                                 'contributors/devel/api-conventions.md'},
                       'metadata': {'allOf': [{'$ref': f'{_REF}{META}.ListMeta'}], 'description': 'Standard list metadata.'}},
        'x-kubernetes-group-version-kind': [{**gvk, 'kind': list_kind}],
    }

    def op(action: str, op_kind: str, response: str, *params: dict[str, Any], body: tuple[str, ...] = ()) -> dict[str, Any]:
        operation: dict[str, Any] = {
            'tags': [f'{group.split(".")[0]}_{version}'], 'operationId': f'{action}{kind}',
            'parameters': list(params),
            'responses': {'200': {'description': 'OK', 'content': {
                'application/json': {'schema': {'$ref': f'{_REF}{response}'}},
                'application/yaml': {'schema': {'$ref': f'{_REF}{response}'}}}}},
            'x-kubernetes-action': action, 'x-kubernetes-group-version-kind': {**gvk, 'kind': op_kind},
        }
        if body:
            ref = f'{META}.Patch' if action == 'patch' else name
            operation['requestBody'] = {'content': {t: {'schema': {'$ref': f'{_REF}{ref}'}} for t in body}, 'required': True}
        return operation

    namespaced = spec.get('scope', 'Namespaced') == 'Namespaced'
    base = f'/apis/{group}/{version}'
    collection = f'{base}/namespaces/{{namespace}}/{plural}' if namespaced else f'{base}/{plural}'
    write = (_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION)
    if namespaced:
        doc['paths'][f'{base}/{plural}'] = {'get': op('list', kind, list_name)}
    doc['paths'][collection] = {
        'get': op('list', kind, list_name),
        'post': op('post', kind, name, *write, body=('application/json', 'application/yaml')),
        'delete': op('deletecollection', kind, f'{META}.Status'),
    }
    item = {
        'get': op('get', kind, name),
        'put': op('put', kind, name, *write, body=('application/json', 'application/yaml')),
        'patch': op('patch', kind, name, *write, _FORCE, body=_PATCH_TYPES),
        'delete': op('delete', kind, f'{META}.Status'),
    }
    doc['paths'][f'{collection}/{{name}}'] = item
    if Admission._has_status(validator, version):
        doc['paths'][f'{collection}/{{name}}/status'] = {verb: item[verb] for verb in ('get', 'put', 'patch')}


def _v2_operation(op: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in op.items() if key not in ('requestBody', 'responses', 'parameters')}
    out['parameters'] = [{'name': p['name'], 'in': p['in'], 'type': p['schema']['type'], 'uniqueItems': True,
                          'description': p['description']} for p in op.get('parameters', [])]
    if 'requestBody' in op:
        content = op['requestBody']['content']
        out['consumes'] = list(content)
        out['parameters'].append({'name': 'body', 'in': 'body', 'required': True,
                                  'schema': next(iter(content.values()))['schema']})
    out['produces'] = ['application/json', 'application/yaml']
    out['responses'] = {'200': {'description': 'OK', 'schema': op['responses']['200']['content']['application/json']['schema']}}
    return out
