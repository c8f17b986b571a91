"""``kubectl headway``: the command line (the ``kubectl-headway`` console script).

    kubectl headway get md/NAME [--watch]          the tree; --watch redraws it on every change
    kubectl headway promote-step md/NAME           pass the current step (or a manual gate)
    kubectl headway promote md/NAME                skip the remaining steps, promote now
    kubectl headway abort md/NAME                  all traffic back to stable
    kubectl headway retry md/NAME                  roll a rolled-back version out again
    kubectl headway pause md/NAME | resume md/NAME
    kubectl headway approve md/NAME --role ROLE [--comment TEXT]   (spec.governance)
    kubectl headway reject md/NAME --role ROLE [--comment TEXT]

Flags as kubectl's: ``-n/--namespace``, ``--context``, ``--kubeconfig`` (and ``$KUBECONFIG``),
before or after the command; the object as ``md/NAME``, ``modeldeployment/NAME``, ``md NAME`` or
``NAME``. Exit status: 0 done (or nothing to do), 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from headway.kubectl_plugin import actions, tree
from headway.kubectl_plugin.kube import Client, ConfigError, KubeError, Target, connect

TYPES = {"md", "mds", "modeldeployment", "modeldeployments", "modeldeployment.serving.headway.dev",
         "modeldeployments.serving.headway.dev"}
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: how argo-rollouts redraws (cmd/get/get.go Clear)
Clock = Callable[[], datetime]


class UsageError(Exception):
    pass


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the command is not overwritten by the subcommand's default.
    parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)")
    parser.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")
    parser.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl headway", description="See and steer Headway ModelDeployments.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="docs/kubectl-plugin.md has the details.")
    _common(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument("resource", nargs="+", metavar="md/NAME", help="the ModelDeployment (md/NAME, md NAME or NAME)")
        _common(sub)
        return sub

    get = command("get", "show a ModelDeployment as a tree: variants, step, SLO evidence, approvals, cost, decisions")
    get.add_argument("-w", "--watch", action="store_true", help="redraw on every change until Ctrl-C")
    get.add_argument("--no-color", action="store_true", help="no colours (never used when stdout is not a terminal)")
    helps = {
        "promote": "skip the remaining steps and promote the candidate now",
        "promote-step": "pass the current step (or the manual gate it waits at)",
        "abort": "send all traffic back to stable and mark the candidate rolled back",
        "retry": "roll a rolled-back version out again",
        "pause": "pause the rollout (the step's clock stops)",
        "resume": "resume a rollout paused with kubectl headway pause",
    }
    for name in actions.CONTROLS:
        command(name, helps[name]).add_argument("--dry-run", action="store_true", help="say what would happen, write nothing")
    for name, help_ in (("approve", "approve the candidate for a governance role (a ModelApproval)"),
                        ("reject", "reject the candidate for a governance role (the operator aborts its rollout)")):
        sub = command(name, help_)
        sub.add_argument("--role", required=True, help="the governance role you sign for (e.g. risk, ml-lead)")
        sub.add_argument("--comment", default=None, help="why, in your words (at most 1024 characters)")
        sub.add_argument("--dry-run", action="store_true", help="say what would happen, create nothing")
    return parser


def resource_name(words: Sequence[str]) -> str:
    """``md/NAME``, ``modeldeployment/NAME``, ``md NAME`` or ``NAME`` -> NAME."""
    if len(words) == 2:
        kind, name = words
    elif len(words) == 1 and "/" in words[0]:
        kind, name = words[0].split("/", 1)
    elif len(words) == 1:
        kind, name = "md", words[0]
    else:
        raise UsageError(f"one ModelDeployment at a time (md/NAME), got {' '.join(words)}")
    if kind.lower() not in TYPES:
        raise UsageError(f"{kind!r} is not a ModelDeployment: kubectl headway works on md/NAME (modeldeployments.serving.headway.dev)")
    if not name:
        raise UsageError("a ModelDeployment name is required: md/NAME")
    return name


def main(argv: Sequence[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr, lambda: datetime.now(timezone.utc))


def run(argv: Sequence[str], out: TextIO, err: TextIO, clock: Clock,
        connect: Callable[[Target], tuple[Client, str]] = connect) -> int:
    args = build_parser().parse_args(argv)
    try:
        name = resource_name(args.resource)
        target = Target(getattr(args, "kubeconfig", None), getattr(args, "context", None), getattr(args, "namespace", None))
        client, namespace = connect(target)
        if args.command == "get":
            return _get(client, namespace, name, args, out, err, clock)
        if args.command in ("approve", "reject"):
            return _decide(client, namespace, name, args, out, clock)
        return _control(client, namespace, name, args, out, clock)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except (ConfigError, actions.Refused) as exc:
        print(f"error: {exc}", file=err)
        return 1
    except KubeError as exc:
        print(exc, file=err)
        return 1
    except KeyboardInterrupt:
        return 0


# --- get --------------------------------------------------------------------------------------------


def _approvals(client: Client, namespace: str, obj: dict[str, Any], warned: list[str], err: TextIO) -> list[dict[str, Any]]:
    """The namespace's ModelApprovals, when the object has governance to show them against."""
    if not (obj.get("status") or {}).get("governance"):
        return []
    try:
        return client.list_approvals(namespace)
    except KubeError as exc:
        if not warned:
            warned.append(str(exc))
            print(f"warning: ModelApprovals not shown: {exc}", file=err)
        return []


