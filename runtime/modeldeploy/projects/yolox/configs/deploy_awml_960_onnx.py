# Deploy config: AWML YOLOX-S-opt-elan (960x960, 8 T4 classes), ONNX export only, no data needed.
#   modeldeploy run builtin:yolox/deploy_awml_960_onnx.py builtin:yolox/yolox_s_opt_elan_960.py epoch_300.pth --device cpu
# No runtime_io and no verification/evaluation sections: the export is traced from a
# synthesised 960x960 image, and verification/evaluation are skipped with a logged line
# (docs/configuration.md, "Export without data"). Add runtime_io (a T4 2D info file or a
# COCO json) to verify PyTorch against ONNX Runtime and to evaluate.
project = "yolox"
task_type = "detection2d"
use_ema = False  # an AWML EMAHook checkpoint already holds the EMA weights in 'state_dict'

export = dict(mode="onnx", device="cpu", work_dir="work_dirs/yolox_awml_960_onnx")

model_io = dict(
    input_name="images",
    input_shape=(3, 960, 960),
    input_dtype="float32",
    output_name="output",
    dynamic_axes={"images": {0: "batch_size"}, "output": {0: "batch_size"}},
)

onnx_config = dict(opset_version=17, save_file="yolox_opt_elan.onnx", decode_in_inference=False, exporter="legacy")

yolox = dict(nms_in_graph=True, replace_relu6=True, pre_nms=1000)
