"""CenterPoint decode+NMS at AWML size: the greedy-NMS kernel's launch shape swept (issue #16 item 4).

The fixed decode+NMS (``fixed_ops.decode_and_nms_fixed``) in one CUDA graph is 0.306 ms on
an H200 against a 0.3 ms target; its greedy-NMS Triton program is ~53 µs of it. This times the
whole graph for each (rows per step ``BI``, ``num_warps``) of that program and checks every
variant's detections are identical to the reference decode (``boxes.decode_and_nms``).
Same heads as benchmarks/centerpoint_perf.py (random network, spread heatmap logits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("decode_nms_sweep: no CUDA device", file=sys.stderr)
        return 2
    import triton
    from centerpoint_perf import events_median, graphed, load_cfg

    from modeldeploy.projects.centerpoint import fixed_ops as fx
    from modeldeploy.projects.centerpoint import triton_kernels as tk
    from modeldeploy.projects.centerpoint.boxes import decode_and_nms
    from modeldeploy.projects.centerpoint.model import (
        HEAD_OUTPUTS,
        BackboneNeckHeadExport,
        build_centerpoint,
        split_task_outputs,
    )

    torch.manual_seed(0)
    cfg = load_cfg(ROOT / "runtime/modeldeploy/projects/centerpoint/configs/centerpoint_awml.py")
    model = build_centerpoint(cfg).cuda().eval()
    s = model.settings
    ny, nx = s.output_shape
    x = torch.randn(1, s.pillar_channels, ny, nx, device="cuda")  # heads of the real modules on a random canvas
    with torch.inference_mode():
        heads = dict(zip(HEAD_OUTPUTS, (t.float() for t in BackboneNeckHeadExport(model).eval()(x))))
    heads["heatmap"] = heads["heatmap"] * 0 + torch.randn_like(heads["heatmap"]) * 2.0 - 2.0
    per_task = split_task_outputs(heads, s.task_num_classes)
    ref = decode_and_nms(per_task, s)
    original = tk.greedy_nms_keep
    rows = []

    def launcher(bi: int, warps: int):
        def keep(suppress: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
            k = suppress.shape[0]
            out = torch.empty(k, dtype=torch.uint8, device=suppress.device)
            tk._greedy_kernel[(1,)](
                suppress.contiguous().view(torch.uint8),
                valid.contiguous().view(torch.uint8),
                out,
                k,
                BK=triton.next_power_of_2(k),
                BI=bi,
                num_warps=warps,
            )
            return out.bool()

        return keep

    variants = [(None, None)] + [(bi, w) for bi in (8, 16, 32) for w in (4, 8, 16)]
    for bi, warps in variants:
        tk.greedy_nms_keep = original if bi is None else launcher(bi, warps)
        replay, out = graphed(lambda: fx.decode_and_nms_fixed(per_task, s))
        med, indep = events_median(replay, args.iters, 20)
        d = out.compact()
        same = bool(
            torch.equal(ref.bboxes, d.bboxes)
            and torch.equal(ref.scores, d.scores)
            and torch.equal(ref.labels, d.labels)
        )
        rows.append({"BI": bi, "num_warps": warps, "ms": med, "back_to_back_ms": indep, "identical": same})
        print(json.dumps(rows[-1]), flush=True)
    tk.greedy_nms_keep = original
    res = {"gpu": torch.cuda.get_device_name(0), "detections": len(ref), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
