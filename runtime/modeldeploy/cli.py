"""``modeldeploy`` command line (also ``python -m modeldeploy``).

Order matters for failing fast: parse and validate the deploy config, then check that
every requested backend exists (TensorRT, CUDA), and only then download or export.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldeploy import __version__
from modeldeploy.errors import ModelDeployError

if TYPE_CHECKING:
    from modeldeploy.cli_options import Overrides

log = logging.getLogger("modeldeploy")


def _parse_cfg_options(items: list[str] | None) -> dict[str, Any]:
    """``--cfg-options`` as mmengine's DictAction reads them, plus JSON for nested values (cli_options.py)."""
    from modeldeploy.cli_options import parse_cfg_options

    return parse_cfg_options(items)


def _overrides(args: argparse.Namespace) -> Overrides:
    """``--cfg-options`` and every flag that sets a deploy-config key, as one set of overrides."""
    from modeldeploy.cli_options import overrides_from_args

    return overrides_from_args(args)


def _override_flags(args: argparse.Namespace) -> dict[str, str]:
    """Each overridden dotted key → the flag as the user typed it, to blame a bad value on it."""
    return _overrides(args).flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeploy", description="Export, verify and benchmark PyTorch models (ONNX, TensorRT)."
    )
    p.add_argument("--version", action="version", version=f"modeldeploy {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a deployment: load → export → verify → evaluate → publish")
    r.add_argument("deploy_cfg", help="deploy config (path, s3://, builtin:<project>/<file>)")
    r.add_argument("model_cfg", help="model config (path, s3://, builtin:<project>/<file>)")
    r.add_argument(
        "checkpoint", nargs="?", default=None, help="checkpoint; default: checkpoint_path in the deploy config"
    )
    r.add_argument("--work-dir", default=None, help="output directory (overrides export.work_dir)")
    r.add_argument(
        "--device", default=None, help="cpu | cuda | cuda:N (overrides export.device and the backends' devices)"
    )
    r.add_argument(
        "--artifact-uri",
        default=None,
        help="where to publish: a directory, file://… or s3://bucket/prefix (default: the work dir)",
    )
    r.add_argument(
        "--cfg-options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="override deploy-config keys (dotted); values as mmengine's DictAction reads them, JSON for nested values (docs/configuration.md)",
    )
    r.add_argument(
        "--baseline",
        default=None,
        metavar="RESULTS",
        help="gate against this earlier good run: results.json, run dir, publication root or s3://… "
        "(sets evaluation.gate.baseline.uri; limits: evaluation.gate.baseline.max_metric_drop / max_latency_ratio)",
    )
    r.add_argument(
        "--project",
        default=os.environ.get("MODELDEPLOY_EXPECTED_PROJECT") or None,
        metavar="NAME",
        help="refuse to run unless the deploy config is for this project (default: $MODELDEPLOY_EXPECTED_PROJECT, "
        "which the operator sets to the ModelDeployment's spec.project)",
    )
    r.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    r.add_argument("--log-format", default="text", choices=["text", "json"])
    r.add_argument(
        "--termination-log",
        default=os.environ.get("MODELDEPLOY_TERMINATION_LOG"),
        help="write the compact run summary here (default: $MODELDEPLOY_TERMINATION_LOG)",
    )
    r.add_argument("--run-id", default=os.environ.get("MODELDEPLOY_RUN_ID"), help="identifier recorded in the manifest")
    c = sub.add_parser(
        "check-config", help="validate a deploy config (and, given MODEL_CFG, the whole export plan) and exit"
    )
    c.add_argument("deploy_cfg")
    c.add_argument(
        "model_cfg",
        nargs="?",
        default=None,
        help="also build the model (random weights) and the graphs `run` would export, and check every "
        "TensorRT profile against them — no checkpoint, data, GPU or export needed",
    )
    c.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE")
    c.add_argument("--project", default=None, metavar="NAME", help="as for run: the config must be for this project")
    v = sub.add_parser(
        "convert-config", help="write an AWML deployment-framework deploy config in modeldeploy's layout (docs/awml.md)"
    )
    v.add_argument("deploy_cfg", help="AWML deploy config (e.g. projects/CenterPoint/deploy/configs/deploy_config.py)")
    v.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")
    v.add_argument(
        "--base-dir",
        default=".",
        help="directory AWML was run from: relative paths become absolute under it (default: the working directory; '' keeps them relative)",
    )
    v.add_argument(
        "--model-config",
        default=None,
        help="the model config, whose data_root AWML joins to the info file's relative paths",
    )
    m = sub.add_parser(
        "compare",
        help="compare two runs' results.json (local, run dir or s3://); exit 3 on a regression beyond the limits",
    )
    m.add_argument("run_a", help="baseline: results.json, a run directory / publication root, or s3://…/results.json")
    m.add_argument("run_b", help="candidate, same forms")
    m.add_argument(
        "--max-metric-drop",
        type=float,
        default=None,
        help="absolute drop of a backend's headline metric B vs A that counts as a regression (e.g. 0.01)",
    )
    m.add_argument(
        "--max-latency-ratio",
        type=float,
        default=None,
        help="latency p50 B/A above this counts as a regression (e.g. 1.2)",
    )
    j = sub.add_parser(
        "projects", help="list the model projects and the builtin:<project>/<file> configs and checkpoints they ship"
    )
    j.add_argument("--json", action="store_true", help="print JSON (one object per project) instead of text")
    return p


