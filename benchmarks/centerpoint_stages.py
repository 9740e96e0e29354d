"""CenterPoint stage latency at the AWML-size config (1020² grid, 96000 voxels) on the GPU.

Answers issue #4's target: pre+post (voxelize + scatter + decode/NMS) as a share of the
end-to-end latency, ≤ 25 %. Random weights are fine for latency (the work per frame does
not depend on them, except NMS input counts, which a lowered score threshold keeps busy).
A synthetic LiDAR sweep (uniform ground + clutter, 200k points over ±100 m) stands in for
a T4 frame. Timing: the pipeline's own StageTimer (CUDA events), after warm-up, medians.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))

from mmengine.config import Config  # noqa: E402

from modeldeploy.backends.pytorch import PyTorchBackend  # noqa: E402
from modeldeploy.projects.centerpoint.model import build_centerpoint  # noqa: E402
from modeldeploy.projects.centerpoint.pipeline import CenterPointPipeline  # noqa: E402
from modeldeploy.projects.centerpoint.project import export_components_for  # noqa: E402

# Outer stages only: voxelize is timed inside preprocess and decode_nms inside postprocess.
PRE_POST = ("preprocess", "scatter", "postprocess")


def sweep(n: int, seed: int) -> torch.Tensor:
    g = np.random.default_rng(seed)
    r = np.sqrt(g.uniform(1.0, 100.0**2, n))
    a = g.uniform(-np.pi, np.pi, n)
    z = np.where(g.random(n) < 0.6, g.normal(-1.8, 0.05, n), g.uniform(-1.5, 2.5, n))
    pts = np.stack([r * np.cos(a), r * np.sin(a), z, g.uniform(0, 255, n)], 1).astype(np.float32)
    return torch.from_numpy(pts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("centerpoint_stages: no CUDA device; this benchmark is for the GPU machine", file=sys.stderr)
        return 2
    cfg = Config.fromfile(str(ROOT / "runtime/modeldeploy/projects/centerpoint/configs/centerpoint_awml.py"))
    torch.manual_seed(0)
    model = build_centerpoint(cfg).eval()
    sample = {"points": sweep(args.points, 0), "sample_idx": 0}
    comps = export_components_for(model, sample)
    rows = []
    for precision in ("fp32", "fp16"):
        gpu = [copy.copy(c) for c in comps]
        for c in gpu:
            c.module = copy.deepcopy(c.module)
        pipe = CenterPointPipeline(
            {c.name: PyTorchBackend(c, "cuda", precision) for c in gpu}, model.settings, torch.device("cuda")
        )
        frames = [{"points": sweep(args.points, s), "sample_idx": s} for s in range(4)]
        for i in range(args.warmup):
            pipe(frames[i % 4])
        per_stage: dict[str, list[float]] = {}
        totals = []
        for i in range(args.iters):
            out = pipe(frames[i % 4])
            totals.append(out.total_ms)
            for k, v in out.stage_ms.items():
                per_stage.setdefault(k, []).append(v)
        med = {k: float(np.median(v)) for k, v in per_stage.items()}
        total = float(np.median(totals))
        prepost = sum(v for k, v in med.items() if k in PRE_POST)
        rows.append((f"pytorch:cuda ({precision})", med, total, prepost / total))
    gpu_name = torch.cuda.get_device_name(0)
    print(
        f"# CenterPoint AWML-size stage latency\n\n{gpu_name}, torch {torch.__version__}, {args.points} points/frame, "
        f"{args.iters} iterations after {args.warmup} warm-up, medians in ms (StageTimer, CUDA events)\n"
    )
    stages = list(rows[0][1])
    print("| backend | " + " | ".join(stages) + " | end-to-end | pre+post share |")
    print("|---" * (len(stages) + 3) + "|")
    for label, med, total, share in rows:
        print(f"| {label} | " + " | ".join(f"{med[s]:.3f}" for s in stages) + f" | {total:.3f} | {share:.1%} |")
    print("\ntarget (issue #4): pre+post ≤ 25 % of end-to-end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
