# Deploy config: YOLOX_opt_elan tiny demo (synthetic shapes, 256x256), CPU only.
#   modeldeploy run builtin:yolox/deploy_tiny.py builtin:yolox/yolox_tiny_256.py
project = "yolox"
task_type = "detection2d"
checkpoint_path = "builtin:yolox/yolox_tiny_256.pth"
# The demo checkpoint is written like an mmengine Runner checkpoint with EMAHook: 'state_dict'
# holds the EMA weights (what to deploy), 'ema_state_dict' the raw ones. Keep use_ema=False.
use_ema = False

export = dict(mode="onnx", device="cpu", verify=True, work_dir="work_dirs/yolox_tiny")

# info_file/data_root unset: the bundled deterministic synthetic COCO sample (yolox_data.bundled_sample),
# generated once into ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/datasets/.
# For a real COCO dataset: info_file='.../annotations/instances_val.json', data_root='.../images'.
runtime_io = dict(info_file=None, data_root=None, sample_idx=0)

model_io = dict(
    input_name="images",
    input_shape=(3, 256, 256),
    input_dtype="float32",
    output_name="output",  # [B, anchors, 4 + 1 + num_classes]: raw boxes, sigmoid obj/cls (AWML layout)
    dynamic_axes={"images": {0: "batch_size"}, "output": {0: "batch_size"}},
)

onnx_config = dict(
    opset_version=17,
    do_constant_folding=True,
    export_params=True,
    keep_initializers_as_inputs=False,
    save_file="yolox_tiny.onnx",
    decode_in_inference=False,  # True: (cx, cy, w, h) in input pixels instead of the raw regression
    exporter="legacy",
)

# Project section: deployment choices of the yolox project.
yolox = dict(
    nms_in_graph=True,  # also export yolox_tiny_nms.onnx: + ONNX NonMaxSuppression → num_dets/det_boxes/det_scores/det_classes
    # AWML rewrites ReLU6 → ReLU before export. This tiny model's activations often exceed 6, and the
    # rewrite measurably costs accuracy (COCO mAP ~0.50 → ~0.24 on the bundled set), so the demo keeps
    # ReLU6; the run logs how much the rewrite would change the scores when it is on.
    replace_relu6=False,
    score_thr=None,  # None: the model config's test_cfg (0.01, IoU 0.65, 100 per image)
    iou_threshold=None,
    max_per_img=None,
    pre_nms=1000,
)

backend_config = dict(
    type="tensorrt",
    common_config=dict(precision_policy="auto", max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            component="yolox",
            input_shapes=dict(
                images=dict(min_shape=(1, 3, 256, 256), opt_shape=(1, 3, 256, 256), max_shape=(8, 3, 256, 256))
            ),
        ),
        dict(
            component="yolox_nms",
            input_shapes=dict(
                images=dict(min_shape=(1, 3, 256, 256), opt_shape=(1, 3, 256, 256), max_shape=(8, 3, 256, 256))
            ),
        ),
    ],
)

verification = dict(
    enabled=True,
    num_verify_samples=3,
    tolerance=1e-3,
    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnxruntime", test_device="cpu")]),
)

evaluation = dict(
    enabled=True,
    num_samples=-1,
    warmup=2,
    backends=dict(pytorch=dict(device="cpu"), onnxruntime=dict(device="cpu")),
)
