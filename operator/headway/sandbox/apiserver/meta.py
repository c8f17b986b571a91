"""
Metadata helpers of the Kubernetes API emulator: selectors, names, validation.

* Label selectors as ``kube-apiserver`` parses them (``k8s.io/apimachinery/pkg/labels``):
  ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``,
  ``a>1``, ``a<1``; comma-separated terms are ANDed.
* Field selectors: ``metadata.name`` and ``metadata.namespace`` for every resource,
  plus the usual extra fields of Events; ``=``, ``==``, ``!=``. Other fields → 400,
  as the real server does for unsupported field labels.
* Validation of names (DNS-1123 subdomain/label, DNS-1035 label for Services),
  label keys/values and annotation keys — the real server rejects them with 422.
* ``generateName`` suffixes from the same alphabet the real server uses.
"""
import datetime
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)
FieldRequirement = tuple[str, str, str]  # (dotted path, operator, value)


class SelectorError(ValueError):
    """An unparseable or unsupported selector (HTTP 400 BadRequest)."""


class MetadataInvalid(ValueError):
    """Invalid metadata (HTTP 422 Invalid); the message names the field."""


# --- Label selectors ----------------------------------------------------------------------------

_KEY = r'[A-Za-z0-9_./-]+'
_SET_TERM = re.compile(rf'^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$')
_CMP_TERM = re.compile(rf'^\s*({_KEY})\s*(==|!=|=|>|<)\s*([A-Za-z0-9_.-]*)\s*$')
_EXISTS_TERM = re.compile(rf'^\s*(!?)\s*({_KEY})\s*$')


def _split_terms(selector: str) -> list[str]:
    """Split by commas, but not by the commas inside ``in (…)`` sets."""
    if '(' not in selector:  # the common case, without a char-by-char scan
        return [term for term in selector.split(',') if term.strip()]
    terms: list[str] = []
    depth = 0
    current = ''
    for char in selector:
        depth += {'(': 1, ')': -1}.get(char, 0)
        if char == ',' and depth == 0:
            terms.append(current)
            current = ''
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def parse_label_selector(selector: str | None) -> list[Requirement]:
    requirements: list[Requirement] = []
    for term in _split_terms(selector or ''):
        if match := _SET_TERM.match(term):
            key, op, values = match.groups()
            requirements.append((key, op, tuple(v.strip() for v in values.split(',') if v.strip())))
        elif match := _CMP_TERM.match(term):
            key, op, value = match.groups()
            if op in ('<', '>') and not re.fullmatch(r'-?\d+', value):
                raise SelectorError(f"unable to parse requirement: {term!r}: integer expected")
            requirements.append((key, '=' if op == '==' else op, (value,)))
        elif match := _EXISTS_TERM.match(term):
            negation, key = match.groups()
            requirements.append((key, '!' if negation else 'exists', ()))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return requirements


