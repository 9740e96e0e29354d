# Deploy config for the tiny_classifier example project: ONNX on CPU, verified and evaluated.
project = "tiny_classifier"
task_type = "classification"

export = dict(mode="onnx", device="cpu", verify=True, work_dir="work_dirs/tiny_classifier")
model_io = dict(
    input_name="input",
    input_dtype="float32",
    output_name="logits",
    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
)
onnx_config = dict(opset_version=17, save_file="tiny_classifier.onnx")
verification = dict(num_verify_samples=2, tolerance=1e-4)
evaluation = dict(num_samples=8, warmup=1)
