"""Does a second process reuse the torch.compile cache stored with the artifacts? (issue #16 item 2)

Builds CenterPoint's AWML-size backbone+neck+head through the deploy-config path the runner
uses — ``evaluation.backends.pytorch`` keys (``BackendEvalSection``) → ``BackendOptions`` →
the registered pytorch factory → ``PyTorchBackend`` — with ``compile_mode`` and a
``compile_cache_dir``, runs one frame and prints the compile time of the first call (compile
included, the backend's ``compile_seconds``) apart from the steady latency.

Run it twice with the same ``--cache`` in two processes: the first compiles (autotuning
included), the second should load Inductor's FX-graph and autotune results from the cache::

    python benchmarks/compile_cache_check.py --cache /tmp/cc --out /tmp/cc1.json
    python benchmarks/compile_cache_check.py --cache /tmp/cc --out /tmp/cc2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="compile_cache_dir (kept between the two processes)")
    ap.add_argument("--mode", default="max-autotune-no-cudagraphs")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("compile_cache_check: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    from centerpoint_perf import sweep  # the same synthetic 200k-point sweep as the stage table
    from mmengine.config import Config

    import modeldeploy.backends  # noqa: F401  (registers the built-in backends)
    from modeldeploy.config.sections import BackendEvalSection
    from modeldeploy.core.backend_registry import BackendOptions, backend_spec
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.project import export_components_for

    t_start = time.perf_counter()
    cfg = Config.fromfile(str(ROOT / "runtime/modeldeploy/projects/centerpoint/configs/centerpoint_awml.py"))
    torch.manual_seed(0)
    model = build_centerpoint(cfg).eval()
    comps = export_components_for(model, {"points": sweep(200_000, 0), "sample_idx": 0})
    comp = copy.copy(next(c for c in comps if c.name == "pts_backbone_neck_head"))
    comp.module = copy.deepcopy(comp.module)
    section = BackendEvalSection(
        device="cuda:0", precision="fp16", channels_last=True, cuda_graph=True, compile_mode=args.mode
    )
    options = BackendOptions(section, compile_cache_dir=args.cache)
    backend = backend_spec("pytorch").factory(comp, torch.device("cuda"), "fp16", options)
    x = comp.sample_inputs["spatial_features"].to("cuda")
    cache_files_before = sum(1 for _ in args.cache.rglob("*") if _.is_file()) if args.cache.is_dir() else 0
    t0 = time.perf_counter()
    backend.infer({"spatial_features": x})
    torch.cuda.synchronize()
    first_call_s = time.perf_counter() - t0
    per = []
    for _ in range(args.iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        backend.infer({"spatial_features": x})
        b.record()
        b.synchronize()
        per.append(a.elapsed_time(b))
    res = {
        "pid": os.getpid(),
        "gpu": torch.cuda.get_device_name(0),
        "mode": args.mode,
        "cache_dir": str(args.cache),
        "cache_files_before": cache_files_before,
        "cache_files_after": sum(1 for _ in args.cache.rglob("*") if _.is_file()),
        "compile_seconds": backend.compile_seconds,
        "first_call_s": first_call_s,  # compile + CUDA-graph capture + first replay
        "latency_ms_median": statistics.median(per),
        "process_s": time.perf_counter() - t_start,
    }
    print(json.dumps(res), flush=True)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