def match_labels(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    return all(_match_requirement(req, labels or {}) for req in requirements)


def _match_requirement(requirement: Requirement, labels: Mapping[str, str]) -> bool:
    key, op, values = requirement
    value = labels.get(key)
    if op == 'exists':
        return key in labels
    if op == '!':
        return key not in labels
    if op in ('!=', 'notin'):  # NB: an absent label matches the negative operators
        return value is None or value not in values
    if op in ('=', 'in'):
        return value is not None and value in values
    number = _int(value)
    return number is not None and (number > int(values[0]) if op == '>' else number < int(values[0]))


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and re.fullmatch(r'-?\d+', value) else None


# --- Field selectors ----------------------------------------------------------------------------

_EVENT_FIELDS = re.compile(
    r'^(involvedObject\.\w+|regarding\.\w+|reason|reportingComponent|reportingController'
    r'|source|type|deprecatedSource\.\w+)$'
)


def parse_field_selector(selector: str | None, *, kind: str) -> list[FieldRequirement]:
    requirements: list[FieldRequirement] = []
    for term in _split_terms(selector or ''):
        match = re.fullmatch(r'\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*', term)
        if not match:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path, op, value = match.groups()
        supported = path in ('metadata.name', 'metadata.namespace') or (
            kind == 'Event' and _EVENT_FIELDS.match(path))
        if not supported:
            raise SelectorError(f'field label not supported: {path}')
        requirements.append((path, '!=' if op == '!=' else '=', value))
    return requirements


def match_fields(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    for path, op, expected in requirements:
        value: Any = obj
        for part in path.split('.'):
            value = value.get(part) if isinstance(value, Mapping) else None
        if path == 'source' and isinstance(value, Mapping):  # Events: "source" means its component
            value = value.get('component')
        actual = '' if value is None else str(value)
        if (actual == expected) != (op == '='):
            return False
    return True


# --- Names & validation ---------------------------------------------------------------------------

_DNS1123_LABEL = r'[a-z0-9]([-a-z0-9]*[a-z0-9])?'
_DNS1123_SUBDOMAIN = re.compile(rf'^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$')
_DNS1035_LABEL = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
_QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
_LABEL_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')

# Resources whose names are DNS labels rather than DNS subdomains (as the real validators define).
_LABEL_NAMED = {('', 'namespaces')}
_DNS1035_NAMED = {('', 'services')}
# Resources whose names only need to be valid URL path segments.
_PATH_SEGMENT_NAMED_GROUPS = {'rbac.authorization.k8s.io'}

# The alphabet of generateName suffixes: k8s.io/apimachinery/pkg/util/rand (no vowels, no 0/1/3).
_GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'


def generate_name(prefix: str) -> str:
    return prefix + ''.join(random.choice(_GENERATE_ALPHABET) for _ in range(5))


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def validate_name(name: str, *, group: str, plural: str) -> None:
    if (group, plural) in _DNS1035_NAMED:
        ok = len(name) <= 63 and bool(_DNS1035_LABEL.match(name))
        rule = "a DNS-1035 label (lowercase alphanumerics or '-', starting with a letter, ≤63 chars)"
    elif (group, plural) in _LABEL_NAMED:
        ok = len(name) <= 63 and bool(re.fullmatch(_DNS1123_LABEL, name))
        rule = "a lowercase RFC 1123 label (≤63 chars)"
    elif group in _PATH_SEGMENT_NAMED_GROUPS:
        ok = name not in ('.', '..') and '/' not in name and '%' not in name
        rule = "a valid path segment name"
    else:
        ok = len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))
        rule = "a lowercase RFC 1123 subdomain (≤253 chars)"
    if not ok:
        raise MetadataInvalid(f'metadata.name: Invalid value: "{name}": must be {rule}')


def _validate_qualified_name(key: str, field: str) -> None:
    prefix, _, name = key.rpartition('/')
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise MetadataInvalid(f'{field}: Invalid value: "{key}": prefix part must be a DNS-1123 subdomain')
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        raise MetadataInvalid(
            f'{field}: Invalid value: "{key}": name part must be ≤63 characters of alphanumerics, '
            f"'-', '_' or '.', starting and ending with an alphanumeric character")


def validate_metadata(meta: Mapping[str, Any]) -> None:
    for key, value in (meta.get('labels') or {}).items():
        _validate_qualified_name(key, 'metadata.labels')
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise MetadataInvalid(
                f'metadata.labels: Invalid value: "{value}": a valid label must be an empty string '
                f"or ≤63 characters of alphanumerics, '-', '_' or '.', starting and ending "
                f"with an alphanumeric character")
    for key, value in (meta.get('annotations') or {}).items():
        _validate_qualified_name(key, 'metadata.annotations')
        if not isinstance(value, str):
            raise MetadataInvalid(f'metadata.annotations: Invalid value: {value!r}: must be a string')
    for ref in meta.get('ownerReferences') or []:
        missing = [f for f in ('apiVersion', 'kind', 'name', 'uid') if not ref.get(f)]
        if missing:
            raise MetadataInvalid(f'metadata.ownerReferences.{missing[0]}: Required value')


# --- The store and its indexes ------------------------------------------------------------------

StoreKey = tuple[str, str, str | None, str]  # (group, plural, namespace, name)


def key_order(key: StoreKey) -> tuple[str, str, str, str]:
    """The order of lists: by kind, namespace, name (as etcd's key order)."""
    group, plural, namespace, name = key
    return group, plural, namespace or '', name


