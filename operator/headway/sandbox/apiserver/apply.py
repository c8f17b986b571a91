"""
Server-side apply and ``metadata.managedFields`` for the Kubernetes API emulator.

What a real kube-apiserver does, and this module reproduces (on plain JSON values, without the
Go type system):

* Every write records who set which fields. ``managedFields`` holds one entry per
  (manager, operation ``Apply``/``Update``, apiVersion — for ``Update`` only —, subresource), each
  with ``fieldsType: FieldsV1``, ``fieldsV1`` (``f:<field>``, ``k:{"name":"main"}`` for items of
  associative lists, ``v:<json>`` for items of sets, ``.`` for a node that is itself owned and has
  owned children) and ``time``. The entries are sorted by operation, time, manager, apiVersion,
  subresource.
* Non-apply writes (create, PUT, merge/JSON/strategic patches, ``/status`` writes) are
  ``Update``s: the writer takes every field it added or changed (away from everybody else); a
  removed field is dropped from every entry; the entry's time moves only if it took a field.
  The manager is the ``fieldManager`` query parameter, else the User-Agent up to the first ``/``
  (non-printable characters dropped, at most 128) — e.g. ``kubectl`` for kubectl's own User-Agent
  (its commands send ``fieldManager`` explicitly: ``kubectl-edit``, ``kubectl-client-side-apply``,
  ``kubectl-annotate``, ``kubectl-label``, ``kubectl-patch``…), ``Python`` for aiohttp,
  ``OpenAPI-Generator`` for the ``kubernetes`` client, ``kopf`` for kopf.
* Apply (``PATCH`` with ``application/apply-patch+yaml``, YAML or JSON body): ``fieldManager``
  is required (422 ``PatchOptions.meta.k8s.io "" is invalid``); ``force`` on any other patch is
  422 too. The body must name the same kind and apiVersion (400 ``invalid object type: …``),
  carry no ``managedFields`` (400 ``metadata.managedFields must be nil``), and the name/namespace
  of the URL (400). A missing object is created (201). The applied configuration is merged into
  the live object (maps per key, associative lists per key, sets per value, atomic values
  replaced); the applier then owns exactly the fields of its configuration; a field it applied
  before and no longer applies is removed unless another manager owns it (then merely disowned).
  Changing (or adding) a field another manager owns is a 409 Conflict — ``details.causes`` with
  ``reason: FieldManagerConflict``, ``message: conflict with "kubectl-edit" using apps/v1`` and
  ``field: .spec.replicas``, message ``Apply failed with 1 conflict: conflict with …: <field>`` —
  unless ``force=true``, which takes the field over. Applying the same value co-owns it.
  An apply that changes no value moves no time; if it changes no ownership either, the object is
  not written at all (no resourceVersion, no watch event).
* Field semantics come from a schema. Custom resources: the CRD's ``openAPIV3Schema``
  (``x-kubernetes-list-type`` ``map`` with ``x-kubernetes-list-map-keys`` — key defaults from the
  item schema —, ``set``, ``atomic``, the default; ``x-kubernetes-map-type: atomic``; unknown
  fields under ``x-kubernetes-preserve-unknown-fields``: lists atomic, maps granular). Built-in
  kinds: the merge keys of ``patch.MERGE_KEYS`` (containers/env/volumes by name,
  volumeMounts by mountPath, conditions by type, ownerReferences by uid…), container ports by
  (containerPort, protocol) and Service ports by (port, protocol) with protocol defaulting to TCP,
  ``metadata.finalizers`` a set, label selectors and ``nodeSelector`` atomic, every other list
  atomic; ``metadata`` of custom resources is treated as the built-in ObjectMeta.
* Status: with the status subresource on, main-resource writes neither own nor change
  ``.status``, and ``/status`` writes own only ``.status``, in entries with ``subresource: status``.

Sources: the Kubernetes documentation "Server-Side Apply"
(https://kubernetes.io/docs/reference/using-api/server-side-apply/: field management, conflicts,
merge strategy, list/map types); kubernetes/kubernetes
``staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/`` (``structuredmerge.go``: the
400 errors; ``conflict.go``: the conflict Status and its messages; ``fieldmanager.go``: managed
fields of the request body vs the live object; ``stripmeta.go``, ``managedfieldsupdater.go``,
``versioncheck.go``); ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``
(``ValidatePatchOptions``, ``managerOrUserAgent``, create-on-apply, ``checkName``);
sigs.k8s.io/structured-merge-diff ``merge/update.go`` (``Apply``/``Update``/``prune``,
``addBackOwnedItems``, ``addBackDanglingItems``), ``typed/merge.go`` (list merge order),
``typed/compare.go``, ``typed/tofieldset.go`` and ``fieldpath/serialize.go`` (FieldsV1).

Approximate: the Go types are not known — only the tables above —, so e.g. an omitted optional
struct and an empty one are the same, any map field counts as a "named field" when pruning, and
``.`` marks appear on every newly added map/list (real servers omit it for non-pointer structs;
``spec``/``status`` of built-ins are special-cased); ``null`` in an applied configuration is
ignored (no opinion); no version conversion of field sets (all apiVersions share one set
format); no cap on the number of ``Update`` entries (real: 10, then "ancient-changes"); no
migration of ``kubectl.kubernetes.io/last-applied-configuration``; no strict field validation of
applied configurations.
"""
import contextlib
import contextvars
import copy
import dataclasses
import datetime
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import yaml

