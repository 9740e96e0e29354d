"""``model_io.input_dtype`` checked against the ONNX graph a run exports or is given.

Why: the key used to be accepted and ignored, so a config promising ``float16`` inputs to a
consumer (e.g. an Autoware node feeding the engine) could publish a ``float32`` graph. The
dtype of a graph input is decided by the traced model, not by this key; a mismatch is a
config error (exit 2) naming both dtypes, never a silent cast.
"""

from __future__ import annotations

from pathlib import Path

from modeldeploy.errors import ConfigError


def graph_input_dtype(onnx_path: Path, input_name: str) -> str | None:
    """numpy dtype name of graph input ``input_name`` (None: the graph has no such input)."""
    import numpy as np
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(onnx_path), load_external_data=False)
    for inp in model.graph.input:
        if inp.name == input_name:
            return str(np.dtype(tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)))
    return None


def check_input_dtype(onnx_paths: list[Path], input_name: str, expected: str, source: str) -> int:
    """Raise ConfigError when a graph's ``input_name`` input is not ``expected``.

    Graphs without an input of that name (a project's other components, e.g. CenterPoint's
    engines named by the project itself) are not checked. Returns how many graphs were checked."""
    checked = 0
    for path in onnx_paths:
        actual = graph_input_dtype(path, input_name)
        if actual is None:
            continue
        checked += 1
        if actual != expected:
            raise ConfigError(
                f"{source}: model_io.input_dtype is {expected!r} but input {input_name!r} of {path.name} is {actual}",
                hint=f"set model_io.input_dtype='{actual}' (the dtype the model is traced with), or export a model that takes {expected}",
            )
    return checked