def _load_config(
    deploy_cfg: str, overrides: Overrides | Mapping[str, Any] | None = None, model_cfg: str | None = None
):  # -> BaseDeploymentConfig
    """The deploy config with the command line's overrides merged in once and validated once.

    Either layout: an AWML deployment-framework config is converted in memory (one INFO line);
    ``model_cfg`` gives it the dataset's data_root as AWML finds it. ``overrides``: an
    ``Overrides`` (``_overrides(args)``) or plain dotted-key options. When the file loads
    without the overrides but not with them, the error names the flag instead of the file."""
    from modeldeploy.cli_options import Overrides, blame_flag
    from modeldeploy.config.awml_deploy import load_deploy_config
    from modeldeploy.errors import ConfigError

    if not isinstance(overrides, Overrides):
        overrides = Overrides(dict(overrides or {}))
    path = _resolve(deploy_cfg)
    model_src = (lambda: _resolve(model_cfg)) if model_cfg else None
    try:
        return load_deploy_config(path, overrides.options, model_src, overrides.apply)
    except ConfigError as exc:
        if not overrides.flags or not overrides:
            raise
        try:
            load_deploy_config(path, {}, model_src)
        except ModelDeployError:
            raise exc from None  # the file itself is wrong: its own error stands
        raise blame_flag(exc, str(path), overrides.flags) from None


def _resolve(uri: str) -> Path:
    from modeldeploy.artifacts.fetch import fetch

    return fetch(uri)


def _preflight(cfg: Any) -> None:
    """Fail fast, before any download or export, when a requested backend cannot run."""
    import torch

    from modeldeploy.errors import BackendUnavailableError

    devices = {cfg.export.device}
    devices |= {be.device for be in cfg.evaluation_backends().values() if be.device}
    devices |= {d for s in cfg.verification_scenarios() for d in (s.ref_device, s.test_device)}
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        raise BackendUnavailableError(
            "a CUDA device is requested but none is visible (torch.cuda.is_available() is False)",
            hint="use --device cpu, or run on a GPU node",
        )
    if cfg.needs_tensorrt():
        from modeldeploy.tensorrt_api import require_tensorrt

        require_tensorrt()


