"""``headway sandbox``: the operator, real model servers, Prometheus and traffic on one machine.

    headway sandbox                           play the three scenes of examples/sandbox/
    headway sandbox --fast                    the same with every duration at a quarter (CI)
    headway sandbox -f my-model.yaml --keep   play your ModelDeployment, then keep running
    headway sandbox apply -f changed.yaml     apply a change to the running sandbox
    headway sandbox down                      stop every sandbox started by this user
    headway sandbox --fault errors=5%,latency=+300ms@10%   make new versions misbehave
    headway sandbox --service my_service:MyModel --endpoint /predict --payload body.json
                                              your own BentoML service, with requests it accepts

Exit status: 0 when every scene ended as its manifest expects, 1 when one did not, 2 for a
problem to fix (the message names it), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from headway.k8s.client import ApiError, Kube, make_api_client
from headway.reconciler import MODEL_DEPLOYMENT
from headway.sandbox import session as sessions
from headway.sandbox.faults import EXAMPLES as FAULT_EXAMPLES
from headway.sandbox.faults import FaultSpec
from headway.sandbox.session import SandboxError, SessionOptions, Stopped
from headway.sandbox.story import Outcome, Recorder, Scene, Story, load_scenes

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SCENES = REPO_ROOT / "examples" / "sandbox"
FAST_SCALE = 0.25


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headway sandbox", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run Headway on this machine: an embedded API server, the real operator, a real BentoML server per "
                    "pod, a real Prometheus and live traffic; play scenes and show what the operator decides.",
        epilog="actions: (none) play scenes · apply -f FILE: apply to the running sandbox · down: stop every sandbox",
    )
    parser.add_argument("action", nargs="?", choices=("play", "apply", "down"), default="play", help=argparse.SUPPRESS)
    parser.add_argument("-f", "--filename", dest="files", action="append", type=Path, default=[],
                        help="a ModelDeployment manifest to play (repeatable, played in order); default: examples/sandbox/*.yaml")
    parser.add_argument("--keep", action="store_true", help="keep everything running after the scenes, until Ctrl-C "
                        "(use kubectl with the printed kubeconfig, or `headway sandbox apply -f`)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_true", help=f"play every duration at x{FAST_SCALE} (analysis intervals stay >= 3s)")
    speed.add_argument("--time-scale", type=float, default=None, metavar="X", help="multiply every duration of the manifests by X")
    parser.add_argument("--fault", type=str, default=None, metavar="SPEC",
                        help=f"inject faults into every new version (first seen as a candidate): {FAULT_EXAMPLES.replace('%', '%%')}")
    parser.add_argument("--service", default=None, metavar="MODULE:CLASS|BENTO_DIR",
                        help="your BentoML service, importable from the current directory, or a built bento's directory "
                             "(`bentoml get NAME:VERSION -o path`; default: the bundled fraud scorer)")
    parser.add_argument("--endpoint", default="/score", metavar="PATH",
                        help="the path the load generator POSTs to (default /score, the bundled example's)")
    parser.add_argument("--payload", type=Path, default=None, metavar="FILE.json",
                        help="the JSON body of each request, or a JSON list of bodies picked at random "
                             "(default: the bundled example's random features)")
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second per ModelDeployment (default 30)")
    parser.add_argument("--no-live", action="store_true", help="print one line per change instead of the live view")
    parser.add_argument("--out", type=Path, default=None, help="where to write the picture and the summary "
                        "(default: <state root>/reports/<run>)")
    parser.add_argument("--prometheus", default=None, metavar="PATH", help="the Prometheus binary (default: /usr/bin/prometheus or PATH)")
    parser.add_argument("--prometheus-port", type=int, default=None, help="Prometheus' port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--run", default=None, help="apply: the run to apply to (its id, run-...), when several are running")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            count = sessions.down()
            print("no sandbox was running" if count == 0 else f"stopped {count} sandbox run(s)")
            return 0
        if args.action == "apply":
            return apply(args)
        return play(args, parser)
    except SandboxError as exc:
        print(f"headway sandbox: error: {exc}", file=sys.stderr)
        return 2


def time_scale(args: argparse.Namespace) -> float:
    if args.fast:
        return FAST_SCALE
    if args.time_scale is not None:
        if not args.time_scale > 0:
            raise SandboxError(f"--time-scale {args.time_scale}: must be a positive number, e.g. 0.25")
        return float(args.time_scale)
    return 1.0


def scene_files(args: argparse.Namespace) -> list[Path]:
    if args.files:
        return list(args.files)
    files = sorted(DEFAULT_SCENES.glob("*.yaml"))
    if not files:
        raise SandboxError(f"the default scenes are not at {DEFAULT_SCENES} (a checkout of the repository has them): pass -f FILE")
    return files


def play(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    fault = None
    if args.fault is not None:
        try:
            fault = FaultSpec.parse(args.fault)
        except ValueError as exc:
            raise SandboxError(f"--fault {args.fault}: {exc}") from None
        if fault.shift and args.service:
            raise SandboxError(f"--fault {args.fault}: shift changes the bundled example's answers; "
                               f"it cannot change those of --service {args.service} (errors and latency can)")
    if args.rate <= 0:
        raise SandboxError(f"--rate {args.rate}: must be a positive number of requests per second")
    payloads = sessions.load_payloads(args.payload) if args.payload is not None else None
    endpoint = args.endpoint if args.endpoint.startswith("/") else f"/{args.endpoint}"
    scale = time_scale(args)
    scenes = load_scenes(scene_files(args), scale)  # every file checked before anything starts
    live = not args.no_live and sys.stdout.isatty()
    view: Any
    if live:
        from headway.sandbox.view import LiveView

        view = LiveView()
    else:
        from headway.sandbox.view import PlainView

        view = PlainView()
    options = SessionOptions(prometheus_binary=args.prometheus, prometheus_port=args.prometheus_port, service=args.service,
                             fault=fault, rate=args.rate, endpoint=endpoint, payloads=payloads, time_scale=scale)
    outcomes: list[Outcome] = []
    interrupted = ""
    scenes_over: float | None = None
    with sessions.running(options) as session:
        recorder = Recorder(session)
        story = Story(session, view, recorder)
        view.start(session)
        try:
            if args.service and args.payload is None:
                view.note(f"--service {args.service}: the load generator sends POST {endpoint} with the bundled example's "
                          "body; pass --endpoint and --payload FILE.json for requests your service accepts")
            if fault is not None:
                view.note(f"--fault {fault}: injected into every new version, from the moment it is a candidate")
            outcomes = story.play(scenes, stop_on_failure=not args.keep)
            scenes_over = recorder.now()
            if args.keep:
                view.note("the scenes are over; everything keeps running until Ctrl-C. Change the model with "
                          f"`kubectl --kubeconfig {session.kubeconfig} apply --server-side -f FILE` "
                          "(or `headway sandbox apply -f FILE`) and steer it with kubectl annotate, as in the README")
                story.watch(threading.Event())
        except KeyboardInterrupt:
            interrupted = "stopped by Ctrl-C"
        except Stopped:
            interrupted = "stopped by SIGTERM (`headway sandbox down`)"
        finally:
            view.stop()
            outcomes = list(story.outcomes)  # the scenes that finished, also when one was interrupted
            afterwards = later_decisions(recorder, scenes_over)
            report = write_report(args.out, session.run_id, recorder, outcomes, scenes, session.all_pids, afterwards)
    print_summary(outcomes, scenes, report, interrupted, afterwards)
    if interrupted:
        return 130
    return 0 if outcomes and len(outcomes) == len(scenes) and all(o.ok for o in outcomes) else 1


def later_decisions(recorder: Recorder, since: float | None) -> list[str]:
    """The operator's decisions after the scenes (``--keep``: the user's own changes), in words."""
    if since is None:
        return []
    lines = []
    for key, decisions in sorted(recorder.timeline.decisions.items()):
        for decision in decisions:
            if decision.t >= since and decision.event in ("RolloutStarted", "Promoted", "RolledBack", "Aborted", "Deployed",
                                                          "BakeBreach", "SpecRejected"):
                lines.append(f"   [{decision.t:6.0f}s] {key}: {decision.event} {decision.bento}: {decision.message}".rstrip(": "))
    return lines


def write_report(out: Path | None, run_id: str, recorder: Recorder, outcomes: list[Outcome], scenes: list[Scene],
                 pids: set[int], afterwards: list[str] | None = None) -> Path:
    from headway.sandbox.chart import render_svg
    from headway.sandbox.view import summary

    directory = out or sessions.state_root() / "reports" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    timeline = recorder.timeline
    pictures = []
    for key in timeline.samples:
        name = "timeline.svg" if len(timeline.samples) == 1 else f"timeline-{key.replace('/', '-')}.svg"
        (directory / name).write_text(render_svg(timeline, key))
        pictures.append(str(directory / name))
    lines = summary(outcomes) + (["After the scenes:", *afterwards] if afterwards else [])
    (directory / "summary.txt").write_text("\n".join(lines) + "\n")
    data = {
        "run": run_id, "pictures": pictures, "pids": sorted(pids),
        "scenes": [{"title": o.scene.title, "source": o.scene.source, "bento": o.scene.bento, "expect": o.scene.expect,
                    "result": o.result, "ok": o.ok, "seconds": round(o.seconds, 1), "status": o.status,
                    "decision": asdict(o.decision) if o.decision else None, "load": o.load} for o in outcomes],
        "notPlayed": [s.title for s in scenes[len(outcomes):]],
        "decisions": {k: [asdict(d) for d in v] for k, v in timeline.decisions.items()},
    }
    (directory / "summary.json").write_text(json.dumps(data, indent=1, default=str))
    return directory


def print_summary(outcomes: list[Outcome], scenes: list[Scene], report: Path, interrupted: str,
                  afterwards: list[str] | None = None) -> None:
    from headway.sandbox.view import summary

    print("\nWhat happened:" if outcomes else "\nNo scene finished.")
    for line in summary(outcomes):
        print(line)
    if afterwards:
        print("After the scenes (your changes, the operator's decisions):")
        for line in afterwards:
            print(line)
    if interrupted:
        print(f"({interrupted})")
    if len(outcomes) < len(scenes):
        print("Not finished: " + "; ".join(f"{i}. {scene.title}" for i, scene in enumerate(scenes[len(outcomes):], len(outcomes) + 1)))
    pictures = sorted(report.glob("timeline*.svg"))
    for picture in pictures:
        print(f"Picture of weights, error rate and latency over time: {picture}")
    print(f"Summary: {report / 'summary.txt'} (and summary.json). Everything the sandbox started is stopped.")


def apply(args: argparse.Namespace) -> int:
    if not args.files:
        raise SandboxError("apply needs -f FILE (a ModelDeployment manifest)")
    running = sessions.live_runs()
    if args.run:
        running = [(path, state) for path, state in running if path.name == args.run]
    if not running:
        raise SandboxError("no sandbox is running" + (f" with id {args.run}" if args.run else "")
                           + ": start one with `headway sandbox --keep` (or `headway sandbox -f FILE --keep`)")
    if len(running) > 1:
        raise SandboxError("several sandboxes are running; choose one with --run: " + ", ".join(p.name for p, _ in running))
    path, state = running[0]
    # The running sandbox's pace (--fast or --time-scale when it started), unless given here.
    given = args.fast or args.time_scale is not None
    scale = time_scale(args) if given else float(state.get("timeScale") or 1.0)
    scenes = load_scenes(args.files, scale, state.get("prometheus"))
    kube = Kube(make_api_client(str(state["kubeconfig"])))
    for scene in scenes:
        for note in scene.notes:
            print(f"note: {note}")
        namespace = scene.manifest["metadata"].setdefault("namespace", "default")
        try:
            kube.create(sessions.NAMESPACE, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        except ApiError as exc:
            if exc.status != 409:
                raise SandboxError(f"creating namespace {namespace}: {exc}") from None
        try:
            kube.apply(MODEL_DEPLOYMENT, namespace, scene.manifest, field_manager="kubectl")  # as `kubectl apply --server-side`: the user can go on with it
        except ApiError as exc:
            raise SandboxError(f"{scene.source}: the API server refused it: {exc}") from None
        print(f"applied {scene.key} ({scene.bento}) to sandbox {path.name}")
    print(f"watch it: kubectl --kubeconfig {state['kubeconfig']} get md -A -w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