from headway.sandbox.apiserver import patch as patching

Path = tuple[str, ...]  # FieldsV1 path elements: 'f:spec', 'k:{"name":"main"}', 'v:"x"', 'i:0'

FIELD_MANAGER_MAX_LENGTH = 128
# Never in a field set (structured-merge-diff's stripmeta.go): exact paths and whole subtrees.
_STRIPPED_EXACT: set[Path] = {('f:metadata',)}
_STRIPPED_TREES: set[Path] = {('f:apiVersion',), ('f:kind',)} | {
    ('f:metadata', f'f:{name}') for name in ('name', 'namespace', 'creationTimestamp', 'selfLink', 'uid',
                                             'clusterName', 'generation', 'managedFields', 'resourceVersion')}
# Non-pointer structs of the Go types are never "added": no `.` for them.
_BUILTIN_STRUCT_ROOTS: set[Path] = {('f:spec',), ('f:status',)}

# Associative lists of built-in kinds (Go `+listType=map`), by field name.
BUILTIN_LIST_KEYS: dict[str, tuple[str, ...]] = {
    **{field: keys for field, keys in patching.MERGE_KEYS.items() if field != 'ports'},
    'topologySpreadConstraints': ('topologyKey', 'whenUnsatisfiable'),
    'hostAliases': ('ip',),
    'resourceClaims': ('name',),
    'schedulingGates': ('name',),
}
_KEY_DEFAULTS = {'protocol': 'TCP'}
_CONTAINER_LISTS = {'containers', 'initContainers', 'ephemeralContainers'}
_BUILTIN_ATOMIC_MAPS = {'selector', 'labelSelector', 'namespaceSelector', 'nodeSelector', 'podSelector'}