def cmd_run(args: argparse.Namespace) -> int:
    from modeldeploy.logging_setup import setup_logging
    from modeldeploy.redact import guard_std_streams

    guard_std_streams()  # before any config code runs: nothing it prints or logs carries a secret value

    import time

    from modeldeploy.progress import RunProgress

    t_start = time.perf_counter()
    setup_logging(args.log_level, args.log_format)
    reporter = RunProgress(args.log_format)
    reporter.starting(args.deploy_cfg, args.model_cfg)  # before the slow imports (torch): no silent start
    try:
        # every flag that sets a deploy-config key is merged with --cfg-options and checked with
        # the file, once (output locations included, before anything is written): from here on
        # the config is the only source the runner reads
        cfg = _load_config(args.deploy_cfg, _overrides(args), args.model_cfg)
        _check_project_name(cfg, args.project, args.deploy_cfg)
        _preflight(cfg)
        work_dir = cfg.export.output_dir
        try:
            setup_logging(args.log_level, args.log_format, work_dir / "logs" / "run.log")
        except OSError as exc:  # a read-only / full work dir: one line (stderr + termination log), exit 2
            from modeldeploy.artifacts.localio import storage_error

            setup_logging(args.log_level, args.log_format)
            raise storage_error(exc, "cannot write the work dir", work_dir) from None
        reporter.banner(
            project=cfg.project,
            deploy_cfg=args.deploy_cfg,
            model_cfg=args.model_cfg,
            checkpoint=args.checkpoint,
            device=cfg.export.device,
            mode=cfg.export.mode,
        )
        from modeldeploy.runners import DeploymentRunner

        runner = DeploymentRunner(
            cfg,
            args.model_cfg,
            args.checkpoint,
            run_id=args.run_id,
            termination_log=args.termination_log,
            reporter=reporter,
        )
    except ModelDeployError as exc:
        _fail_early(exc, args)
        return exc.exit_code
    _one_error_line_on_console(args.log_format)
    outcome = runner.run()
    from modeldeploy.runners.report import print_console_summary

    if args.log_format == "text":
        print_console_summary(outcome.run_results)
    if outcome.error is not None:
        print(f"modeldeploy: error: {outcome.error.one_line()}", file=sys.stderr)
    log.info("results: %s", outcome.results_path)
    report = next((p for p in (work_dir / "report.html", work_dir / "report.md") if p.is_file()), None)
    line = reporter.closing(outcome.run_results, time.perf_counter() - t_start, str(report) if report else None)
    if args.log_level in ("WARNING", "ERROR"):
        print(line, file=sys.stderr)  # the log record was filtered out by --log-level; the closing line never is
    return outcome.exit_code


def _one_error_line_on_console(fmt: str) -> None:
    """In text mode the run's failure reaches the terminal once, as the final ``modeldeploy: error:``
    line: the runner's "stage X failed" record stays in run.log (and in JSON logs) only."""
    if fmt == "json":
        return
    console = [h for h in logging.getLogger().handlers if not isinstance(h, logging.FileHandler)]
    for h in console:
        h.addFilter(lambda record: getattr(record, "event", None) != "stage_failed")


_STORAGE_REASONS = ("ReadOnlyStorage", "NoSpace", "PermissionDenied", "LocalIOError")


