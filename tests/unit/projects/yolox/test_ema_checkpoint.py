"""EMA checkpoints as mmengine's real EMAHook writes them (mmdet's ExpMomentumEMA subclasses
mmengine's ExponentialMovingAverage, so the key format is the same): ``ema_state_dict`` keys
are ``module.``-prefixed plus a ``steps`` counter — and EMAHook *swaps* before saving, so
``state_dict`` holds the averaged weights and ``ema_state_dict`` the raw ones. ``use_ema``
therefore reads ``state_dict`` for such checkpoints (core/checkpoint.extract_state_dict)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from modeldeploy.core.checkpoint import extract_state_dict, load_weights
from modeldeploy.projects.yolox.model import build_yolox


def test_mmengine_emahook_checkpoint_format_and_swap(tiny_cfg, tmp_path) -> None:
    from mmengine.hooks import EMAHook
    from mmengine.model import ExponentialMovingAverage

    model = build_yolox(tiny_cfg.model)
    ema = ExponentialMovingAverage(model, momentum=0.5, update_buffers=True)
    ema.update_parameters(model)  # the first update only copies
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # raw weights move; the average moves half-way
    ema.update_parameters(model)
    hook = EMAHook()
    hook.ema_model = ema
    ckpt = {"meta": {"epoch": 1}, "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    hook.before_save_checkpoint(SimpleNamespace(), ckpt)
    keys = set(ckpt["ema_state_dict"])
    assert "steps" in keys and all(k == "steps" or k.startswith("module.") for k in keys)

    averaged = extract_state_dict(ckpt, prefer_ema=True)
    assert set(averaged) == set(model.state_dict())
    w = "bbox_head.multi_level_conv_cls.0.weight"
    assert not torch.equal(ckpt["state_dict"][w], model.state_dict()[w])  # state_dict holds the EMA weights
    assert torch.equal(averaged[w], ckpt["state_dict"][w])  # use_ema deploys them, not the raw ones

    path = tmp_path / "runner.pth"
    torch.save(ckpt, path)
    fresh = build_yolox(tiny_cfg.model)
    load_weights(fresh, path, prefer_ema=True)
    assert torch.equal(fresh.state_dict()[w], ckpt["state_dict"][w])


def test_plain_ema_state_dict_without_emahook_layout_is_used_as_is(tiny_cfg) -> None:
    model = build_yolox(tiny_cfg.model)
    sd = model.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    got = extract_state_dict({"state_dict": sd, "ema_state_dict": ema}, prefer_ema=True)
    w = "bbox_head.multi_level_conv_cls.0.weight"
    assert torch.equal(got[w], ema[w])
