"""GPU latency benchmark: per project and backend, p50/p99 and throughput, plus a timing fidelity check.

Why a separate script (not just ``modeldeploy run``): it measures the same pipelines the
runner evaluates, but adds (1) a larger-batch model-only throughput row and (2) a check
that the latency the runtime REPORTS (``StageTimer``, used by results.json) agrees with an
independent measurement of the same callable — CUDA events around N back-to-back calls,
with no per-call synchronisation — within 5 %. A timer that only measured kernel launches
would fail that check by a wide margin.

Usage (GPU machine; ``--device cpu`` runs a small smoke version anywhere):
    python benchmarks/gpu_latency.py --out $OUT/bench [--projects calibration centerpoint]
    python benchmarks/gpu_latency.py --device cpu --iters 5 --warmup 1   # smoke test

Prints markdown tables and writes them (plus JSON) under --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))

from modeldeploy.core.timing import StageTimer  # noqa: E402
from modeldeploy.evaluation.latency import latency_stats  # noqa: E402

CONFIG_DIR = ROOT / "runtime" / "modeldeploy" / "projects"
# project -> (deploy config, model config); model weights are random (latency does not depend on them)
PROJECTS: dict[str, tuple[str, str]] = {
    "calibration": ("calibration/configs/deploy_demo.py", "calibration/configs/resnet18_5ch.py"),
    "centerpoint": ("centerpoint/configs/deploy_tiny.py", "centerpoint/configs/centerpoint_tiny.py"),
    "yolox": ("yolox/configs/deploy_tiny.py", "yolox/configs/yolox_tiny_256.py"),
}
MODEL_STAGE_EXCLUDE = {"preprocess", "postprocess"}
FIDELITY_TOLERANCE = 0.05


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def independent_mean_ms(fn: Callable[[], Any], device: torch.device, iters: int) -> float:
    """Median ms per call measured independently of StageTimer, the way triton's do_bench
    does: a pair of CUDA events around each call (no per-call synchronize; one at the end),
    or perf_counter with a synchronize on CPU."""
    _sync(device)
    if device.type == "cuda":
        stream = torch.cuda.current_stream(device)
        pairs = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            fn()
            end.record(stream)
            pairs.append((start, end))
        torch.cuda.synchronize(device)
        return float(np.median([s.elapsed_time(e) for s, e in pairs]))
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def timed_calls_ms(fn: Callable[[], Any], device: torch.device, iters: int) -> list[float]:
    """Per-call ms measured with our StageTimer (the runtime's own instrument)."""
    out = []
    for _ in range(iters):
        timer = StageTimer(device)
        with timer.stage("model"):
            fn()
        stages, _total = timer.collect()
        out.append(stages["model"])
    return out


def interleaved_fidelity_ms(fn: Callable[[], Any], device: torch.device, iters: int) -> tuple[float, float]:
    """(StageTimer median, independent median) from alternating calls of the same callable.

    Alternating removes drift between two separate loops (CPU frequency, other load), which
    on launch-bound eager models is larger than the 5 % being checked."""
    reported, independent = [], []
    for _ in range(iters):
        reported += timed_calls_ms(fn, device, 1)
        independent.append(independent_mean_ms(fn, device, 1))
    return float(np.median(reported)), float(np.median(independent))


def _batched(inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in inputs.items()}


class ProjectBench:
    """Loads one project through the DeploymentRunner's own stages (load → ONNX → TensorRT)."""

    def __init__(self, project: str, device: str, work: Path, trt: bool, trt_policy: str) -> None:
        from modeldeploy.config import BaseDeploymentConfig
        from modeldeploy.projects import get_project
        from modeldeploy.runners import DeploymentRunner

        deploy, model = (CONFIG_DIR / p for p in PROJECTS[project])
        if not deploy.is_file() or not model.is_file():
            raise FileNotFoundError(f"{project}: config {deploy.name} or {model.name} is not in this checkout")
        mode = "both" if trt else "onnx"
        options = {"export.device": device, "export.mode": mode, "export.work_dir": str(work / project)}
        if trt:
            options["backend_config.common_config.precision_policy"] = trt_policy
        self.cfg = BaseDeploymentConfig.fromfile(deploy, options)
        self.project = get_project(self.cfg.project if hasattr(self.cfg, "project") else project)

        def random_weights(cfg: Any, model_cfg: Any, ckpt: str | None) -> torch.nn.Module:
            torch.manual_seed(0)
            return self.project.build_model(model_cfg)

        def resolve(uri: str) -> Path:  # configs are local files; the checkpoint is never read (random weights)
            return Path(uri) if not uri.startswith("builtin:") else work / "unused-checkpoint.pth"

        self.runner = DeploymentRunner(
            self.cfg,
            str(model),
            None,
            project=self.project,
            load_model_fn=random_weights,
            resolve_fn=resolve,
        )
        self.runner.load()
        self.runner.export_onnx()
        if trt:
            self.runner.export_tensorrt()
        self.device = torch.device(device)

    def pipeline(self, backend: str, precision: str, cuda_graph: bool = False) -> Any:
        if backend == "tensorrt" and cuda_graph:
            from modeldeploy.backends.tensorrt import TensorRTBackend

            backends = {
                c.name: TensorRTBackend(self.runner.state.engines[c.name].path, self.device, cuda_graph=True)
                for c in self.runner.state.components
            }
            return self.project.build_pipeline(backends, self.cfg, self.runner.state.model_cfg, self.device)
        return self.runner._pipeline(backend, str(self.device), precision)

    def batchable(self) -> bool:
        comps = self.runner.state.components
        return len(comps) == 1 and all(0 in comps[0].dynamic_axes.get(n, {}) for n in comps[0].input_names)


def bench_backend(
    pb: ProjectBench, backend: str, precision: str, args: argparse.Namespace, cuda_graph: bool = False
) -> dict[str, Any]:
    pipe = pb.pipeline(backend, precision, cuda_graph)
    label = pipe.label + (" +graph" if cuda_graph else "") + ("" if precision == "fp32" else f" ({precision})")
    sample = pb.runner.state.loader.load_sample(0)
    for _ in range(args.warmup):
        pipe(sample)
    e2e, model = [], []
    for _ in range(args.iters):
        out = pipe(sample)
        e2e.append(out.total_ms)
        model.append(sum(v for k, v in out.stage_ms.items() if k not in MODEL_STAGE_EXCLUDE))
    row: dict[str, Any] = {"label": label, "e2e": latency_stats(e2e), "model": latency_stats(model)}
    row["throughput_b1"] = 1000.0 / row["model"]["p50"]

    # Fidelity: the model stage as the pipeline reports it vs an independent loop of the same call.
    with torch.inference_mode():
        inputs = pipe.preprocess(sample)
        call = lambda: pipe.run_model(inputs, StageTimer(pb.device))  # noqa: E731
        for _ in range(args.warmup):
            call()
        reported, independent = interleaved_fidelity_ms(call, pb.device, args.iters)
    row["fidelity"] = {
        "reported_ms": reported,
        "independent_ms": independent,
        "rel_diff": abs(reported - independent) / independent,
    }

    if pb.batchable() and args.batch > 1:
        (backend_obj,) = pipe.backends.values()
        with torch.inference_mode():
            big = _batched(pipe.preprocess(sample), args.batch)
            try:
                for _ in range(args.warmup):
                    backend_obj.infer(big)
                ms = timed_calls_ms(lambda: backend_obj.infer(big), pb.device, args.iters)
                row["batch"] = {
                    "n": args.batch,
                    "model": latency_stats(ms),
                    "throughput": args.batch * 1000.0 / latency_stats(ms)["p50"],
                }
            except Exception as exc:
                row["batch"] = {"n": args.batch, "error": str(exc).splitlines()[0][:120]}
    for be in pipe.backends.values():
        be.close()
    return row


def environment(device: torch.device) -> dict[str, str | None]:
    import onnxruntime as ort

    from modeldeploy.tensorrt_api import tensorrt_available

    ok, trt = tensorrt_available()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "onnxruntime": f"{ort.__version__} ({','.join(p.replace('ExecutionProvider', '') for p in ort.get_available_providers())})",
        "tensorrt": trt if ok else "not installed",
        "python": platform.python_version(),
    }


