"""Train the tiny YOLOX_opt_elan demo checkpoint on synthetic shapes (CPU, a few minutes).

    python -m modeldeploy.projects.yolox.train [--out PATH] [--iters N] [--threads 2]

What it does, kept small on purpose: letterboxed 256x256 BGR 0–255 inputs (exactly the
deploy preprocess), random horizontal flips, mmdet's YOLOX losses (BCE objectness, BCE
classification with IoU-aware targets, squared-IoU box loss ×5) with a SimOTA assigner
(centre prior radius 2.5, dynamic k from the top-10 IoUs, cost = cls + 3·IoU), AdamW with
warm-up + cosine decay, and an EMA of the weights (mmdet ExpMomentumEMA's schedule).

Deterministic: data, order, init and augmentation come from ``--seed``; one thread count
gives one checkpoint. Saved like an mmengine Runner checkpoint with EMAHook: ``state_dict``
holds the EMA weights (what deployment loads), ``ema_state_dict`` the raw weights with
``module.`` prefixes and a ``steps`` counter, plus a plain ``meta``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modeldeploy.projects.yolox.model import YOLOX, build_yolox
from modeldeploy.projects.yolox.ops import box_iou, cxcywh_to_xyxy, decode_cxcywh, level_shapes, priors_for
from modeldeploy.projects.yolox.preprocess import Normalize, letterbox, letterbox_geometry
from modeldeploy.projects.yolox.synthetic import render_image

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "yolox_tiny_256.py"
DEFAULT_OUT = HERE / "assets" / "yolox_tiny_256.pth"


def build_train_set(
    num: int, seed: int, img_scale: tuple[int, int], pad_val: float
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Render and letterbox ``num`` images once: uint8 [num, 3, H, W] + per-image [n, 5] (label, xyxy)."""
    images, targets = [], []
    norm = Normalize(None, None, False)
    for i in range(num):
        img, objs = render_image(seed, i)
        x, _ = letterbox(img, img_scale, pad_val, norm)
        lb = letterbox_geometry(img.shape[:2], img_scale)
        t = torch.tensor(
            [
                [c, b[0] * lb.scale_w, b[1] * lb.scale_h, (b[0] + b[2]) * lb.scale_w, (b[1] + b[3]) * lb.scale_h]
                for c, b in objs
            ],
            dtype=torch.float32,
        ).reshape(-1, 5)
        images.append(x[0].to(torch.uint8))
        targets.append(t)
    return torch.stack(images), targets


