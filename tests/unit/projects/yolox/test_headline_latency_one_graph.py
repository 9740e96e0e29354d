"""With nms_in_graph both YOLOX graphs run per sample (so both are scored), but they are
alternatives: the headline latency must not add the yolox_nms graph to the yolox one.

Uses sleeping test-double backends (fake graphs with fixed outputs) so the stage times are
known; the real pipeline code (letterbox, decode, NMS, timers) runs unchanged."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.projects.yolox.pipeline import YOLOXPipeline
from modeldeploy.projects.yolox.preprocess import Normalize
from modeldeploy.projects.yolox.settings import PostprocessSettings

ANCHORS = 8 * 8 + 4 * 4 + 2 * 2  # 64x64 input, strides 8/16/32


class SleepingFakeGraph(BaseBackend):
    """Test double: sleeps ``ms`` then returns fixed outputs."""

    backend_name = "onnxruntime"

    def __init__(self, ms: float, outputs: dict[str, torch.Tensor]) -> None:
        super().__init__("cpu")
        self.ms, self.outputs = ms, outputs

    @property
    def input_names(self) -> list[str]:
        return ["images"]

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        time.sleep(self.ms / 1000)
        return dict(self.outputs)


def _pipeline(with_nms_graph: bool) -> YOLOXPipeline:
    backends: dict[str, BaseBackend] = {"yolox": SleepingFakeGraph(5, {"output": torch.zeros(1, ANCHORS, 4 + 1 + 2)})}
    if with_nms_graph:
        backends["yolox_nms"] = SleepingFakeGraph(
            60,
            {
                "num_dets": torch.zeros(1, 1),
                "det_boxes": torch.zeros(1, 1, 4),
                "det_scores": torch.zeros(1, 1),
                "det_classes": torch.zeros(1, 1),
            },
        )
    return YOLOXPipeline(
        backends,
        "cpu",
        img_scale=(64, 64),
        pad_val=114.0,
        norm=Normalize(None, None, False),
        post=PostprocessSettings(score_thr=0.5, iou_thr=0.5, max_per_img=10, pre_nms=20),
        strides=(8, 16, 32),
        decoded_output=False,
    )


def test_total_latency_leaves_the_alternative_nms_graph_out() -> None:
    sample = {"image": np.full((48, 64, 3), 100, dtype=np.uint8)}
    pipe = _pipeline(with_nms_graph=True)
    pipe(sample)  # warm-up: first-call costs out of the comparison
    out = pipe(sample)
    assert out.stage_ms["model_nms"] >= 60 and out.stage_ms["model"] >= 5  # both graphs did run
    assert out.prediction["graph"] is not None
    path = out.stage_ms["preprocess"] + out.stage_ms["model"] + out.stage_ms["postprocess"]
    assert path - 1.0 <= out.total_ms < path + out.stage_ms["model_nms"] / 2  # the yolox graph's path, not both graphs


def test_without_the_nms_graph_the_total_is_unchanged() -> None:
    out = _pipeline(with_nms_graph=False)({"image": np.full((48, 64, 3), 100, dtype=np.uint8)})
    assert "model_nms" not in out.stage_ms and out.total_ms >= out.stage_ms["model"] >= 5
