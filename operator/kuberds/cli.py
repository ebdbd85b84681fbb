"""The `kuberds` command: one package, two roles (like CloudNativePG's manager binary).

kuberds operator   the controller that reconciles kuberds custom resources (runs anywhere)
kuberds agent      the instance manager that runs inside each database pod
kuberds proxy      the supervisor of the pooling proxy in each proxy pod
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib
import importlib.util
import io
import signal
import sys

from kuberds import __version__
from kuberds.engines import INFOS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kuberds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"kuberds {__version__}")
    roles = parser.add_subparsers(dest="role", required=True, metavar="{operator,agent,proxy}")

    operator = roles.add_parser(
        "operator",
        help="run the controller that reconciles DBInstance, DBCluster, ReadReplica, "
        "CacheCluster and DBSnapshot objects",
    )
    scope = operator.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    operator.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 turns it off)")
    operator.add_argument("--health-port", type=int, default=8081, help="liveness endpoint port for the kubelet probe")
    operator.add_argument("--verbose", action="store_true", help="debug logging")

    agent = roles.add_parser(
        "agent",
        help="run the in-pod instance manager (engines without an agent package exit with status 2)",
    )
    agent.add_argument("engine", choices=tuple(INFOS), help="database engine this pod runs")
    agent.add_argument(
        "--no-kubernetes",
        action="store_true",
        help="do not publish status or serve DBSnapshots (Patroni still needs the API server)",
    )
    proxy = roles.add_parser("proxy", help="run the pooling proxy of a proxy pod (PgBouncer for postgres)")
    proxy.add_argument("engine", choices=tuple(INFOS), help="database engine the proxy serves")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.role == "operator":
        from kuberds.operator_main import run_operator

        return run_operator(
            namespaces=args.namespace,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            verbose=args.verbose,
        )
    if args.role == "proxy":
        from kuberds.agent.proxy import main as proxy_main

        return proxy_main(args.engine)
    package = f"kuberds.agent.{args.engine}"  # an engine's agent is the package of its name
    if importlib.util.find_spec(package) is None:
        print(f"kuberds agent {args.engine}: this engine's agent is not implemented yet.", file=sys.stderr)
        return 2
    # `kill -USR1` prints every thread's stack to stderr (the pod's log): how a stuck agent is
    # read. Not where stderr is no file (captured, as under pytest).
    with contextlib.suppress(io.UnsupportedOperation, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    return importlib.import_module(package).main(use_kubernetes=not args.no_kubernetes)
