"""The `headway` command line: `headway operator` runs the operator; `headway sandbox` runs it on
this machine with real model servers, Prometheus and traffic (headway/sandbox/command.py);
`headway profile` builds a reference profile from training data (headway/monitoring/profiling.py);
`headway plan -f manifest.yaml` prints the deployment plan a manifest implies, for sign-off (headway/planning/signoff.py);
`headway audit md/NAME` prints every decision of its rollouts from their RolloutRecords (headway/audit.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headway import config as cfg


def run_operator(config: cfg.OperatorConfig) -> None:
    import kopf  # here, not at the top: `headway profile` and `headway crd` start without it

    from headway.handlers import register
    from headway.handlers.settings import apply_settings

    if config.kubeconfig:  # kopf's login and ours read the same file
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not config.verbose:  # Headway logs each decision and write itself; kopf's "Handler ... succeeded" is noise
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.health_addr.rsplit(":", 1)[0] or "0.0.0.0")
    registry = kopf.OperatorRegistry()
    register(registry, config)
    # Least privilege: no cluster-wide scanning, peering scoped like the RBAC (handlers/settings.py).
    # Applied before kopf starts any task; idempotent if a startup handler applies it again.
    settings = kopf.OperatorSettings()
    apply_settings(settings, config)
    logging.getLogger("headway").info(
        "starting: namespaces=%s peering=%s", ",".join(config.namespaces) or "<all>", config.peering or "<standalone>",
    )
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=config.clusterwide,
            namespaces=config.namespaces,
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=config.priority,
            identity=config.identity or None,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
            liveness_endpoint=f"http://{config.health_addr}/healthz",
        )
    )


def plan_main(argv: list[str]) -> int:
    """`headway plan -f FILE [-f FILE...] [-o FILE]`: the deployment plan of every ModelDeployment in the
    manifests, as Markdown. Exit 2 with every problem named by field when a manifest is invalid."""
    from pathlib import Path

    import yaml

    from headway import GROUP, KIND, VERSION
    from headway.planning.signoff import not_planned_markdown, signoff_markdown
    from headway.planning.validation import Problem, check_spec, ignored_fields, parse_spec

    parser = argparse.ArgumentParser(prog="headway plan", description="Print the deployment plan a manifest implies (how and where "
                                     "the model is served, SLOs, steps, rollback triggers, approvals, escalation) as Markdown for sign-off.")
    parser.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                        help="a manifest (YAML, possibly several documents; - for stdin); repeatable")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the Markdown to FILE instead of stdout")
    args = parser.parse_args(argv)
    errors: list[str] = []
    plans: list[str] = []
    others: list[tuple[str, str, str]] = []
    for path in args.filename:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            errors.append(f"{path}: not valid YAML: {' '.join(str(exc).split())}")
            continue
        for index, doc in enumerate(documents, 1):
            if not isinstance(doc, dict):
                errors.append(f"{path}: document {index}: not a Kubernetes object (a mapping with apiVersion, kind, metadata)")
                continue
            meta = doc.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            name, namespace = meta.get("name"), meta.get("namespace")
            named = f"{namespace}/{name}" if namespace and name else str(name or f"document {index}")
            if doc.get("kind") != KIND:
                others.append((str(doc.get("kind") or "<no kind>"), named, path))
                continue
            problems: list[Problem] = []
            if doc.get("apiVersion") != f"{GROUP}/{VERSION}":
                problems.append(Problem("apiVersion", f"{doc.get('apiVersion')!r} is not {GROUP}/{VERSION}"))
            if not isinstance(doc.get("metadata"), dict):
                problems.append(Problem("metadata", "required: a mapping with name (and namespace)"))
            elif not isinstance(name, str) or not name:
                problems.append(Problem("metadata.name", "required"))
            if namespace is not None and not isinstance(namespace, str):
                problems.append(Problem("metadata.namespace", "must be a string"))
            annotations = meta.get("annotations") or {}
            if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
                problems.append(Problem("metadata.annotations", "must map names to strings (quote numbers and booleans)"))
                annotations = {}
            raw_spec = doc.get("spec")
            if raw_spec is not None and not isinstance(raw_spec, dict):
                problems.append(Problem("spec", "must be a mapping"))
                raw_spec = None
            spec, spec_problems = parse_spec(raw_spec)
            problems += spec_problems
            if spec is not None:
                problems += check_spec(name if isinstance(name, str) else "", spec)
            if problems or spec is None:
                errors += [f"{path}: ModelDeployment {named}: {p}" for p in problems]
                continue
            plans.append(signoff_markdown(spec, name=str(name), namespace=namespace, annotations=annotations,
                                          ignored=ignored_fields(raw_spec or {})))
    if not errors and not plans:
        errors.append(f"no ModelDeployment in {', '.join(args.filename)}: nothing to plan")
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        print(f"headway plan: {len(errors)} problem{'s' if len(errors) != 1 else ''}; nothing planned", file=sys.stderr)
        return 2
    markdown = "\n---\n\n".join(plans)
    if others:
        markdown += "\n---\n\n" + not_planned_markdown(others)
    if args.output:
        try:
            Path(args.output).write_text(markdown, encoding="utf-8")
        except OSError as exc:
            print(f"headway plan: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        # Imported only here: the operator's image never loads the sandbox (rich, BentoML, kmock).
        from headway.sandbox.command import main as sandbox_main

        return sandbox_main(argv[1:])
    if argv[:1] == ["profile"]:
        from headway.monitoring.profiling import main as profile_main

        return profile_main(argv[1:])
    if argv[:1] == ["plan"]:
        return plan_main(argv[1:])
    if argv[:1] == ["audit"]:
        from headway.audit import main as audit_main  # reads RolloutRecords: no kopf, no operator loop

        return audit_main(argv[1:])
    from headway import config as cfg  # here: `headway profile` does not load the operator's modules

    parser = argparse.ArgumentParser(prog="headway", description="Headway: safe delivery of BentoML models on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("operator", help="run the operator")
    cfg.add_arguments(op)
    sub.add_parser("crd", help="print the ModelDeployment CRD (YAML)")
    sub.add_parser("sandbox", help="run Headway on this machine: real model servers, Prometheus, traffic and a live view "
                   "(`headway sandbox --help`)")
    sub.add_parser("profile", help="build a reference profile for model monitoring from training data (CSV or Parquet; "
                   "`headway profile --help`)")
    sub.add_parser("plan", help="print the deployment plan a manifest implies, as Markdown for sign-off (`headway plan --help`)")
    sub.add_parser("audit", help="print every decision of a ModelDeployment's rollouts from its RolloutRecords, as Markdown, CSV "
                   "or JSON (`headway audit --help`)")
    args = parser.parse_args(argv)
    if args.command == "operator":
        try:
            config = cfg.from_args(args)
        except ValueError as exc:
            parser.error(str(exc))
        run_operator(config)
    elif args.command == "crd":
        import yaml

        from headway.api.crd import build_crd

        yaml.safe_dump(build_crd(), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
