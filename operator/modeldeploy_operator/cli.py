"""`python -m modeldeploy_operator`: parse flags, start /metrics + /healthz, run kopf.

Flags override the MODELDEPLOY_* environment (docs/operator.md). kopf runs standalone
(no peering objects, so no extra RBAC): run one replica, or use the Deployment's
`strategy: Recreate`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import OperatorConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m modeldeploy_operator", description=__doc__.splitlines()[0])
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="serve this namespace (repeatable); env MODELDEPLOY_NAMESPACES",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=None,
        help="serve every namespace (needs the ClusterRole bound cluster-wide)",
    )
    p.add_argument("--metrics-host", help="bind address of /metrics and /healthz (default 127.0.0.1; 0.0.0.0 in a pod)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz (default 8080; 0 disables)")
    p.add_argument("--runtime-image", help="default runtime image (env MODELDEPLOY_RUNTIME_IMAGE)")
    p.add_argument(
        "--unschedulable-after",
        type=float,
        dest="unschedulable_after_s",
        help="seconds a pod may stay unschedulable before the deployment is Stalled (default 120)",
    )
    p.add_argument(
        "--resync-interval", type=float, dest="resync_interval_s", help="fallback resync period in seconds (default 30)"
    )
    p.add_argument("--log-format", choices=("text", "json"), help="log line format (default text)")
    p.add_argument("--max-workers", type=int, help="reconcile threads (default 48; observations get a quarter)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> OperatorConfig:
    return OperatorConfig.from_env(
        runtime_image=args.runtime_image,
        unschedulable_after_s=args.unschedulable_after_s,
        resync_interval_s=args.resync_interval_s,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        namespaces=tuple(args.namespaces) if args.namespaces else None,
        all_namespaces=args.all_namespaces,
        log_format=args.log_format,
        max_workers=args.max_workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = _config(args)
    except ValueError as exc:  # a bad MODELDEPLOY_* value: one line, not a traceback
        print(f"modeldeploy-operator: {exc}", file=sys.stderr)
        return 2
    if not config.namespaces and not config.all_namespaces:
        print("modeldeploy-operator: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2

    import kopf

    from .handlers import State, build_registry
    from .metrics import serve

    kopf.configure(
        verbose=args.verbose,
        debug=args.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:  # kopf logs every handler call at INFO: thousands of lines at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    state = State(config=config)
    registry = build_registry(state)
    if config.metrics_port:
        server = serve(state.metrics, config.metrics_host, config.metrics_port, state.healthy)
        logging.getLogger("modeldeploy_operator").info(
            "serving /metrics and /healthz on %s:%s", config.metrics_host, server.server_address[1]
        )
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=config.all_namespaces,
        namespaces=() if config.all_namespaces else config.namespaces,
        ready_flag=state.ready,
        memo=kopf.Memo(),
    )
    return 0
