# Deploy config: calibration classifier demo (tiny ResNet-18, synthetic data), CPU only.
#   modeldeploy run builtin:calibration/deploy_demo.py builtin:calibration/resnet18_5ch_tiny.py
project = "calibration"
task_type = "classification"
checkpoint_path = "builtin:calibration/resnet18_5ch_tiny.pth"

export = dict(mode="onnx", device="cpu", verify=True, work_dir="work_dirs/calibration")

# info_file/data_root unset: the bundled deterministic synthetic sample (200 samples, seed 0),
# generated once into ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/datasets/.
runtime_io = dict(info_file=None, data_root=None, sample_idx=0)

model_io = dict(
    input_name="input",
    input_shape=(5, 96, 160),  # B, G, R, depth, intensity at the synthetic image size
    input_dtype="float32",
    output_name="output",  # logits (B, 2); softmax in postprocess, as AWML exports it
    dynamic_axes={"input": {0: "batch_size", 2: "height", 3: "width"}, "output": {0: "batch_size"}},
)

onnx_config = dict(
    opset_version=17,
    do_constant_folding=True,
    export_params=True,
    keep_initializers_as_inputs=False,
    save_file="calibration_classifier.onnx",
)

backend_config = dict(
    type="tensorrt",
    common_config=dict(precision_policy="auto", max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                input=dict(min_shape=(1, 5, 64, 96), opt_shape=(1, 5, 96, 160), max_shape=(8, 5, 192, 320))
            )
        ),
    ],
)

verification = dict(
    enabled=True,
    num_verify_samples=3,
    tolerance=1e-3,
    scenarios=dict(
        onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnxruntime", test_device="cpu")],
    ),
)

evaluation = dict(
    enabled=True,
    num_samples=100,
    warmup=3,
    backends=dict(pytorch=dict(device="cpu"), onnxruntime=dict(device="cpu")),
)
