"""Graph precision transforms for TensorRT: Q/DQ INT8 and fp16 autocast, both ONNX → ONNX.

Why graph transforms: TensorRT 11 networks are always strongly typed — builder flags no
longer pick precisions — so an ``explicit_int8`` engine needs a Q/DQ graph and an
``fp16`` engine an fp16 graph. The same graphs also work on TensorRT 10 and run in ONNX
Runtime on the CPU, so the INT8 accuracy delta is MEASURED here (not guessed) before any
GPU is involved.

Tool choice for INT8 — ONNX Runtime's static QDQ quantizer, not nvidia-modelopt:
* ``onnxruntime.quantization.quantize_static`` ships inside the onnxruntime we already
  depend on, runs calibration on the CPU, and writes QuantizeLinear/DequantizeLinear
  pairs with int8, zero-point-0 (``ActivationSymmetric``/``WeightSymmetric``) scales —
  the explicit-quantization form TensorRT consumes — with per-channel weight scales.
* nvidia-modelopt 0.47 (checked with ``pip download --no-deps``): its ``[onnx]`` extra
  pins ``onnx~=1.21`` and ``onnxruntime-gpu~=1.24`` on Linux x86_64 plus
  ``cupy-cuda12x``, ``polygraphy``, ``onnx-graphsurgeon``, ``lief`` and ``cppimport``:
  it would downgrade our onnx 1.23 / onnxruntime 1.32, replace the CPU onnxruntime with a
  GPU build, and pull a CUDA 12 cupy next to a CUDA 13 torch. Not worth it for the PTQ
  we need; ``QuantizationSection.tool='modelopt'`` is refused with a clear error.

fp16: ``onnxruntime.transformers.float16.convert_float_to_float16`` (also inside
onnxruntime) with ``keep_io_types=True``, so the engine's inputs/outputs stay float32
and callers see the same IO as the fp32 graph.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from modeldeploy.config.sections import QuantizationSection
from modeldeploy.errors import ConfigError, DataError, ExportError

log = logging.getLogger(__name__)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _has_external_data(onnx_path: Path) -> bool:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer)


def _model_inputs(onnx_path: Path) -> dict[str, int]:
    """Graph input name -> ONNX elem type, excluding initializers listed as inputs."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return {i.name: i.type.tensor_type.elem_type for i in model.graph.input if i.name not in inits}


def _calibration_reader(samples: Iterable[dict[str, np.ndarray]], names: dict[str, int], limit: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds at most ``limit`` samples, checking each against the graph's inputs."""

        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(samples)
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.count >= limit:
                return None
            sample = next(self._it, None)
            if sample is None:
                return None
            missing = sorted(set(names) - set(sample))
            if missing:
                raise DataError(
                    f"calibration sample {self.count} lacks graph input(s) {missing}; has {sorted(sample)}",
                    hint="the calibration iterator must yield preprocessed inputs keyed by graph input name",
                )
            self.count += 1
            return {n: np.ascontiguousarray(sample[n]) for n in names}

    return Reader()


def quantize_qdq(
    onnx_path: Path,
    calibration_inputs: Iterable[dict[str, np.ndarray]],
    out_path: Path,
    settings: QuantizationSection,
) -> Path:
    """Write a Q/DQ (explicit INT8) copy of ``onnx_path`` calibrated on the given samples."""
    if settings.tool != "onnxruntime":
        raise ConfigError(
            f"backend_config.quantization.tool={settings.tool!r} is not supported",
            hint="use tool='onnxruntime' (see modeldeploy/exporters/quantization.py for why not modelopt)",
        )
    import itertools

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    names = _model_inputs(onnx_path)
    it = iter(calibration_inputs)
    first = next(it, None)
    if first is None:
        raise DataError(
            f"no calibration samples for {onnx_path.name}",
            hint="the dataset is empty or the calibration iterator yielded nothing",
        )
    calibration_inputs = itertools.chain([first], it)
    reader = _calibration_reader(calibration_inputs, names, settings.calibration_samples)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.partial.onnx")
    try:
        quantize_static(
            str(onnx_path),
            str(tmp),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=settings.per_channel,
            activation_type=QuantType.QInt8,  # TensorRT: signed int8, zero point 0
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
            use_external_data_format=_has_external_data(onnx_path),
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    except DataError:
        raise
    except Exception as exc:
        raise ExportError(
            f"INT8 Q/DQ quantization of {onnx_path.name} failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}",
            hint="check the calibration data matches the graph inputs, or use precision_policy='fp16'",
        ) from exc
    _move_onnx(tmp, out_path)
    counts = qdq_node_counts(out_path)
    if not counts["QuantizeLinear"] or not counts["DequantizeLinear"]:
        raise ExportError(
            f"quantization of {onnx_path.name} inserted no Q/DQ nodes ({counts})",
            hint="the graph has no quantizable ops (Conv/MatMul/Gemm)",
        )
    log.info(
        "Q/DQ model %s: %s, calibrated on %d samples (%s)",
        out_path.name,
        counts,
        reader.count,
        settings.calibrate_method,
    )
    return out_path


def _move_onnx(tmp: Path, final: Path) -> None:
    """Rename a graph into place; re-save when it has external data (its location names the temp file)."""
    import onnx

    if not _has_external_data(tmp):
        tmp.replace(final)
        return
    model = onnx.load(str(tmp))
    onnx.save_model(
        model, str(final), save_as_external_data=True, location=f"{final.name}.data", all_tensors_to_one_file=True
    )
    for stale in tmp.parent.glob(f"{tmp.name}*"):
        stale.unlink()


def qdq_node_counts(onnx_path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {op: sum(1 for n in model.graph.node if n.op_type == op) for op in QDQ_OPS}


def convert_fp16(onnx_path: Path, out_path: Path) -> Path:
    """fp16/mixed graph with float32 IO (keep_io_types) for strongly typed TensorRT."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    external = _has_external_data(onnx_path)
    model = onnx.load(str(onnx_path))
    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:
        raise ExportError(
            f"fp16 conversion of {onnx_path.name} failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}",
            hint="use precision_policy='auto' or 'fp32_tf32' for this model",
        ) from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(
            converted,
            str(out_path),
            save_as_external_data=True,
            location=f"{out_path.name}.data",
            all_tensors_to_one_file=True,
        )
    else:
        onnx.save_model(converted, str(out_path))
    return out_path
