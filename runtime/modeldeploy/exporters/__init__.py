"""Exporters: PyTorch → ONNX (ONNXExporter) and ONNX → TensorRT engine (TensorRTExporter)."""