@torch.no_grad()
def simota(
    cls_prob: torch.Tensor,
    boxes: torch.Tensor,
    priors: torch.Tensor,
    gt: torch.Tensor,
    num_classes: int,
    radius: float = 2.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image → (positive anchor mask [N], assigned gt index per positive, IoU per positive)."""
    n = priors.shape[0]
    centres = priors[:, :2] + priors[:, 2:3] * 0.5
    gt_boxes, gt_labels = gt[:, 1:], gt[:, 0].long()
    in_box = ((centres[:, None, :] > gt_boxes[None, :, :2]) & (centres[:, None, :] < gt_boxes[None, :, 2:])).all(-1)
    gt_c = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    r = priors[:, 2:3, None] * radius
    in_ctr = ((centres[:, None, :] - gt_c[None]).abs() < r).all(-1)
    valid = (in_box | in_ctr).any(1)
    if not valid.any():
        return torch.zeros(n, dtype=torch.bool), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    vi = valid.nonzero().reshape(-1)
    ious = box_iou(boxes[vi], gt_boxes)  # [V, G]
    p = cls_prob[vi].clamp(1e-6, 1 - 1e-6)  # [V, C]
    onehot = F.one_hot(gt_labels, num_classes).float()  # [G, C]
    cls_cost = F.binary_cross_entropy(
        p[:, None, :].expand(-1, len(gt_labels), -1), onehot[None].expand(len(vi), -1, -1), reduction="none"
    ).sum(-1)
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~(in_box[vi] & in_ctr[vi])).float()
    k = torch.clamp(ious.topk(min(10, len(vi)), dim=0).values.sum(0).int(), min=1)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(cost.shape[1]):
        match[cost[:, g].topk(min(int(k[g]), len(vi)), largest=False).indices, g] = True
    multi = match.sum(1) > 1
    if multi.any():
        best = cost[multi].argmin(1)
        match[multi] = False
        match[multi.nonzero().reshape(-1), best] = True
    pos_v = match.any(1)
    assigned = match[pos_v].float().argmax(1)
    pos = torch.zeros(n, dtype=torch.bool)
    pos[vi[pos_v]] = True
    return pos, assigned, ious[pos_v, assigned]


def yolox_loss(
    model: YOLOX, images: torch.Tensor, targets: list[torch.Tensor], priors: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    cls_s, reg_s, obj_s = model(images)
    b = images.shape[0]
    cls = torch.cat([c.flatten(2) for c in cls_s], 2).permute(0, 2, 1)
    reg = torch.cat([r.flatten(2) for r in reg_s], 2).permute(0, 2, 1)
    obj = torch.cat([o.flatten(2) for o in obj_s], 2).permute(0, 2, 1)[..., 0]
    boxes = cxcywh_to_xyxy(decode_cxcywh(reg, priors))
    c = model.num_classes
    obj_t = torch.zeros_like(obj)
    cls_terms, iou_terms = [], []
    num_pos = 0
    for i in range(b):
        gt = targets[i]
        if gt.numel() == 0:
            continue
        prob = (cls[i].sigmoid() * obj[i].sigmoid()[:, None]).sqrt().detach()
        pos, assigned, ious = simota(prob, boxes[i].detach(), priors, gt, c)
        if not pos.any():
            continue
        num_pos += int(pos.sum())
        obj_t[i, pos] = 1.0
        cls_target = F.one_hot(gt[assigned, 0].long(), c).float() * ious[:, None]
        cls_terms.append(F.binary_cross_entropy_with_logits(cls[i, pos], cls_target, reduction="sum"))
        iou = box_iou(boxes[i, pos], gt[assigned, 1:]).diagonal()
        iou_terms.append((1 - iou.pow(2)).sum())
    norm = max(num_pos, 1)
    l_obj = F.binary_cross_entropy_with_logits(obj, obj_t, reduction="sum") / norm
    l_cls = torch.stack(cls_terms).sum() / norm if cls_terms else obj.sum() * 0
    l_iou = 5.0 * torch.stack(iou_terms).sum() / norm if iou_terms else obj.sum() * 0
    return l_obj + l_cls + l_iou, {"obj": l_obj.item(), "cls": l_cls.item(), "iou": l_iou.item(), "pos": num_pos / b}


class ExpMomentumEMA:
    """mmdet ExpMomentumEMA schedule: new-weight share = (1 - m)·exp(-(1 + step)/gamma) + m."""

    def __init__(self, model: torch.nn.Module, momentum: float, gamma: float) -> None:
        self.avg = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.momentum, self.gamma, self.steps = momentum, gamma, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        m = (1 - self.momentum) * math.exp(-(1 + self.steps) / self.gamma) + self.momentum
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.avg[k].lerp_(v, m)
            else:
                self.avg[k].copy_(v)
        self.steps += 1


def read_config(path: Path) -> dict[str, Any]:
    """The model config as a dict: mmengine where installed, else executed as the plain
    Python file it is (the tiny config has no ``_base_``), so training needs only torch + cv2."""
    try:
        from mmengine.config import Config
    except ImportError:
        import runpy

        return {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("_")}
    return Config.fromfile(str(path)).to_dict()


def train(
    out: Path, iters: int, batch: int, num_train: int, seed: int, lr: float, threads: int, log_every: int = 50
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = read_config(CONFIG)
    img_scale = tuple(cfg["yolox_data"]["img_scale"])
    model = build_yolox(cfg["model"])
    model.bbox_head.init_prior_bias(0.01)
    model.train()
    t0 = time.perf_counter()
    images, targets = build_train_set(num_train, seed, img_scale, float(cfg["yolox_data"]["pad_val"]))
    print(
        f"rendered {num_train} training images in {time.perf_counter() - t0:.1f}s; {sum(p.numel() for p in model.parameters())} parameters"
    )
    w, h = img_scale
    priors = priors_for(level_shapes((h, w), model.strides), model.strides)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    warm = max(1, iters // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, iters) / iters)))
    )
    ema = ExpMomentumEMA(model, momentum=0.01, gamma=max(50.0, iters / 10))
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(num_train) for _ in range(iters * batch // num_train + 1)])
    t0 = time.perf_counter()
    for it in range(iters):
        idx = order[it * batch : (it + 1) * batch]
        x = images[idx].float()
        tg = [targets[j].clone() for j in idx]
        flip = rng.random(len(idx)) < 0.5
        for k in np.nonzero(flip)[0]:
            x[k] = x[k].flip(-1)
            if tg[k].numel():
                x1 = tg[k][:, 1].clone()
                tg[k][:, 1] = w - tg[k][:, 3]
                tg[k][:, 3] = w - x1
        loss, parts = yolox_loss(model, x, tg, priors)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        ema.update(model)
        if it % log_every == 0 or it == iters - 1:
            print(
                f"iter {it:5d}/{iters} loss {loss.item():.3f} obj {parts['obj']:.3f} cls {parts['cls']:.3f} iou {parts['iou']:.3f} "
                f"pos/img {parts['pos']:.1f} lr {sched.get_last_lr()[0]:.2e} {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
    train_s = time.perf_counter() - t0
    raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ckpt = {
        "meta": {
            "config": "yolox_tiny_256.py",
            "iters": iters,
            "batch": batch,
            "num_train": num_train,
            "seed": seed,
            "lr": lr,
            "threads": threads,
            "train_seconds": round(train_s, 1),
            "ema": "ExpMomentumEMA(momentum=0.01)",
        },
        "state_dict": ema.avg,
        "ema_state_dict": {
            **{f"module.{k}": v for k, v in raw.items()},
            "steps": torch.tensor(ema.steps, dtype=torch.long),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {train_s:.0f}s of training")
    return {"train_seconds": train_s, "path": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--iters", type=int, default=1400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--num-train", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    a = ap.parse_args(argv)
    train(a.out, a.iters, a.batch, a.num_train, a.seed, a.lr, a.threads, a.log_every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
