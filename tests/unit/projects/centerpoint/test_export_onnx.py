"""Two-component ONNX export; ONNX Runtime matches PyTorch on a real synthetic frame."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from modeldeploy.backends.onnxruntime import ONNXRuntimeBackend
from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.config.sections import ONNXConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.timing import StageTimer
from modeldeploy.exporters.onnx import ONNXExporter
from modeldeploy.projects.centerpoint.box_compare import compare_box_sets
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
from modeldeploy.projects.centerpoint.model import HEAD_OUTPUTS, BackboneNeckHeadExport, VoxelEncoderExport
from modeldeploy.projects.centerpoint.pipeline import (
    BACKBONE_NECK_HEAD,
    VOXEL_ENCODER,
    CenterPointPipeline,
    preprocess_points,
)
from modeldeploy.projects.centerpoint.project import export_components_for
from modeldeploy.projects.centerpoint.synthetic import CLASSES, INFO_FILE_NAME

from .helpers import randomized_model


def _export(components: list[ExportComponent], out: Path) -> dict[str, Path]:
    exporter = ONNXExporter(ONNXConfigSection())
    return {c.name: exporter.export(c, out).path for c in components}


def test_tiny_two_component_export_and_ort_parity_on_synthetic_frames(
    tiny_cfg, synthetic_root: Path, tmp_path: Path
) -> None:
    model = randomized_model(tiny_cfg)
    s = model.settings
    loader = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, s.point_loading)
    comps = export_components_for(model, loader.load_sample(0))
    assert [c.name for c in comps] == [VOXEL_ENCODER, BACKBONE_NECK_HEAD]
    assert comps[0].input_names == ["input_features"] and comps[0].output_names == ["pillar_features"]
    assert comps[1].input_names == ["spatial_features"] and comps[1].output_names == list(HEAD_OUTPUTS)
    paths = _export(comps, tmp_path / "onnx")
    enc_graph = onnx.load(str(paths[VOXEL_ENCODER]))
    dims = enc_graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "num_voxels" and [d.dim_value for d in dims[1:]] == [
        s.max_num_points,
        s.decorated_channels,
    ]

    ref = CenterPointPipeline({c.name: PyTorchBackend(c) for c in comps}, s)
    test = CenterPointPipeline({n: ONNXRuntimeBackend(p, "cpu") for n, p in paths.items()}, s)
    for idx in (1, 2):  # not the export frame: another voxel count exercises the dynamic axis
        sample = loader.load_sample(idx)
        inputs = ref.model_inputs(sample)
        assert inputs["input_features"].shape[0] != comps[0].sample_inputs["input_features"].shape[0]
        r = ref.run_model(inputs, StageTimer("cpu"))
        t = test.run_model(inputs, StageTimer("cpu"))
        for k in HEAD_OUTPUTS:
            assert (
                r[k].shape
                == t[k].shape
                == (1, {"heatmap": 5, "reg": 2, "height": 1, "dim": 3, "rot": 2, "vel": 2}[k], *s.head_grid)
            )
            torch.testing.assert_close(t[k], r[k], atol=1e-4, rtol=1e-4)
        boxes = compare_box_sets(
            ref.postprocess(r, sample), test.postprocess(t, sample), score_threshold=s.score_threshold
        )
        assert boxes["passed"], boxes


def test_awml_size_components_export_with_a_reduced_canvas(awml_cfg, synthetic_root: Path, tmp_path: Path) -> None:
    """AWML base/2.x weights and graphs; the canvas is cut to 64² so the test stays fast on CPU."""
    model = randomized_model(awml_cfg)
    s = model.settings
    loader = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, s.point_loading)
    feats = preprocess_points(loader.load_sample(0)["points"], s, torch.device("cpu"))["input_features"]
    assert feats.shape[1:] == (32, 10)
    comps = [
        ExportComponent(
            VOXEL_ENCODER,
            VoxelEncoderExport(model.pts_voxel_encoder),
            ["input_features"],
            ["pillar_features"],
            {"input_features": feats},
            {"input_features": {0: "num_voxels"}, "pillar_features": {0: "num_voxels"}},
        ),
        ExportComponent(
            BACKBONE_NECK_HEAD,
            BackboneNeckHeadExport(model),
            ["spatial_features"],
            list(HEAD_OUTPUTS),
            {"spatial_features": torch.randn(1, 32, 64, 64)},
        ),
    ]
    paths = _export(comps, tmp_path / "onnx")
    for c in comps:
        ort = ONNXRuntimeBackend(paths[c.name], "cpu").infer(c.sample_inputs)
        with torch.no_grad():
            ref = c.module(*c.ordered_inputs(c.sample_inputs))
        ref = (ref,) if isinstance(ref, torch.Tensor) else ref
        for name, r in zip(c.output_names, ref):
            torch.testing.assert_close(ort[name], r, atol=2e-4, rtol=2e-4)
    assert ort["heatmap"].shape == (1, 5, 32, 32)  # SECONDFPN output at half resolution


@pytest.mark.slow
def test_awml_full_size_export_has_awml_io_shapes(awml_cfg, synthetic_root: Path, tmp_path: Path) -> None:
    model = randomized_model(awml_cfg)
    loader = CenterPointDataLoader(
        synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, model.settings.point_loading
    )
    paths = _export(export_components_for(model, loader.load_sample(0)), tmp_path / "onnx")
    head = onnx.shape_inference.infer_shapes(onnx.load(str(paths[BACKBONE_NECK_HEAD])))
    assert [d.dim_value for d in head.graph.input[0].type.tensor_type.shape.dim] == [1, 32, 1020, 1020]
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in head.graph.output}
    assert outs["heatmap"] == [1, 5, 510, 510] and list(outs) == list(HEAD_OUTPUTS)