class IndexedStore(dict[StoreKey, dict[str, Any]]):
    """The emulator's objects by key, with the indexes a real API server's watch cache has, so
    that no request scans every object: keys by kind and namespace, by label (key=value, per
    kind), and uids (of all objects and of owners, for garbage collection).

    Every write goes through ``store[key] = obj``, ``del store[key]`` or ``store.pop(key)``; the
    stored objects are never changed in place (a write stores a new object), so the indexes
    cannot go stale."""

    def __init__(self) -> None:
        super().__init__()
        # (group, plural) -> namespace -> keys (a dict as an ordered set)
        self._by_kind: dict[tuple[str, str], dict[str | None, dict[StoreKey, None]]] = {}
        self._by_label: dict[tuple[str, str, str, str], set[StoreKey]] = {}  # (group, plural, label, value)
        self._uids: dict[str, StoreKey] = {}
        self._dependents: dict[str, set[StoreKey]] = {}  # owner uid -> keys of objects naming it

    def __setitem__(self, key: StoreKey, obj: dict[str, Any]) -> None:
        if (old := super().get(key)) is not None:
            self._unindex(key, old)
        super().__setitem__(key, obj)
        self._index(key, obj)

    def __delitem__(self, key: StoreKey) -> None:
        self._unindex(key, self[key])
        super().__delitem__(key)

    def pop(self, key: StoreKey, *default: Any) -> Any:  # type: ignore[override]
        if key in self:
            obj = super().pop(key)
            self._unindex(key, obj)
            return obj
        return super().pop(key, *default)

    def _index(self, key: StoreKey, obj: dict[str, Any]) -> None:
        metadata = obj.get('metadata') or {}
        self._by_kind.setdefault(key[:2], {}).setdefault(key[2], {})[key] = None
        for label, value in (metadata.get('labels') or {}).items():
            self._by_label.setdefault((key[0], key[1], label, str(value)), set()).add(key)
        if uid := metadata.get('uid'):
            self._uids[uid] = key
        for ref in metadata.get('ownerReferences') or []:
            if isinstance(ref, Mapping) and ref.get('uid'):
                self._dependents.setdefault(ref['uid'], set()).add(key)

    def _unindex(self, key: StoreKey, obj: dict[str, Any]) -> None:
        metadata = obj.get('metadata') or {}
        namespaces = self._by_kind.get(key[:2], {})
        namespaces.get(key[2], {}).pop(key, None)
        if not namespaces.get(key[2], True):
            del namespaces[key[2]]
        for label, value in (metadata.get('labels') or {}).items():
            index_key = (key[0], key[1], label, str(value))
            if (keys := self._by_label.get(index_key)) is not None:
                keys.discard(key)
                if not keys:
                    del self._by_label[index_key]
        if (uid := metadata.get('uid')) and self._uids.get(uid) == key:
            del self._uids[uid]
        for ref in metadata.get('ownerReferences') or []:
            if isinstance(ref, Mapping) and (keys := self._dependents.get(ref.get('uid') or '')) is not None:
                keys.discard(key)
                if not keys:
                    del self._dependents[ref['uid']]

    def kind_keys(self, group: str, plural: str, namespace: str | None = None,
                  labels: list[Requirement] | None = None) -> list[StoreKey]:
        """Keys that may match: of the kind (in the namespace, if given), narrowed by the label
        index when a requirement is ``key=value`` or ``key in (…)`` — a superset to be checked
        with the full selector. Sorted as lists are."""
        candidates: set[StoreKey] | None = None
        for label, op, values in labels or ():
            if op in ('=', 'in'):
                found: set[StoreKey] = set()
                for value in values:
                    found |= self._by_label.get((group, plural, label, value), set())
                if candidates is None or len(found) < len(candidates):
                    candidates = found
        if candidates is not None:
            keys: Iterable[StoreKey] = (k for k in candidates if namespace is None or k[2] == namespace)
        else:
            namespaces = self._by_kind.get((group, plural), {})
            if namespace is not None:
                keys = list(namespaces.get(namespace, {}))
            else:
                keys = [k for in_namespace in namespaces.values() for k in in_namespace]
        return sorted(keys, key=key_order)

    def uid_exists(self, uid: str) -> bool:
        return uid in self._uids

    def dependents(self, uid: str) -> list[StoreKey]:
        """Keys of the objects whose ownerReferences name ``uid``, in list order."""
        return sorted(self._dependents.get(uid, ()), key=key_order)