def _get(client: Client, namespace: str, name: str, args: argparse.Namespace, out: TextIO, err: TextIO, clock: Clock) -> int:
    tty = out.isatty()
    color = tty and not args.no_color and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ
    warned: list[str] = []
    obj = client.get_model_deployment(namespace, name)
    approvals = _approvals(client, namespace, obj, warned, err)

    def draw() -> None:
        text = tree.render(obj, approvals, clock())
        if color:
            text = tree.colorize(text)
        out.write((CLEAR + text) if tty and args.watch else text)
        out.flush()

    draw()
    if not args.watch:
        return 0
    if not tty:
        out.write("\n")
        out.flush()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_pump, args=(client, namespace, name, str(obj["metadata"].get("resourceVersion", "")), events),
                     daemon=True, name="watch").start()
    while True:
        try:
            # A terminal is redrawn every second too, for the step's time left (from the object last
            # seen: nothing is polled); a pipe gets a block per change only.
            kind, payload = events.get(timeout=1.0 if tty else 3600.0)
        except queue.Empty:
            if tty:
                draw()
            continue
        if kind == "DELETED":
            out.write(f"modeldeployment.serving.headway.dev/{name} deleted\n")
            out.flush()
            return 0
        if kind == "FAILED":
            raise payload
        obj = payload
        approvals = _approvals(client, namespace, obj, warned, err)
        draw()
        if not tty:
            out.write("\n")
            out.flush()


def _pump(client: Client, namespace: str, name: str, resource_version: str, events: queue.Queue[tuple[str, Any]]) -> None:
    """Watch the object and queue its changes; resume after the server ends a watch, re-read after 410 Gone."""
    delay = 1.0
    while True:
        try:
            for event in client.watch_model_deployment(namespace, name, resource_version):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:  # too old: read the object afresh and watch from there
                        raise KubeError(410, "Expired", str(obj.get("message", "")))
                    raise KubeError(int(obj.get("code") or 0), str(obj.get("reason", "")), str(obj.get("message", "")))
                resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                if kind == "BOOKMARK":
                    continue
                events.put((str(kind), obj))
                if kind == "DELETED":
                    return
                delay = 1.0
        except KubeError as exc:
            if exc.status == 410:
                try:
                    fresh = client.get_model_deployment(namespace, name)
                except KubeError as again:
                    events.put(("DELETED", None) if again.status == 404 else ("FAILED", again))
                    return
                resource_version = str(fresh["metadata"].get("resourceVersion", ""))
                events.put(("MODIFIED", fresh))
            elif exc.status in (0, 429) or exc.status >= 500:  # the connection or the server: try again
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                events.put(("FAILED", exc))
                return


# --- actions ----------------------------------------------------------------------------------------


def _control(client: Client, namespace: str, name: str, args: argparse.Namespace, out: TextIO, clock: Clock) -> int:
    for attempt in range(3):
        obj = client.get_model_deployment(namespace, name)
        action = actions.plan_control(obj, args.command, clock())
        if action.patch is None:
            print(action.message, file=out)
            return 0
        if args.dry_run:
            print(f"{action.message} (dry run: nothing written)", file=out)
            return 0
        # The object read is the one the words describe: a change since then answers 409 and is read again.
        patch = {**action.patch, "metadata": {**action.patch["metadata"], "resourceVersion": obj["metadata"]["resourceVersion"]}}
        try:
            client.patch_model_deployment(namespace, name, patch, actions.FIELD_MANAGER)
        except KubeError as exc:
            if exc.status == 409 and attempt < 2:
                continue
            raise
        print(action.message, file=out)
        for note in action.notes:
            print(note, file=out)
        return 0
    raise AssertionError("unreachable")


def _decide(client: Client, namespace: str, name: str, args: argparse.Namespace, out: TextIO, clock: Clock) -> int:
    obj = client.get_model_deployment(namespace, name)
    try:
        user = client.whoami()
    except KubeError as exc:
        raise KubeError(exc.status, exc.reason, f"cannot tell who you are (SelfSubjectReview, Kubernetes 1.28+): {exc.message}") from exc
    if not user.get("username"):
        raise actions.Refused("the API server did not say who you are (SelfSubjectReview without a username)")
    body, message = actions.plan_approval(obj, args.command, args.role, str(user["username"]), args.comment, clock())
    if args.dry_run:
        print(f"{message} (dry run: nothing created)", file=out)
        return 0
    try:
        created = client.create_approval(namespace, body, actions.FIELD_MANAGER)
    except KubeError as exc:
        if exc.status != 409:
            raise
        # The conventional name is taken (a decision of yours for this revision and role already
        # exists, and approvals are immutable): this one is a new record beside it.
        body = {**body, "metadata": {"generateName": body["metadata"]["name"] + "-", "namespace": namespace}}
        created = client.create_approval(namespace, body, actions.FIELD_MANAGER)
    print(message, file=out)
    print(f"modelapproval.serving.headway.dev/{created['metadata']['name']} created", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
