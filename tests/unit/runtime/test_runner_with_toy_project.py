"""DeploymentRunner end to end on a toy project (real ONNX export + ONNX Runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyProject


def _cfg(tmp_path: Path, **over: object) -> BaseDeploymentConfig:
    raw = {
        "project": "toy",
        "export": {"mode": "onnx", "work_dir": str(tmp_path / "work")},
        "onnx_config": {"save_file": "toy.onnx"},
        "verification": {"num_verify_samples": 2, "tolerance": 1e-4},
        "evaluation": {"num_samples": 4, "warmup": 1},
    }
    raw.update(over)
    return BaseDeploymentConfig.from_dict(raw)


def _runner(tmp_path: Path, toy_files: dict[str, Path], cls: type = DeploymentRunner, **kw: object) -> DeploymentRunner:
    cfg = kw.pop("cfg", None) or _cfg(tmp_path)
    project = kw.pop("project", None) or ToyProject()
    return cls(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=project,
        resolve_fn=Path,
        termination_log=str(tmp_path / "term.log"),
        **kw,
    )


def test_success_writes_schema_v1_results(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    out = _runner(tmp_path, toy_files).run()
    assert out.exit_code == 0, out.results["failure"]
    res = json.loads(out.results_path.read_text())
    assert res["schema_version"] == 1 and res["status"] == "succeeded" and res["failure"] is None
    assert set(res) >= {"environment", "artifacts", "verification", "evaluation", "durations_s"}
    onnx = [a for a in res["artifacts"] if a["kind"] == "onnx"]
    assert onnx and len(onnx[0]["sha256"]) == 64 and onnx[0]["bytes"] > 0
    assert res["verification"]["passed"] is True
    assert {c["reference"] for c in res["verification"]["comparisons"]} == {"pytorch:cpu"}
    assert set(res["evaluation"]) == {"pytorch:cpu", "onnxruntime:cpu"}
    for e in res["evaluation"].values():
        assert set(e["latency_ms"]) == {"mean", "std", "min", "max", "p50", "p90", "p95", "p99"}
        assert 0.0 <= e["metrics"]["accuracy"] <= 1.0
    # both backends compute the same function, so the same accuracy
    accs = {e["metrics"]["accuracy"] for e in res["evaluation"].values()}
    assert len(accs) == 1
    assert set(res["durations_s"]) >= {"load", "export_onnx", "verify", "evaluate", "upload"}
    current = json.loads((tmp_path / "work" / "current.json").read_text())  # the run's own prefix, via the pointer
    manifest = json.loads((tmp_path / "work" / current["prefix"] / "manifest.json").read_text())
    assert {"results.json", "report.md", "onnx/toy.onnx"} <= {a["name"] for a in manifest["artifacts"]}
    term = json.loads((tmp_path / "term.log").read_text())
    assert term["status"] == "succeeded" and term["verification"]["passed"] is True
    assert "p50_ms" in term["evaluation"]["onnxruntime:cpu"]


class _PerturbedBackend(BaseBackend):
    """Test double: wraps a real backend and adds an offset beyond tolerance."""

    backend_name = "onnxruntime"

    def __init__(self, inner: BaseBackend, offset: float) -> None:
        super().__init__(inner.device)
        self.inner, self.offset = inner, offset

    @property
    def input_names(self) -> list[str]:
        return self.inner.input_names

    @property
    def output_names(self) -> list[str]:
        return self.inner.output_names

    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v + self.offset for k, v in self.inner.infer(inputs).items()}


class _PerturbingRunner(DeploymentRunner):
    offset = 0.01

    def _backends(self, backend, device, precision):  # type: ignore[no-untyped-def]
        real = super()._backends(backend, device, precision)
        if backend == "onnxruntime":
            return {k: _PerturbedBackend(v, self.offset) for k, v in real.items()}
        return real


def test_verification_fails_when_backend_output_is_perturbed(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    out = _runner(tmp_path, toy_files, cls=_PerturbingRunner).run()
    assert out.exit_code == 3
    res = json.loads(out.results_path.read_text())
    assert res["status"] == "failed"
    assert res["failure"]["stage"] == "verify" and res["failure"]["reason"] == "VerificationFailed"
    assert res["verification"]["passed"] is False
    bad = res["verification"]["comparisons"][0]
    assert bad["passed"] is False and bad["reason"] == "ToleranceExceeded" and bad["max_abs_diff"] > 1e-4
    # what earlier stages produced is kept and listed
    assert any(a["kind"] == "onnx" for a in res["artifacts"])
    assert res["evaluation"] == {}


def test_small_perturbation_within_tolerance_passes(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    class Tiny(_PerturbingRunner):
        offset = 1e-6

    out = _runner(tmp_path, toy_files, cls=Tiny).run()
    assert out.exit_code == 0 and out.results["verification"]["passed"]


def test_injected_load_model_fn_and_failing_stage(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    from modeldeploy.errors import ExportError

    def boom(components, out_dir, cfg):  # type: ignore[no-untyped-def]
        raise ExportError("synthetic exporter failure", hint="none")

    calls = []

    def load_model(cfg, model_cfg, ckpt):  # type: ignore[no-untyped-def]
        calls.append(ckpt)
        return ToyProject().build_model(model_cfg)

    out = _runner(tmp_path, toy_files, load_model_fn=load_model, export_onnx_fn=boom).run()
    assert calls == [str(toy_files["checkpoint"])]
    assert out.exit_code == 1
    assert out.results["failure"] == {
        "stage": "export_onnx",
        "reason": "ExportError",
        "message": "ExportError: synthetic exporter failure — fix: none",
    }
    assert json.loads((tmp_path / "term.log").read_text())["failure"]["stage"] == "export_onnx"


def test_mismatched_checkpoint_is_a_clear_checkpoint_error(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, toy_files["checkpoint"])
    out = _runner(tmp_path, toy_files).run()
    assert out.exit_code == 2
    assert out.results["failure"]["stage"] == "load"
    assert out.results["failure"]["reason"] == "CheckpointMismatch"
    assert "missing key" in out.results["failure"]["message"]


def test_not_a_checkpoint(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    toy_files["checkpoint"].write_text("this is not a checkpoint")
    out = _runner(tmp_path, toy_files).run()
    assert out.exit_code == 2 and out.results["failure"]["reason"] == "CheckpointError"
    assert "not a PyTorch checkpoint" in out.results["failure"]["message"]


def test_final_prediction_mismatch_fails_verification(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    class StrictToy(ToyProject):
        def compare_predictions(self, reference, test, model_cfg):  # type: ignore[no-untyped-def]
            return {"passed": False, "unmatched_test": 1}

    out = _runner(tmp_path, toy_files, project=StrictToy()).run()
    assert out.exit_code == 3
    ver = out.results["verification"]
    assert all(c["passed"] for c in ver["comparisons"]) and ver["passed"] is False
    assert ver["predictions"][0] == {
        "reference": "pytorch:cpu",
        "test": "onnxruntime:cpu",
        "sample": 0,
        "passed": False,
        "unmatched_test": 1,
    }
    assert "final predictions differ" in out.results["failure"]["message"]


def test_explicit_int8_records_qdq_model_and_its_accuracy_delta(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    cfg = _cfg(
        tmp_path,
        backend_config={
            "common_config": {"precision_policy": "explicit_int8"},
            "quantization": {"calibration_samples": 4},
        },
    )
    out = _runner(tmp_path, toy_files, cfg=cfg).run()
    assert out.exit_code == 0, out.results["failure"]
    res = json.loads(out.results_path.read_text())
    qdq = [a for a in res["artifacts"] if a["name"].endswith(".int8_qdq.onnx")]
    assert qdq, [a["name"] for a in res["artifacts"]]
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "work" / qdq[0]["name"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8 = res["evaluation"]["onnxruntime-int8:cpu"]
    assert int8["precision"] == "int8"
    delta = int8["accuracy_delta_vs_fp32"]
    assert (
        delta["metric"] == "accuracy" and delta["fp32"] == res["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    )
    assert abs(delta["delta"] - (delta["int8"] - delta["fp32"])) < 1e-12