class ApplyError(Exception):
    """An error the API server answers with a Status (mapped to ``ApiError`` by the emulator)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


class _BadList(Exception):
    pass


# --- Who writes ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Writer:
    """The manager of the current write; ``managed_fields`` is set by an apply (already computed)."""
    manager: str
    api_version: str
    subresource: str = ''
    operation: str = 'Update'
    managed_fields: tuple[dict[str, Any], ...] | None = None


_WRITER: contextvars.ContextVar[Writer | None] = contextvars.ContextVar('emulator_writer', default=None)


@contextlib.contextmanager
def writing(writer: Writer | None) -> Iterator[None]:
    """Attribute the writes inside to ``writer`` (the request's manager, or a simulated controller)."""
    token = _WRITER.set(writer)
    try:
        yield
    finally:
        _WRITER.reset(token)


def current_writer() -> Writer | None:
    return _WRITER.get()


def manager_from(params: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """``fieldManager``, else the User-Agent's prefix, as ``managerOrUserAgent`` does."""
    if params.get('fieldManager'):
        return params['fieldManager']
    agent = next((value for name, value in headers.items() if name.lower() == 'user-agent'), '')
    prefix = ''
    for char in agent.split('/')[0]:
        if not char.isprintable():
            continue
        if len((prefix + char).encode()) > FIELD_MANAGER_MAX_LENGTH:
            break
        prefix += char
    return prefix


def request_writer(params: Mapping[str, str], headers: Mapping[str, str], api_version: str,
                   subresource: str | None) -> Writer:
    return Writer(manager_from(params, headers), api_version, subresource or '')


def validate_patch_options(apply: bool, params: Mapping[str, str]) -> None:
    """``ValidatePatchOptions``: apply needs a fieldManager; only apply may say ``force``."""
    errors = []
    if apply and not params.get('fieldManager'):
        errors.append(('fieldManager', 'FieldValueRequired', 'Required value: is required for apply patch'))
    if not apply and 'force' in params:
        errors.append(('force', 'FieldValueForbidden', 'Forbidden: may not be specified for non-apply patch'))
    if len(params.get('fieldManager', '').encode()) > FIELD_MANAGER_MAX_LENGTH:
        errors.append(('fieldManager', 'FieldValueTooLong',
                       f'Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes'))
    if errors:
        text = ', '.join(f'{field}: {message}' for field, _, message in errors)
        message = f'PatchOptions.meta.k8s.io "" is invalid: {text if len(errors) == 1 else "[" + text + "]"}'
        raise ApplyError(422, 'Invalid', message, {'group': 'meta.k8s.io', 'kind': 'PatchOptions', 'causes': [
            {'reason': reason, 'message': msg, 'field': field} for field, reason, msg in errors]})


# --- Field semantics ---------------------------------------------------------------------------------

class Types:
    """How the fields of one resource merge: from a CRD schema, or the built-in tables."""

    def __init__(self, group: str, plural: str, schema: Mapping[str, Any] | None = None, *,
                 custom: bool = False) -> None:
        self.group, self.plural, self.schema, self.custom = group, plural, schema, custom

    def _node(self, spath: tuple[str, ...]) -> Mapping[str, Any] | None:
        node: Any = self.schema
        for part in spath:
            if not isinstance(node, Mapping):
                return None
            if part == '*':
                node = node.get('items')
            elif part in (node.get('properties') or {}):
                node = node['properties'][part]
            elif isinstance(node.get('additionalProperties'), Mapping):
                node = node['additionalProperties']
            else:
                return None  # an unknown field (x-kubernetes-preserve-unknown-fields)
        return node if isinstance(node, Mapping) else None

    def _builtin(self, spath: tuple[str, ...]) -> bool:
        return not self.custom or spath[:1] == ('metadata',)

    def list_type(self, spath: tuple[str, ...]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """('atomic'|'set'|'map', map keys, key defaults) of the list at ``spath``."""
        if self._builtin(spath):
            field = spath[-1] if spath else ''
            if spath == ('metadata', 'finalizers'):
                return 'set', (), {}
            if field == 'ports':
                if self.plural == 'services' and spath == ('spec', 'ports'):
                    return 'map', ('port', 'protocol'), _KEY_DEFAULTS
                if len(spath) >= 3 and spath[-3] in _CONTAINER_LISTS:
                    return 'map', ('containerPort', 'protocol'), _KEY_DEFAULTS
                return 'atomic', (), {}
            if field in BUILTIN_LIST_KEYS:
                return 'map', BUILTIN_LIST_KEYS[field], {}
            return 'atomic', (), {}
        node = self._node(spath)
        if node is None:
            return 'atomic', (), {}
        kind = node.get('x-kubernetes-list-type', 'atomic')
        if kind != 'map':
            return kind, (), {}
        keys = tuple(node.get('x-kubernetes-list-map-keys') or ())
        item_props = ((node.get('items') or {}).get('properties') or {})
        defaults = {k: item_props[k]['default'] for k in keys if 'default' in (item_props.get(k) or {})}
        return 'map', keys, defaults

    def atomic_map(self, spath: tuple[str, ...]) -> bool:
        if self._builtin(spath):
            return bool(spath) and spath[-1] in _BUILTIN_ATOMIC_MAPS
        node = self._node(spath)
        return node is not None and node.get('x-kubernetes-map-type') == 'atomic'

    # -- Walking values --

    def children(self, value: Any, spath: tuple[str, ...], *, strict: bool) -> dict[str, Any] | None:
        """The separately owned children of a value by path element; None for atomic values."""
        if isinstance(value, dict):
            if self.atomic_map(spath):
                return None
            return {f'f:{key}': child for key, child in value.items() if child is not None}
        if isinstance(value, list):
            kind, keys, defaults = self.list_type(spath)
            if kind == 'atomic':
                return None
            out: dict[str, Any] = {}
            for index, item in enumerate(value):
                pe = _item_pe(item, kind, keys, defaults)
                if pe is None or pe in out:
                    if not strict:
                        return None  # a live list that does not fit its schema: treat as atomic
                    path = '.' + '.'.join(spath)
                    if pe is None:
                        missing = next((k for k in keys if not isinstance(item, dict) or item.get(k) is None), '')
                        raise _BadList(f'{path}: element {index}: associative list with keys has an element '
                                       f'that omits key field "{missing}" (and doesn\'t have default value)')
                    raise _BadList(f'{path}: duplicate entries for key {path_string((pe,))}')
                out[pe] = item
            return out
        return None

    def field_set(self, value: Any, *, strict: bool = False, spath: tuple[str, ...] = (),
                  path: Path = ()) -> set[Path]:
        """The fields a value sets: leaves, atomic values and list items (``ToFieldSet``)."""
        out: set[Path] = set()
        children = self.children(value, spath, strict=strict)
        if children is None:
            if path:
                out.add(path)
            return out
        for pe, child in children.items():
            child_path = path + (pe,)
            if pe[0] in 'kv':
                out.add(child_path)
            out |= self.field_set(child, strict=strict, spath=_descend(spath, pe), path=child_path)
        return out

    def merge(self, live: Any, config: Any, spath: tuple[str, ...] = ()) -> Any:
        """The applied configuration merged into the live value (``TypedValue.Merge``)."""
        if config is None:
            return copy.deepcopy(live)
        if live is None:
            return copy.deepcopy(config)
        if isinstance(live, dict) and isinstance(config, dict) and not self.atomic_map(spath):
            out = dict(copy.deepcopy(live))
            for key, value in config.items():
                out[key] = self.merge(live.get(key), value, spath + (key,))
            return out
        if isinstance(live, list) and isinstance(config, list):
            lhs = self.children(live, spath, strict=False)
            rhs = self.children(config, spath, strict=True)
            if lhs is not None and rhs is not None:
                return self._merge_list(list(lhs.items()), list(rhs.items()), spath + ('*',))
        return copy.deepcopy(config)

    def _merge_list(self, lhs: list[tuple[str, Any]], rhs: list[tuple[str, Any]],
                    spath: tuple[str, ...]) -> list[Any]:
        """structured-merge-diff's list merge: shared items keep the configuration's order."""
        observed_lhs, observed_rhs = dict(lhs), dict(rhs)
        shared = [pe for pe, _ in rhs if pe in observed_lhs]
        next_shared = shared.pop(0) if shared else None
        merged_rhs: set[str] = set()
        out: list[Any] = []
        li = ri = 0
        while li < len(lhs) or ri < len(rhs):
            if li < len(lhs) and ri < len(rhs):
                pe = lhs[li][0]
                if pe == rhs[ri][0]:
                    merged_rhs.add(pe)
                    out.append(self.merge(observed_lhs[pe], observed_rhs[pe], spath))
                    li, ri = li + 1, ri + 1
                    next_shared = shared.pop(0) if shared else None
                    continue
                if pe in observed_rhs and next_shared is not None and next_shared != pe:
                    li += 1
                    continue
            if li < len(lhs):
                pe = lhs[li][0]
                if pe not in observed_rhs:
                    out.append(copy.deepcopy(lhs[li][1]))
                    li += 1
                    continue
                if pe in merged_rhs:
                    li += 1
                    continue
            if ri < len(rhs):
                pe = rhs[ri][0]
                merged_rhs.add(pe)
                out.append(self.merge(observed_lhs.get(pe), observed_rhs[pe], spath))
                ri += 1
                if next_shared is not None and next_shared == pe:
                    next_shared = shared.pop(0) if shared else None
        return out

    def compare(self, lhs: Any, rhs: Any) -> '_Comparison':
        comparison = _Comparison()
        self._compare(lhs, rhs, (), (), comparison)
        return comparison

    def _compare(self, lhs: Any, rhs: Any, spath: tuple[str, ...], path: Path, out: '_Comparison') -> None:
        if lhs is None and rhs is None:
            return
        lch = self.children(lhs, spath, strict=False) if lhs is not None else None
        rch = self.children(rhs, spath, strict=False) if rhs is not None else None
        same_kind = lhs is None or rhs is None or type(lhs) is type(rhs)
        containers = (lch is not None or lhs is None) and (rch is not None or rhs is None) and same_kind
        if containers and (lch or rch):  # both empty/absent: a leaf, as in compare.go
            if lhs is None and path:
                out.added.add(path)
            elif rhs is None and path:
                out.removed.add(path)
            lch, rch = lch or {}, rch or {}
            for pe in [*lch, *(pe for pe in rch if pe not in lch)]:
                self._compare(lch.get(pe), rch.get(pe), _descend(spath, pe), path + (pe,), out)
            return
        if not path:
            return
        if lhs is None:
            out.added.add(path)
        elif rhs is None:
            out.removed.add(path)
        elif lhs != rhs:
            out.modified.add(path)

    def remove(self, obj: Any, paths: Iterable[Path]) -> Any:
        """A copy of ``obj`` without the subtrees at ``paths`` (``RemoveItems``)."""
        result = copy.deepcopy(obj)
        for path in sorted(_minimal(set(paths)), key=len, reverse=True):
            self._remove_one(result, path)
        return result

    def _remove_one(self, obj: Any, path: Path) -> None:
        node, spath = obj, cast(tuple[str, ...], ())
        for depth, pe in enumerate(path):
            last = depth == len(path) - 1
            children = self.children(node, spath, strict=False)
            if children is None or pe not in children:
                return
            if last:
                if isinstance(node, dict):
                    del node[pe[2:]]
                else:
                    node[:] = [item for item in node if not _same_item(self, item, pe, spath)]
                return
            node, spath = children[pe], _descend(spath, pe)


@dataclasses.dataclass
class _Comparison:
    added: set[Path] = dataclasses.field(default_factory=set)
    modified: set[Path] = dataclasses.field(default_factory=set)
    removed: set[Path] = dataclasses.field(default_factory=set)


def _same_item(types: Types, item: Any, pe: str, spath: tuple[str, ...]) -> bool:
    kind, keys, defaults = types.list_type(spath)
    return _item_pe(item, kind, keys, defaults) == pe


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def _item_pe(item: Any, kind: str, keys: tuple[str, ...], defaults: Mapping[str, Any]) -> str | None:
    if kind == 'set':
        return None if isinstance(item, (dict, list)) else 'v:' + _canonical(item)
    if not isinstance(item, dict):
        return None
    key: dict[str, Any] = {}
    for name in keys:
        if item.get(name) is not None:
            key[name] = item[name]
        elif name in defaults:
            key[name] = defaults[name]
        else:
            return None
    return 'k:' + _canonical(key)


def _descend(spath: tuple[str, ...], pe: str) -> tuple[str, ...]:
    return spath + ((pe[2:],) if pe.startswith('f:') else ('*',))


def _minimal(paths: set[Path]) -> set[Path]:
    return {p for p in paths if not any(p[:i] in paths for i in range(1, len(p)))}


def _under(path: Path, paths: set[Path]) -> bool:
    return any(path[:i] in paths for i in range(1, len(path) + 1))


def _named(paths: set[Path]) -> set[Path]:
    """``EnsureNamedFieldsAreMembers``, approximated: every field on the way is a member."""
    out = set(paths)
    for path in paths:
        out.update(path[:i] for i in range(1, len(path)) if path[i - 1].startswith('f:'))
    return out


def path_string(path: Path) -> str:
    """``fieldpath.Path.String()``: .spec.replicas, [name="main"], [="x"], [0]."""
    parts = []
    for pe in path:
        kind, text = pe[0], pe[2:]
        if kind == 'f':
            parts.append('.' + text)
        elif kind == 'k':
            key = json.loads(text)
            parts.append('[' + ','.join(f'{k}={_canonical(v)}' for k, v in key.items()) + ']')
        elif kind == 'v':
            parts.append(f'[={text}]')
        else:
            parts.append(f'[{text}]')
    return ''.join(parts)


# --- FieldsV1 ----------------------------------------------------------------------------------------

_PE_ORDER = {'f': 0, 'k': 1, 'v': 2, 'i': 3}


def encode_fields(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    members: set[Path] = set()
    for path in paths:
        node = tree
        for pe in path:
            node = node.setdefault(pe, {})
        members.add(path)

    def emit(node: dict[str, Any], prefix: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if prefix in members and node:
            out['.'] = {}
        for pe in sorted(node, key=lambda pe: (_PE_ORDER.get(pe[0], 9), pe)):
            out[pe] = emit(node[pe], prefix + (pe,))
        return out
    return emit(tree, ())


def decode_fields(fields: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, Mapping):
        return out
    for pe, sub in fields.items():
        if pe == '.':
            out.add(prefix)
            continue
        path = prefix + (pe,)
        if not sub:
            out.add(path)
        else:
            out |= decode_fields(sub, path)
    return out


@dataclasses.dataclass
class _Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: set[Path]

    @property
    def id(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, self.api_version if self.operation == 'Update' else '',
                self.subresource)

    def printed(self) -> str:
        text = json.dumps(self.manager)
        if self.subresource:
            text += f' with subresource {json.dumps(self.subresource)}'
        return f'{text} using {self.api_version}' if self.operation == 'Update' else text


def _decode(entries: Any) -> dict[tuple[str, str, str, str], _Entry] | None:
    """Managed entries by identifier; None if they are not valid managedFields."""
    if not isinstance(entries, list):
        return None
    out: dict[tuple[str, str, str, str], _Entry] = {}
    for raw in entries:
        if not isinstance(raw, Mapping) or raw.get('operation') not in ('Apply', 'Update') \
                or raw.get('fieldsType', 'FieldsV1') != 'FieldsV1':
            return None
        entry = _Entry(str(raw.get('manager', '')), raw['operation'], str(raw.get('apiVersion', '')),
                       str(raw.get('subresource', '')), raw.get('time'), decode_fields(raw.get('fieldsV1')))
        if entry.id in out:
            out[entry.id].fields |= entry.fields
        else:
            out[entry.id] = entry
    return out


def _encode(entries: Iterable[_Entry]) -> list[dict[str, Any]]:
    def order(entry: _Entry) -> tuple[Any, ...]:
        seconds = _seconds(entry.time) if entry.time else 0
        return entry.operation, seconds, entry.manager, entry.api_version, entry.subresource
    out = []
    for entry in sorted((e for e in entries if e.fields), key=order):
        raw: dict[str, Any] = {'manager': entry.manager, 'operation': entry.operation,
                               'apiVersion': entry.api_version}
        if entry.time:
            raw['time'] = entry.time
        raw.update(fieldsType='FieldsV1', fieldsV1=encode_fields(entry.fields))
        if entry.subresource:
            raw['subresource'] = entry.subresource
        out.append(raw)
    return out


def _seconds(timestamp: str) -> float:
    try:
        return datetime.datetime.fromisoformat(timestamp.replace('Z', '+00:00')).timestamp()
    except ValueError:
        return 0


def _tracked(paths: set[Path], *, custom: bool, ignored: Callable[[Path], bool]) -> set[Path]:
    """Without the paths no manager ever owns (stripped metadata, reset fields)."""
    return {p for p in paths
            if p not in _STRIPPED_EXACT and not _under(p, _STRIPPED_TREES) and not ignored(p)
            and (custom or p not in _BUILTIN_STRUCT_ROOTS)}


def ignored_fields(*, status_only: bool, has_status: bool) -> Callable[[Path], bool]:
    """The reset fields: ``.status`` on the main resource, everything else on ``/status``."""
    if status_only:
        return lambda path: path[:1] != ('f:status',)
    if has_status:
        return lambda path: path[:1] == ('f:status',)
    return lambda path: False


# --- Update (every non-apply write) ------------------------------------------------------------------

def track_update(types: Types, live: Mapping[str, Any] | None, incoming: Any, result: dict[str, Any],
                 writer: Writer, *, now: str, status_only: bool, has_status: bool) -> list[dict[str, Any]]:
    """The managedFields after a non-apply write of ``result`` over ``live`` (None: a create).

    ``incoming`` is the ``managedFields`` the client sent: a valid non-empty list replaces the live
    ones, ``[]`` resets them (main resource only), anything else keeps the live ones."""
    live_entries = (live or {}).get('metadata', {}).get('managedFields') or []
    base = live_entries
    if not status_only and isinstance(incoming, list):
        if incoming == [] or incoming == [{}]:
            base = []
        elif _decode(incoming) is not None:
            base = incoming
    managers = _decode(base) or {}
    comparison = types.compare(live or {}, result)
    ignored = ignored_fields(status_only=status_only, has_status=has_status)
    changed = _tracked(comparison.added | comparison.modified, custom=types.custom, ignored=ignored)
    removed = _tracked(comparison.removed, custom=types.custom, ignored=ignored)
    for entry in managers.values():
        entry.fields -= changed | removed
    mine = _Entry(writer.manager, 'Update', writer.api_version, writer.subresource, None, set())
    mine = managers.setdefault(mine.id, mine)
    mine.fields |= changed
    if changed:
        mine.time = now
    return _encode(managers.values())


# --- Apply ---------------------------------------------------------------------------------------------

def parse_apply_body(body: bytes) -> dict[str, Any]:
    try:  # JSON (what controllers send) is YAML too, but json parses it a hundred times faster
        config = json.loads(body) if body.lstrip()[:1] == b'{' else None
    except ValueError:
        config = None
    try:
        config = config if config is not None else yaml.safe_load(body.decode('utf-8') if body else '') or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ApplyError(400, 'BadRequest', f'error decoding YAML: {e}')
    if not isinstance(config, dict):
        raise ApplyError(400, 'BadRequest', 'error decoding YAML: the applied configuration must be an object')
    return config


def server_side_apply(types: Types, live: Mapping[str, Any] | None, config: dict[str, Any], *,
                      writer: Writer, force: bool, kind: str, name: str, namespace: str | None,
                      status_only: bool, has_status: bool, now: str) -> tuple[dict[str, Any], Writer]:
    """Merge ``config`` into ``live`` for ``writer.manager`` (see the module docstring).

    Returns the new object (before defaulting) and the writer carrying its managedFields."""
    group_version = writer.api_version
    if (config.get('apiVersion'), config.get('kind')) != (group_version, kind):
        raise ApplyError(400, 'BadRequest', f'invalid object type: {_gvk(config)}')
    metadata = config.get('metadata')
    if isinstance(metadata, dict) and metadata.get('managedFields') is not None:
        raise ApplyError(400, 'BadRequest', 'metadata.managedFields must be nil')
    config = _without_nulls(config)
    try:
        applied = types.field_set(config, strict=True)
        merged = types.merge(dict(live) if live else {}, config)
        types.field_set(merged)
    except _BadList as e:
        raise ApplyError(500, 'InternalError', f'failed to create typed patch object '
                                               f'({namespace or ""}/{name}; {_gvk(config)}): {e}')
    ignored = ignored_fields(status_only=status_only, has_status=has_status)
    # As in the real server, the metadata fields are stripped only after the merge (so that the
    # applier keeps owning metadata.name while pruning), but the reset fields before it.
    applied = {path for path in applied if not ignored(path)}

    managers = _decode((live or {}).get('metadata', {}).get('managedFields') or []) or {}
    me = _Entry(writer.manager, 'Apply', group_version, writer.subresource, None, set())
    previous = managers.get(me.id)
    last = previous.fields if previous else set()
    me.time = previous.time if previous else None
    managers[me.id] = me
    me.fields = applied

    result = _prune(types, merged, managers, last) if last else merged
    comparison = types.compare(dict(live) if live else {}, result)
    changed = _tracked(comparison.added | comparison.modified, custom=types.custom, ignored=ignored)
    removed = _tracked(comparison.removed, custom=types.custom, ignored=ignored)
    conflicts = [(entry, path) for entry in managers.values() if entry.id != me.id
                 for path in sorted(entry.fields & changed)]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry in managers.values():
        if entry.id != me.id:
            entry.fields -= changed | removed
    me.fields = _tracked(applied, custom=types.custom, ignored=ignored)
    if changed or removed:
        me.time = now
    _check_name(result, name, namespace)
    return result, dataclasses.replace(writer, operation='Apply', managed_fields=tuple(_encode(managers.values())))


def _prune(types: Types, merged: dict[str, Any], managers: Mapping[Any, _Entry], last: set[Path]) -> dict[str, Any]:
    """structured-merge-diff's ``prune``: drop what the applier stopped applying, unless owned."""
    merged_set = _named(types.field_set(merged))
    last_named = _named(last)
    owned = _named(set().union(*(entry.fields for entry in managers.values())))
    pruned = _named(types.field_set(types.remove(merged, last_named)))
    unowned = merged_set - pruned - owned                                     # addBackOwnedItems
    kept = _named(types.field_set(types.remove(merged, unowned)))
    result: dict[str, Any] = types.remove(merged, (merged_set - kept) & last_named)  # addBackDanglingItems
    return result


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> ApplyError:
    causes = [{'reason': 'FieldManagerConflict', 'message': f'conflict with {entry.printed()}',
               'field': path_string(path)} for entry, path in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with {entry.printed()}: {path_string(path)}'
    else:
        lines = []
        for printed in sorted({entry.printed() for entry, _ in conflicts}):
            lines.append(f'conflicts with {printed}:')
            lines += [f'- {path_string(path)}' for entry, path in conflicts if entry.printed() == printed]
        message = f'Apply failed with {len(conflicts)} conflicts: ' + '\n'.join(lines)
    return ApplyError(409, 'Conflict', message, {'causes': causes})


def _check_name(obj: Mapping[str, Any], name: str, namespace: str | None) -> None:
    metadata = obj.get('metadata') or {}
    if metadata.get('name') != name:
        raise ApplyError(400, 'BadRequest', f"the name of the object ({metadata.get('name') or ''}) does not "
                                            f"match the name on the URL ({name})")
    if namespace and metadata.get('namespace') not in (None, '', namespace):
        raise ApplyError(400, 'BadRequest', 'the namespace of the provided object does not match the '
                                            'namespace sent on the request')


def _gvk(config: Mapping[str, Any]) -> str:
    api_version = str(config.get('apiVersion') or '')
    group, _, version = api_version.rpartition('/')
    return f"{group}/{version}, Kind={config.get('kind') or ''}"


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
