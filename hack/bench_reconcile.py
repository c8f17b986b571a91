#!/usr/bin/env python3
"""How much one reconcile costs: time, API requests, memory. Prints figures, asserts nothing.

    python hack/bench_reconcile.py [--models 20] [--rounds 5]

Against the API emulator (in-process, on loopback), it creates N ModelDeployments with a
canary rollout in progress, then reconciles all of them repeatedly in steady state — the
common case: nothing changed, nothing written — and reports per reconcile:

- wall time (ms) of the whole reconcile and of the pure planning alone (its share);
- API requests issued, split into reads and writes (a steady reconcile sends none: it reads
  the operator's watch caches; ``--reader live`` reads the API server instead, as tools do);
- resident memory of the process before and after (growth over the rounds).

Absolute times depend on the machine (and the emulator is slower than a real API server);
compare the ratio of planning to I/O, and requests per reconcile, which do not.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from headway.k8s.cache import Cache, LiveReader  # noqa: E402
from headway.k8s.client import DEPLOYMENT, Kube, make_api_client  # noqa: E402
from headway.planning.naming import Owner  # noqa: E402
from headway.planning.observe import parse_status  # noqa: E402
from headway.planning.plan import Observation, plan  # noqa: E402
from headway.reconciler import CHILD_KINDS, MODEL_DEPLOYMENT, observe_variants, reconcile  # noqa: E402
from headway.sandbox.apiserver import KubeEmulator  # noqa: E402
from tests.e2e.harness import install_crd  # noqa: E402

import yaml  # noqa: E402

SPEC = {
    "model": {"bento": "fraud_scorer:1.0.0", "image": "registry.example.com/fraud:1"},
    "replicas": 4,
    "traffic": {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference"}]}},
    "rollout": {"steps": [{"canary": {"weight": 10, "duration": "1h"}}]},
}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reader", choices=["cache", "live"], default="cache",
                        help="where reconciles read: the operator's watch caches (default) or the API server")
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "schemas" / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml"

    with KubeEmulator.running_in_thread() as emulator:
        emulator.start_deployment_controller(delay=0.05)
        if shared.exists():
            emulator.install_crd(yaml.safe_load(shared.read_text()))
        kubeconfig = emulator.write_kubeconfig(Path("/tmp") / "headway-bench-kubeconfig")
        kube = Kube(make_api_client(str(kubeconfig)))
        install_crd(kube)
        names = [f"model-{i}" for i in range(args.models)]
        for name in names:
            kube.create(MODEL_DEPLOYMENT, "bench", {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": "ModelDeployment",
                                                    "metadata": {"name": name, "namespace": "bench"}, "spec": SPEC})
        # Bring every one to steady state, then start a rollout and let it settle at its canary step.
        for _ in range(4):
            for name in names:
                reconcile(kube, "bench", name)
            time.sleep(0.2)
        for name in names:
            kube.merge_patch(MODEL_DEPLOYMENT, "bench", name, {"spec": {"model": {"bento": "fraud_scorer:2.0.0", "image": "registry.example.com/fraud:2"}}})
        for _ in range(6):
            for name in names:
                reconcile(kube, "bench", name)
            time.sleep(0.2)

        # The operator's reader: watch caches of the children and the ModelDeployments.
        cache = Cache(kube, MODEL_DEPLOYMENT, CHILD_KINDS, ("bench",), lambda namespace, name: None)
        cache.start()
        assert cache.wait_synced(30)
        for name in names:
            cache.put_model(kube.get(MODEL_DEPLOYMENT, "bench", name) or {})
        live_reader = LiveReader(kube, MODEL_DEPLOYMENT)
        reader = cache if args.reader == "cache" else live_reader

        rss_before = rss_mib()
        totals, planning, reads, writes = [], [], [], []
        for _ in range(args.rounds):
            for name in names:
                before = len(emulator._requests)  # noqa: SLF001 - the emulator's request log
                started = time.perf_counter()
                reconcile(kube, "bench", name, reader=reader)
                totals.append((time.perf_counter() - started) * 1000)
                log = emulator._requests[before:]  # noqa: SLF001
                reads.append(sum(1 for r in log if r.method.value == "GET"))
                writes.append(sum(1 for r in log if r.method.value != "GET"))
                body = kube.get(MODEL_DEPLOYMENT, "bench", name)
                assert body is not None
                owner = Owner(name, "bench", body["metadata"]["uid"])
                observed = Observation(body["spec"], body["metadata"].get("generation"), {}, parse_status(body.get("status")),
                                    observe_variants(live_reader.children(owner, (DEPLOYMENT,)), owner))
                started = time.perf_counter()
                plan(owner, observed, datetime.now(timezone.utc))
                planning.append((time.perf_counter() - started) * 1000)
        rss_after = rss_mib()
        cache.stop()
        phases = {kube.get(MODEL_DEPLOYMENT, "bench", n)["status"]["phase"] for n in names}  # type: ignore[index]

    print(f"reader: {args.reader} ({'watch caches, as the operator runs' if args.reader == 'cache' else 'the API server, as tools do'})")
    print(f"{args.models} ModelDeployments (phases: {', '.join(sorted(phases))}), {args.rounds} rounds, steady state")
    print(f"{'':32}{'median':>10}{'p90':>10}{'max':>10}")
    for label, values in (("reconcile, ms", totals), ("of which planning, ms", planning),
                          ("API reads per reconcile", reads), ("API writes per reconcile", writes)):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"{label:32}{statistics.median(values):>10.2f}{p90:>10.2f}{max(values):>10.2f}")
    print(f"planning share of a reconcile: {statistics.median(planning) / statistics.median(totals):.1%}")
    print(f"max RSS: {rss_before:.0f} MiB before the rounds, {rss_after:.0f} MiB after")
    print(f"reconcile_ms={statistics.median(totals):.1f} planning_ms={statistics.median(planning):.2f} "
          f"reads={statistics.median(reads):.0f} writes={max(writes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
