"""Checkpoints written by mmengine's own ``Runner`` + ``CheckpointHook`` (and ``EMAHook``).

What an AWML user brings is the ``iter_N.pth`` / ``epoch_N.pth`` of an mmengine training
run: ``meta``, ``state_dict``, ``message_hub`` (HistoryBuffer objects of numpy arrays),
``optimizer``, ``param_schedulers`` and, with EMAHook, ``ema_state_dict``. These helpers run
a real Runner for a couple of iterations on a few synthetic samples with each project's
model and loss, so the tests load exactly what mmengine 0.10.x pickles.

The project model's children are registered directly on an mmengine ``BaseModel`` so the
saved keys are the AWML names (mmdet3d/mmdet/mmpretrain models are themselves BaseModels;
no ``model.`` prefix). Input sizes are small (the networks are fully convolutional), so an
AWML-size model also trains for an iteration on a CPU in seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

_RUN_IDS = itertools.count()


def _runner_model(
    net: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any, Any], torch.Tensor]
) -> torch.nn.Module:
    from mmengine.model import BaseModel

    class AwmlLikeModel(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            for name, child in net.named_children():
                self.add_module(name, child)
            object.__setattr__(self, "_net", net)  # not a submodule: keys stay unprefixed

        def forward(self, inputs: Any, data_samples: Any = None, mode: str = "tensor") -> Any:
            if mode == "loss":
                return {"loss": loss_fn(self._net, inputs, data_samples)}
            return self._net(inputs)

    wrapped = AwmlLikeModel()
    assert set(wrapped.state_dict()) == set(net.state_dict()), "the project model keeps tensors outside its children"
    return wrapped


def train_with_runner(
    net: torch.nn.Module,
    samples: list[dict[str, Any]],
    loss_fn: Callable[[torch.nn.Module, Any, Any], torch.Tensor],
    work_dir: Path,
    *,
    ema: bool,
    iters: int = 2,
    batch_size: int = 2,
    optimizer: str = "AdamW",
) -> Path:
    """Train ``iters`` iterations with mmengine's Runner and return the checkpoint CheckpointHook wrote."""
    from mmengine.runner import Runner

    torch.set_num_threads(1)
    net.train()
    runner = Runner(
        model=_runner_model(net, loss_fn),
        work_dir=str(work_dir),
        experiment_name=f"awml_runner_ckpt_{next(_RUN_IDS)}_{work_dir.name}",
        train_dataloader=dict(
            dataset=samples,
            sampler=dict(type="DefaultSampler", shuffle=False),
            batch_size=batch_size,
            num_workers=0,
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(
            optimizer=dict(type=optimizer, lr=1e-3, **({"momentum": 0.9} if optimizer == "SGD" else {}))
        ),
        param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=iters)],
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(
            checkpoint=dict(
                type="CheckpointHook", interval=iters, by_epoch=False, save_optimizer=True, save_param_scheduler=True
            ),
            logger=dict(type="LoggerHook", interval=1),
        ),
        custom_hooks=[dict(type="EMAHook", ema_type="ExponentialMovingAverage", momentum=0.5, update_buffers=True)]
        if ema
        else None,
        env_cfg=dict(dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=0),
        log_level="WARNING",
    )
    runner.train()
    path = work_dir / f"iter_{iters}.pth"
    assert path.is_file(), f"CheckpointHook wrote no {path.name}: {sorted(p.name for p in work_dir.iterdir())}"
    net.eval()
    return path


# ------------------------------------------------------------------ per-project training data
def calibration_samples(in_channels: int = 5, size: tuple[int, int] = (32, 48), n: int = 4) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    return [
        dict(inputs=torch.rand(in_channels, *size, generator=g), data_samples=torch.tensor(i % 2)) for i in range(n)
    ]


def calibration_loss(net: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(inputs), labels)


def yolox_samples(size: int, n: int = 4) -> list[dict[str, Any]]:
    """Images on the 0-255 scale with one box each: [label, x1, y1, x2, y2] in input pixels."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        img = torch.full((3, size, size), 114.0)
        x1, y1 = size // 8 + 2 * i, size // 6
        x2, y2 = x1 + size // 3, y1 + size // 2
        img[:, y1:y2, x1:x2] = torch.rand(3, 1, 1, generator=g) * 255
        out.append(dict(inputs=img, data_samples=torch.tensor([[i % 2, x1, y1, x2, y2]], dtype=torch.float32)))
    return out


def yolox_loss(net: torch.nn.Module, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The project's own YOLOX loss (SimOTA assignment, objectness/class BCE, IoU)."""
    from modeldeploy.projects.yolox.ops import level_shapes, priors_for
    from modeldeploy.projects.yolox.train import yolox_loss as project_loss

    h, w = images.shape[-2:]
    priors = priors_for(level_shapes((h, w), net.strides), net.strides)
    loss, _ = project_loss(net, images, list(boxes), priors)
    return loss


def centerpoint_samples(
    net: torch.nn.Module, canvas: tuple[int, int] = (32, 32), pillars: int = 48, n: int = 4
) -> list[dict[str, Any]]:
    """Decorated pillar features on a small BEV canvas plus one box target per sample."""
    s = net.settings
    g = torch.Generator().manual_seed(0)
    ny, nx = canvas
    out = []
    for i in range(n):
        flat = torch.randperm(ny * nx, generator=g)[:pillars]
        coors = torch.stack([torch.zeros_like(flat), flat // nx, flat % nx], 1)  # (z, y, x)
        feats = torch.randn(pillars, s.max_num_points, s.decorated_channels, generator=g)
        hy, hx = ny // s.out_size_factor, nx // s.out_size_factor
        heat = torch.zeros(len(s.class_names), hy, hx)
        cy, cx = (3 + i) % hy, (5 + 2 * i) % hx
        heat[i % len(s.class_names), cy, cx] = 1.0
        out.append(
            dict(
                inputs=dict(features=feats, coors=coors),
                data_samples=dict(
                    heatmap=heat,
                    ind=torch.tensor([cy * hx + cx]),
                    mask=torch.tensor([1]),
                    anno_box=torch.randn(1, 10, generator=g) * 0.1,
                ),
            )
        )
    return out


def centerpoint_loss_for(canvas: tuple[int, int]) -> Callable[[torch.nn.Module, Any, Any], torch.Tensor]:
    def loss(net: torch.nn.Module, inputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The project's CenterHead loss (Gaussian focal + L1) on a one-task model."""
        from modeldeploy.projects.centerpoint.ops import scatter_to_bev
        from modeldeploy.projects.centerpoint.targets import task_loss

        canvases = []
        for feats, coors in zip(inputs["features"], inputs["coors"]):
            canvases.append(scatter_to_bev(net.pts_voxel_encoder.forward_decorated(feats), coors, *canvas))
        pred = net.backbone_neck_head(torch.cat(canvases))[0]
        hm, box = task_loss(pred, targets, [1.0] * 8 + [0.2, 0.2])
        return hm + box

    return loss
