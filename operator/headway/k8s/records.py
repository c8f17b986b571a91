"""Write the RolloutRecords that planning/records.py plans (I/O).

- A new record is created (POST, never apply): its name is the rollout's, so a create that raced
  an earlier one for the same rollout (the cache had not seen it yet) fails with 409 instead of
  replacing what that one recorded.
- An existing record grows by a JSON patch that appends its new decisions (a record may hold
  hundreds; only the new ones are sent) and carries the resourceVersion the plan was made from:
  if the record changed meanwhile the API server answers 409 and nothing is written. Either 409
  is resolved by the next reconcile, which the record's watch event triggers: it plans again from
  the newer record, so a decision is never appended twice.
- Records beyond the retention are deleted with a uid precondition (only the record planned on).

What the API server answers is stored in the watch cache at once (as for children), so the next
reconcile plans from it. Records carry ownerReferences to their ModelDeployment (controller false:
they are a log, not a state the operator drives; no blockOwnerDeletion, which would need the
finalizers permission), so the garbage collector deletes them with it.
"""

from __future__ import annotations

from typing import Any

import headway
from headway.api import record
from headway.api.status import ModelDeploymentStatus
from headway.k8s.apply import Action
from headway.k8s.cache import Reader
from headway.k8s.client import Kind, Kube, register_kind
from headway.planning.naming import LABEL_MD, LABEL_REVISION, MANAGED_BY, Owner
from headway.planning.records import NewRecord, RecordsPlan, RecordUpdate, parse_record, plan_records

ROLLOUT_RECORD = register_kind(Kind(headway.GROUP, headway.VERSION, record.PLURAL, record.KIND))


def read_records(reader: Reader, owner: Owner) -> list[dict[str, Any]]:
    """The RolloutRecords labelled with this ModelDeployment, as the reader holds them."""
    return list(reader.children(owner, (ROLLOUT_RECORD,)).get(record.KIND, {}).values())


def plan_for(reader: Reader, owner: Owner, status: ModelDeploymentStatus, keep: int) -> RecordsPlan:
    existing = [r for r in (parse_record(o) for o in read_records(reader, owner)) if r is not None]
    return plan_records(owner.name, owner.uid, status, existing, keep)


def render_record(owner: Owner, new: NewRecord) -> dict[str, Any]:
    return {
        "apiVersion": ROLLOUT_RECORD.api_version,
        "kind": record.KIND,
        "metadata": {
            "name": new.name,
            "namespace": owner.namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/instance": owner.name, LABEL_MD: owner.name,
                       LABEL_REVISION: new.spec.revision[:63]},
            "ownerReferences": [{**owner.reference(), "controller": False, "blockOwnerDeletion": False}],
        },
        "spec": new.spec.dump(),
    }


def update_ops(update: RecordUpdate) -> list[dict[str, Any]]:
    """The JSON patch (RFC 6902) of an update: the resourceVersion it was planned from (409 if the
    record changed since), drops after the first decision, appends, then the summary fields."""
    ops: list[dict[str, Any]] = [{"op": "replace", "path": "/metadata/resourceVersion", "value": update.record.resource_version}]
    ops += [{"op": "remove", "path": "/spec/decisions/1"} for _ in range(update.drop)]
    if update.append and not update.record.decisions:
        ops.append({"op": "add", "path": "/spec/decisions", "value": []})
    ops += [{"op": "add", "path": "/spec/decisions/-", "value": d.dump()} for d in update.append]
    if update.approvals:
        if not update.record.approvals:
            ops.append({"op": "add", "path": "/spec/approvals", "value": []})
        ops += [{"op": "add", "path": "/spec/approvals/-", "value": a.dump()} for a in update.approvals]
    ops.append({"op": "add", "path": "/spec/outcome", "value": update.outcome})  # "add" sets a member, present or not
    if update.finished_at is not None:
        ops.append({"op": "add", "path": "/spec/finishedAt", "value": update.finished_at})
    elif update.record.finished_at is not None:
        ops.append({"op": "remove", "path": "/spec/finishedAt"})
    if update.drop:
        ops.append({"op": "add", "path": "/spec/dropped", "value": update.dropped})
    if update.incomplete != update.record.incomplete and update.incomplete is not None:
        ops.append({"op": "add", "path": "/spec/incomplete", "value": update.incomplete})
    return ops


def apply_records(kube: Kube, reader: Reader, owner: Owner, plan: RecordsPlan) -> list[Action]:
    """Carry out a records plan; ApiError on the first failure (what was written before stays)."""
    actions: list[Action] = []
    for new in plan.create:
        stored = kube.create(ROLLOUT_RECORD, owner.namespace, render_record(owner, new))
        reader.put(ROLLOUT_RECORD, stored)
        actions.append(Action("created", record.KIND, new.name, f"{new.spec.outcome}, {len(new.spec.decisions)} decisions"))
    for update in plan.update:
        stored = kube.json_patch(ROLLOUT_RECORD, owner.namespace, update.record.name, update_ops(update))
        reader.put(ROLLOUT_RECORD, stored)
        actions.append(Action("updated", record.KIND, update.record.name,
                              f"{update.outcome}, {len(update.append)} decision{'' if len(update.append) == 1 else 's'} added"))
    for old in plan.delete:
        kube.delete(ROLLOUT_RECORD, owner.namespace, old.name, uid=old.uid or None)
        reader.remove(ROLLOUT_RECORD, owner.namespace, old.name)
        actions.append(Action("deleted", record.KIND, old.name, f"beyond the last records kept ({old.outcome})"))
    return actions
