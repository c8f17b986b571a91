"""The `headway` command line: `headway operator` runs the operator; `headway sandbox` runs it on
this machine with real model servers, Prometheus and traffic (headway/sandbox/command.py);
`headway profile` builds a reference profile from training data (headway/monitoring/profiling.py)."""

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
            liveness_endpoint=f"http://{config.health_addr}/healthz",
        )
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        # Imported only here: the operator's image never loads the sandbox (rich, BentoML, kmock).
        from headway.sandbox.command import main as sandbox_main

        return sandbox_main(argv[1:])
    if argv[:1] == ["profile"]:
        from headway.monitoring.profiling import main as profile_main

        return profile_main(argv[1:])
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