def _fail_early(exc: ModelDeployError, args: argparse.Namespace) -> None:
    """A failure before the runner exists still gets one line and a termination summary."""
    from modeldeploy.runners.termination import write_termination_log

    print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
    write_termination_log(
        args.termination_log,
        {
            "v": 1,
            "status": "failed",
            "project": None,
            "run_id": args.run_id,
            "failure": {
                "stage": "preflight" if exc.reason in _STORAGE_REASONS else "config",
                "reason": exc.reason,
                "message": exc.one_line()[:300],
            },
            "artifacts": [],
            "verification": None,
            "evaluation": {},
            "durations_s": {},
        },
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:  # the AWML-conversion INFO line; never replace a host's handlers
        from modeldeploy.logging_setup import setup_logging

        setup_logging("INFO", "text")
    try:
        cfg = _load_config(args.deploy_cfg, _overrides(args), args.model_cfg)
        _check_project_name(cfg, args.project, args.deploy_cfg)
        _require_project(cfg)  # what `run` requires before any work, so the two agree
    except ModelDeployError as exc:
        print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    print(f"{args.deploy_cfg}: ok (project={cfg.project}, mode={cfg.export.mode}, device={cfg.export.device})")
    if args.model_cfg is None:
        return 0
    from modeldeploy.runners.plan_check import check_plan

    try:
        report = check_plan(cfg, _resolve(args.model_cfg))
    except ModelDeployError as exc:
        print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    for name, shapes in report.graphs.items():
        print(
            f"  graph {name}: "
            + ", ".join(f"{k}{list(v)}" for k, v in shapes.items())
            + (" (-1 = dynamic)" if any(-1 in v for v in shapes.values()) else "")
        )
    for w in report.warnings:
        print(f"  warning: {w}")
    print(
        f"{args.model_cfg}: plan ok ({len(report.graphs)} graph(s){', TensorRT profiles cover them' if cfg.export.should_export_tensorrt else ''})"
    )
    return 0


def _check_project_name(cfg: Any, expected: str | None, location: str) -> None:
    """``--project``: the deploy config must be for the project the caller names.

    Why: the deploy config decides what runs, while the operator labels the run's status,
    metrics and dashboards with the ModelDeployment's spec.project; a CR saying ``yolox`` whose
    deployConfig is a calibration config would otherwise run calibration under yolox's name."""
    if expected is None or cfg.project == expected:
        return
    from modeldeploy.errors import ConfigError

    raise ConfigError(
        f"--project {expected!r} (the ModelDeployment's spec.project) but the deploy config "
        f"{location} is for project {cfg.project!r}",
        hint=f"set spec.project to {cfg.project!r}, or point spec.deployConfig at a {expected} deploy config",
    )


def _require_project(cfg: Any) -> None:
    from modeldeploy.projects import project_for

    project_for(cfg)  # the project exists and its own deploy section (e.g. yolox = dict(...)) parses


def cmd_convert_config(args: argparse.Namespace) -> int:
    from modeldeploy.config.awml_deploy import convert_file

    try:
        text = convert_file(
            _resolve(args.deploy_cfg),
            args.output,
            Path(args.base_dir).resolve() if args.base_dir else None,
            (lambda: _resolve(args.model_config)) if args.model_config else None,
        )
    except ModelDeployError as exc:
        print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"{args.deploy_cfg}: converted to {args.output}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from modeldeploy.runners.compare import compare, load_results, print_comparison

    try:
        a, b = load_results(args.run_a), load_results(args.run_b)
    except ModelDeployError as exc:
        print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    result = compare(a, b, max_metric_drop=args.max_metric_drop, max_latency_ratio=args.max_latency_ratio)
    print_comparison(result, args.run_a, args.run_b)
    return 3 if result.regressed else 0


def cmd_projects(args: argparse.Namespace) -> int:
    """Discoverability: what `run` accepts without reading the source tree (docs/adding-a-project.md)."""
    import json

    from modeldeploy.projects.catalog import list_projects, render_text

    infos = list_projects()
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
    else:
        sys.stdout.write(render_text(infos))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "convert-config":
            return cmd_convert_config(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "projects":
            return cmd_projects(args)
        return cmd_check_config(args)
    except ModelDeployError as exc:  # a bad flag (--cfg-options, --device) caught before the run starts
        if args.command == "run":
            _fail_early(exc, args)
        else:
            print(f"modeldeploy: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("modeldeploy: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from modeldeploy.redact import scrub

        log.debug("unexpected error", exc_info=True)
        print(
            f"modeldeploy: error: InternalError: {scrub(f'{type(exc).__name__}: {exc}')} — fix: this is a bug; run with --log-level DEBUG",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