def to_markdown(
    env: dict[str, Any], results: dict[str, list[dict[str, Any]]], skipped: dict[str, str], batch: int
) -> str:
    f = lambda v: f"{v:.3f}"  # noqa: E731
    lines = ["# GPU latency benchmark", "", " | ".join(f"**{k}**: {v}" for k, v in env.items()), ""]
    for project, rows in results.items():
        lines += [
            f"## {project}",
            "",
            f"| backend | e2e p50 ms | e2e p99 ms | model p50 ms | model p99 ms | thr b1 /s | model p50 ms b{batch} | thr b{batch} /s | reported ms | independent ms | Δ | fidelity |",
            "|" + "---|" * 12,
        ]
        for r in rows:
            b = r.get("batch", {})
            bp50 = f(b["model"]["p50"]) if "model" in b else b.get("error", "n/a")
            bthr = f"{b['throughput']:.1f}" if "throughput" in b else "n/a"
            fid = r["fidelity"]
            ok = "PASS" if fid["rel_diff"] <= FIDELITY_TOLERANCE else "FAIL"
            lines.append(
                f"| {r['label']} | {f(r['e2e']['p50'])} | {f(r['e2e']['p99'])} | {f(r['model']['p50'])} | {f(r['model']['p99'])} | {r['throughput_b1']:.1f} | {bp50} | {bthr} | {f(fid['reported_ms'])} | {f(fid['independent_ms'])} | {fid['rel_diff'] * 100:.1f}% | {ok} |"
            )
        lines.append("")
    if skipped:
        lines += ["## skipped", ""] + [f"- {k}: {v}" for k, v in skipped.items()] + [""]
    lines += [
        "model = the pipeline's model stage(s) (StageTimer, CUDA events); e2e = preprocess + model + postprocess;",
        f"thr = samples/s at model p50; fidelity = StageTimer mean vs CUDA events around back-to-back calls (|Δ| ≤ {FIDELITY_TOLERANCE:.0%}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--projects", nargs="+", default=list(PROJECTS))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--trt-policy", default="fp16")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible: use --device cpu for a smoke run", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    from modeldeploy.tensorrt_api import tensorrt_available

    trt_ok, trt_why = tensorrt_available()
    ort_cuda = False
    if device.type == "cuda":
        from modeldeploy.backends.onnxruntime import cuda_ep_available

        ort_cuda, ort_why = cuda_ep_available()
    targets: list[tuple[str, str, bool]] = [("pytorch", "fp32", False)]
    if device.type == "cuda":
        targets.append(("pytorch", "fp16", False))
    skipped: dict[str, str] = {}
    if device.type == "cpu" or ort_cuda:
        targets.append(("onnxruntime", "fp32", False))
    else:
        skipped["onnxruntime:cuda"] = ort_why
    if trt_ok and device.type == "cuda":
        targets += [("tensorrt", args.trt_policy, False), ("tensorrt", args.trt_policy, True)]
    else:
        skipped["tensorrt:cuda"] = trt_why if not trt_ok else "needs CUDA"
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for project in args.projects:
            try:
                pb = ProjectBench(project, args.device, Path(tmp), trt_ok and device.type == "cuda", args.trt_policy)
            except Exception as exc:
                skipped[project] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                traceback.print_exc()
                continue
            rows = []
            for backend, precision, graph in targets:
                try:
                    rows.append(bench_backend(pb, backend, precision, args, cuda_graph=graph))
                    print(f"{project} {rows[-1]['label']}: model p50 {rows[-1]['model']['p50']:.3f} ms", flush=True)
                except Exception as exc:
                    skipped[f"{project} {backend} {precision}{' +graph' if graph else ''}"] = (
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                    )
                    traceback.print_exc()
            results[project] = rows
    env = environment(device)
    md = to_markdown(env, results, skipped, args.batch)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        (args.out / f"gpu_latency_{stamp}.md").write_text(md)
        (args.out / f"gpu_latency_{stamp}.json").write_text(
            json.dumps({"environment": env, "results": results, "skipped": skipped}, indent=2)
        )
    failed = [r["label"] for rows in results.values() for r in rows if r["fidelity"]["rel_diff"] > FIDELITY_TOLERANCE]
    if failed and device.type == "cuda":
        print(f"timing fidelity outside {FIDELITY_TOLERANCE:.0%}: {failed}", file=sys.stderr)
        return 1
    return 0 if results and any(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
