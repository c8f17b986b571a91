"""
PATCH bodies of the Kubernetes API emulator, by ``Content-Type``.

* ``application/merge-patch+json`` — RFC 7386 exactly: dicts merge recursively,
  ``null`` deletes a key, lists and scalars replace.
* ``application/json-patch+json`` — RFC 6902 via the ``jsonpatch`` library (the one kopf uses):
  add/remove/replace/move/copy/test. A malformed patch → 400; a failed ``test`` or a missing
  path → 422 (``Invalid``), as on the real server (kopf relies on that 422 for its
  optimistic ``test /metadata/resourceVersion`` ops).
* ``application/strategic-merge-patch+json`` — APPROXIMATED. The real server takes the patch
  strategy of every field from the Go types' struct tags. Here: like a merge patch, but
    - lists of objects under the well-known fields are merged by their merge key
      (``containers``/``initContainers``/``env``/``volumes``/``imagePullSecrets`` by ``name``,
      ``volumeMounts`` by ``mountPath``, ``ports`` by ``containerPort`` or ``port``,
      ``conditions`` by ``type``, ``ownerReferences`` by ``uid``);
    - any other list whose objects all have a ``name`` is merged by ``name`` too (the real server
      would replace some of them, e.g. ``tolerations`` have no merge key and are replaced);
    - ``finalizers`` (a list of strings) are merged as a set union;
    - directives ``$patch: delete|replace`` and ``$deleteFromPrimitiveList/<field>`` work;
      ``$setElementOrder/…`` and ``$retainKeys`` are accepted and ignored.
  Custom resources reject it with 415, exactly as the real server does.
* ``application/apply-patch+yaml`` (server-side apply) is not a patch of this module: the
  emulator routes it to ``apply.py`` (see ``is_apply``); here it is refused (415).
  Anything else → 415 as well.
"""
import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch

MERGE_PATCH = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'
STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json'
APPLY_PATCH = 'application/apply-patch+yaml'

_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    'containers': ('name',),
    'initContainers': ('name',),
    'ephemeralContainers': ('name',),
    'env': ('name',),
    'volumes': ('name',),
    'imagePullSecrets': ('name',),
    'volumeMounts': ('mountPath',),
    'ports': ('containerPort', 'port'),
    'conditions': ('type',),
    'ownerReferences': ('uid',),
}
MERGE_KEYS = _MERGE_KEYS  # also the associative-list keys of server-side apply (apply.py)
_SET_LISTS = {'finalizers'}


def is_apply(content_type: str) -> bool:
    """Whether a PATCH is a server-side apply (``application/apply-patch+yaml``)."""
    return content_type.split(';')[0].strip().lower() == APPLY_PATCH


class PatchError(Exception):
    """A patch that cannot be applied; carries the HTTP status and the K8s reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def apply_patch(content_type: str, target: dict[str, Any], body: bytes, *,
                custom_resource: bool) -> dict[str, Any]:
    """Return a patched deep copy of ``target``; raise :class:`PatchError` if impossible."""
    media_type = content_type.split(';')[0].strip().lower()
    if media_type == APPLY_PATCH:
        raise PatchError(415, 'UnsupportedMediaType',
                         f"{APPLY_PATCH} (server-side apply) is not supported by the emulator; "
                         f"use {MERGE_PATCH}, {JSON_PATCH} or {STRATEGIC_MERGE_PATCH}")
    if media_type == STRATEGIC_MERGE_PATCH and custom_resource:
        raise PatchError(415, 'UnsupportedMediaType',
                         "the body of the request was in an unknown format - accepted media types "
                         f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")
    if media_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH):
        raise PatchError(415, 'UnsupportedMediaType',
                         f"the body of the request was in an unknown format: {media_type!r}")
    try:
        patch = json.loads(body)
    except ValueError as e:
        raise PatchError(400, 'BadRequest', f"error decoding patch: {e}")

    if media_type == JSON_PATCH:
        return _json_patch(target, patch)
    if not isinstance(patch, Mapping):
        raise PatchError(400, 'BadRequest', "a merge patch must be a JSON object")
    patched: dict[str, Any] = (merge_patch if media_type == MERGE_PATCH else strategic_merge_patch)(target, patch)
    return patched


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list) or not all(isinstance(op, Mapping) for op in ops):
        raise PatchError(400, 'BadRequest', "a JSON patch must be a list of operations")
    try:
        patch = jsonpatch.JsonPatch(ops)
    except jsonpatch.InvalidJsonPatch as e:
        raise PatchError(400, 'BadRequest', f"invalid JSON patch: {e}")
    try:
        result: dict[str, Any] = patch.apply(copy.deepcopy(target))
    except jsonpatch.InvalidJsonPatch as e:
        raise PatchError(400, 'BadRequest', f"invalid JSON patch: {e}")
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise PatchError(422, 'Invalid', f"the server rejected our request due to an error "
                                         f"in our request: {e}")
    return result


def strategic_merge_patch(target: Any, patch: Mapping[str, Any]) -> Any:
    """An approximation of the strategic merge patch (see the module docstring)."""
    if patch.get('$patch') == 'replace':
        return _strip_directives(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith('$deleteFromPrimitiveList/'):
            field = key.split('/', 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
        elif key.startswith('$'):
            continue  # $setElementOrder/…, $retainKeys, $patch: not emulated
        elif value is None or (isinstance(value, Mapping) and value.get('$patch') == 'delete'):
            result.pop(key, None)
        elif isinstance(value, Mapping):
            result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    return result


def _merge_list(field: str, stored: Any, patch: list[Any]) -> list[Any]:
    current: list[Any] = stored if isinstance(stored, list) else []
    if field in _SET_LISTS and all(not isinstance(item, (Mapping, list)) for item in patch):
        return current + [item for item in patch if item not in current]

    merge_key = _find_merge_key(field, patch)
    if merge_key is None:
        return [_strip_directives(item) for item in patch]

    result: list[Any] = copy.deepcopy(current)
    for item in patch:
        index = next((i for i, old in enumerate(result)
                      if isinstance(old, Mapping) and old.get(merge_key) == item[merge_key]), None)
        if item.get('$patch') == 'delete':
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _find_merge_key(field: str, patch: list[Any]) -> str | None:
    if not patch or not all(isinstance(item, Mapping) for item in patch):
        return None
    for key in _MERGE_KEYS.get(field, ('name',)):
        if all(key in item for item in patch):
            return key
    return None


def _strip_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith('$')}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return copy.deepcopy(value)
