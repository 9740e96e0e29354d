"""ONNXExporter: legacy (TorchScript) or dynamo exporter, checked, external data kept.

The graph is written to a private temporary directory and moved into place only after
``onnx.checker`` accepted it and its IO names match the component, so a failed export
never leaves a ``.onnx`` that looks whole (nor a ``.onnx`` without its ``.data`` file).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TypedDict

import onnx
import torch

from modeldeploy.config.sections import ONNXConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.errors import ExportError
from modeldeploy.exporters.base import BaseExporter, ExportedModel


def external_data_files(model_path: Path) -> list[Path]:
    """Files an ONNX graph references as external data (without loading the tensors)."""
    model = onnx.load(str(model_path), load_external_data=False)
    names = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            for kv in init.external_data:
                if kv.key == "location":
                    names.add(kv.value)
    return [model_path.parent / n for n in sorted(names)]


class _ExportKwargs(TypedDict, total=False):
    """The ``torch.onnx.export`` options both exporters share (typed so ``**kwargs`` checks)."""

    input_names: list[str]
    output_names: list[str]
    opset_version: int
    do_constant_folding: bool
    export_params: bool
    keep_initializers_as_inputs: bool
    dynamic_axes: dict[str, dict[int, str]]


class ONNXExporter(BaseExporter):
    def __init__(self, cfg: ONNXConfigSection) -> None:
        self.cfg = cfg

    def export(self, component: ExportComponent, out_dir: Path) -> ExportedModel:
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / component.file_name
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            tmp_path = Path(tmp) / component.file_name
            self._run_exporter(component, tmp_path)
            self._check(component, tmp_path)
            extra = external_data_files(tmp_path)
            # Move data files first, graph last: a reader that sees the graph sees its data.
            for f in extra:
                shutil.move(str(f), out_dir / f.name)
            for stale in [final, *[out_dir / f"{final.name}.data"]]:
                if stale.exists() and stale.name not in {f.name for f in extra}:
                    stale.unlink()
            shutil.move(str(tmp_path), final)
        return ExportedModel(
            component=component.name,
            path=final,
            extra_files=[out_dir / f.name for f in extra],
            input_names=list(component.input_names),
            output_names=list(component.output_names),
            info={"exporter": self.cfg.exporter, "opset_version": self.cfg.opset_version},
        )

    def _run_exporter(self, component: ExportComponent, path: Path) -> None:
        module = component.module.eval()
        args = component.ordered_inputs(component.sample_inputs)
        kwargs = _ExportKwargs(
            input_names=list(component.input_names),
            output_names=list(component.output_names),
            opset_version=self.cfg.opset_version,
            do_constant_folding=self.cfg.do_constant_folding,
            export_params=self.cfg.export_params,
            keep_initializers_as_inputs=self.cfg.keep_initializers_as_inputs,
        )
        if component.dynamic_axes:
            kwargs["dynamic_axes"] = {k: dict(v) for k, v in component.dynamic_axes.items()}
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", category=DeprecationWarning)
                warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
                if self.cfg.exporter == "dynamo":
                    kwargs.pop("keep_initializers_as_inputs")
                    torch.onnx.export(
                        module, args, str(path), dynamo=True, external_data=self.cfg.external_data, **kwargs
                    )
                else:
                    torch.onnx.export(module, args, str(path), dynamo=False, **kwargs)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
            raise ExportError(
                f"torch.onnx.export ({self.cfg.exporter}) failed for component '{component.name}': {first}",
                hint="try onnx_config.exporter='legacy' or 'dynamo', or another opset_version",
            ) from exc
        if not path.is_file():
            raise ExportError(f"exporter wrote no file for component '{component.name}'", hint="report this as a bug")

    def _check(self, component: ExportComponent, path: Path) -> None:
        try:
            onnx.checker.check_model(str(path), full_check=False)
        except onnx.checker.ValidationError as exc:
            raise ExportError(
                f"exported graph for '{component.name}' fails onnx.checker: {str(exc).splitlines()[0][:300]}",
                hint="report this with the model config",
            ) from exc
        model = onnx.load(str(path), load_external_data=False)
        got_in = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
        got_out = [o.name for o in model.graph.output]
        if got_in != list(component.input_names) or got_out != list(component.output_names):
            raise ExportError(
                f"exported graph for '{component.name}' has IO {got_in} -> {got_out}, expected {component.input_names} -> {component.output_names}",
                hint="an input unused by the model is dropped by the exporter; check the component's forward",
            )
