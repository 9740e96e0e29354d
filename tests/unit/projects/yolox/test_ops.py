"""Decode and NMS: the vectorised NMS against a plain greedy reference, and the eager
NonMaxSuppression stand-in against ONNX Runtime's NonMaxSuppression on the same inputs."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from modeldeploy.projects.yolox import ops
from modeldeploy.projects.yolox.export import _NonMaxSuppression


def random_boxes(n: int, seed: int, clusters: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(clusters, 2, generator=g) * 200
    c = centres[torch.randint(0, clusters, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 8
    wh = 10 + torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    return boxes, torch.rand(n, generator=g), torch.randint(0, 3, (n,), generator=g)


def greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thr: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    for i in order:
        if all(labels[j] != labels[i] or float(ops.box_iou(boxes[i : i + 1], boxes[j : j + 1])) <= thr for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_nms_equals_greedy_reference(seed: int) -> None:
    boxes, scores, labels = random_boxes(150, seed)
    assert ops.nms_indices(boxes, scores, labels, 0.5).tolist() == greedy_reference(boxes, scores, labels, 0.5)


def test_fallback_scan_equals_fixed_point(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores, labels = random_boxes(300, 5, clusters=2)  # long suppression chains
    full = ops.nms_indices(boxes, scores, labels, 0.3)
    monkeypatch.setattr(ops, "FIXED_POINT_ROUNDS", 1)
    assert ops.nms_indices(boxes, scores, labels, 0.3).tolist() == full.tolist()


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]])
    keep = ops.nms_indices(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.5)
    assert keep.tolist() == [0, 1]


def test_decode_matches_the_yolox_formula() -> None:
    priors = ops.priors_for([(2, 2)], [8])
    assert priors.tolist() == [[0, 0, 8], [8, 0, 8], [0, 8, 8], [8, 8, 8]]
    reg = torch.tensor([[0.5, 0.25, 0.0, float(np.log(2.0))]]).repeat(4, 1)
    out = ops.decode_cxcywh(reg, priors)
    assert torch.allclose(out[3], torch.tensor([8 + 4.0, 8 + 2.0, 8.0, 16.0]))
    assert torch.allclose(ops.cxcywh_to_xyxy(out[3]), torch.tensor([8.0, 2.0, 16.0, 18.0]))
    assert ops.level_shapes((960, 960), (8, 16, 32)) == [(120, 120), (60, 60), (30, 30)]


class _NMSOnly(torch.nn.Module):
    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return _NonMaxSuppression.apply(boxes, scores, 20, 0.45, 0.2)


def test_eager_nms_op_matches_onnxruntime_nonmaxsuppression(tmp_path) -> None:
    boxes, _, _ = random_boxes(120, 3)
    g = torch.Generator().manual_seed(9)
    b = torch.stack([boxes, boxes.flip(0)])  # 2 images
    s = torch.rand(2, 3, 120, generator=g)
    ref = _NMSOnly()(b, s)
    path = tmp_path / "nms.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _NMSOnly(),
            (b, s),
            str(path),
            input_names=["boxes", "scores"],
            output_names=["selected"],
            opset_version=17,
            dynamo=False,
        )
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"boxes": b.numpy(), "scores": s.numpy()}
    )[0]
    as_set = lambda rows: {tuple(r) for r in np.asarray(rows).tolist()}  # noqa: E731
    assert len(got) > 20 and as_set(got) == as_set(ref.numpy())
