# Deploy config: AWML YOLOX-S-opt-elan (960x960, 8 T4 classes) on a GPU node, ONNX + TensorRT.
#   modeldeploy run builtin:yolox/deploy_awml_960.py builtin:yolox/yolox_s_opt_elan_960.py s3://.../yolox_epoch300.pth
# An AWML Runner checkpoint trained with EMAHook already carries the EMA weights in
# 'state_dict' (mmengine swaps them in before saving), so use_ema stays False.
project = "yolox"
task_type = "detection2d"
use_ema = False

export = dict(mode="both", device="cuda:0", verify=True, work_dir="work_dirs/yolox_awml_960")

# AWML's T4 2D info file as tools/detection2d/create_data_t4dataset.py writes it (a COCO json
# works too; the format is read from the content). Its img_paths are absolute; relative ones
# are taken relative to data_root (else the info file's folder). Without any data, use
# deploy_awml_960_onnx.py: export only, from a synthesised input.
runtime_io = dict(info_file="data/t4dataset/yolox_infos_val.json", data_root=None, sample_idx=0)

model_io = dict(
    input_name="images",
    input_shape=(3, 960, 960),
    input_dtype="float32",
    output_name="output",
    dynamic_axes={"images": {0: "batch_size"}, "output": {0: "batch_size"}},
)

onnx_config = dict(opset_version=17, save_file="yolox_opt_elan.onnx", decode_in_inference=False, exporter="legacy")

yolox = dict(nms_in_graph=True, replace_relu6=True, pre_nms=1000)

backend_config = dict(
    type="tensorrt",
    common_config=dict(precision_policy="fp16", max_workspace_size=2 << 30),
    model_inputs=[
        dict(
            component="yolox",
            input_shapes=dict(
                images=dict(min_shape=(1, 3, 960, 960), opt_shape=(1, 3, 960, 960), max_shape=(6, 3, 960, 960))
            ),
        ),
        dict(
            component="yolox_nms",
            input_shapes=dict(
                images=dict(min_shape=(1, 3, 960, 960), opt_shape=(1, 3, 960, 960), max_shape=(6, 3, 960, 960))
            ),
        ),
    ],
)

verification = dict(enabled=True, num_verify_samples=3, tolerance=1e-2)

evaluation = dict(
    enabled=True,
    num_samples=-1,
    warmup=5,
    backends=dict(pytorch=dict(device="cuda:0"), onnxruntime=dict(device="cuda:0"), tensorrt=dict(device="cuda:0")),
)
