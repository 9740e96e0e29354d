# Deploy config: calibration classifier on a GPU node — ONNX + TensorRT, and every engine
# that is built is also verified and evaluated (pytorch, onnxruntime and tensorrt on cuda),
# so the PRECISION and LATENCY columns of `kubectl get mdep` describe the same engine.
#   modeldeploy run builtin:calibration/deploy_gpu.py builtin:calibration/resnet18_5ch_tiny.py
# The CPU demo (no GPU, ONNX only) is builtin:calibration/deploy_demo.py.
_base_ = ["./deploy_demo.py"]

export = dict(mode="both", device="cuda:0", work_dir="work_dirs/calibration_gpu")

backend_config = dict(common_config=dict(precision_policy="fp16"))

verification = dict(
    scenarios=dict(
        both=[
            dict(ref_backend="pytorch", ref_device="cuda:0", test_backend="onnxruntime", test_device="cuda:0"),
            dict(ref_backend="pytorch", ref_device="cuda:0", test_backend="tensorrt", test_device="cuda:0"),
        ],
    ),
)

evaluation = dict(
    backends=dict(pytorch=dict(device="cuda:0"), onnxruntime=dict(device="cuda:0"), tensorrt=dict(device="cuda:0")),
)
