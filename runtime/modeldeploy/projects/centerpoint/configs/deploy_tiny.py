# Deploy config: tiny CenterPoint (demo / CI) on the bundled synthetic T4-format sample.
#   modeldeploy run builtin:centerpoint/deploy_tiny.py builtin:centerpoint/centerpoint_tiny.py
project = "centerpoint"
task_type = "detection3d"
checkpoint_path = "builtin:centerpoint/centerpoint_tiny.pth"

export = dict(mode="onnx", device="cpu", verify=True, work_dir="work_dirs/centerpoint_tiny")

# info_file/data_root unset: the bundled deterministic synthetic sample (16 frames, seed 2024),
# generated once into ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/datasets/.
runtime_io = dict(info_file=None, data_root=None, sample_idx=0)

onnx_config = dict(opset_version=17, do_constant_folding=True, export_params=True, keep_initializers_as_inputs=False)

# Two components: the voxel encoder has a dynamic voxel count (max 12000 in this config,
# 20 points per voxel, 4 raw + 3 cluster + 3 pillar-centre features); the backbone/neck/head
# runs on the fixed 160x160 BEV canvas with 16 channels.
backend_config = dict(
    type="tensorrt",
    common_config=dict(precision_policy="auto", max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            component="pts_voxel_encoder",
            input_shapes=dict(
                input_features=dict(min_shape=(1, 20, 10), opt_shape=(4000, 20, 10), max_shape=(12000, 20, 10))
            ),
        ),
        dict(
            component="pts_backbone_neck_head",
            input_shapes=dict(
                spatial_features=dict(
                    min_shape=(1, 16, 160, 160), opt_shape=(1, 16, 160, 160), max_shape=(1, 16, 160, 160)
                )
            ),
        ),
    ],
)

verification = dict(
    enabled=True,
    num_verify_samples=3,
    tolerance=1e-3,
    scenarios=dict(
        onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnxruntime", test_device="cpu")],
        trt=[dict(ref_backend="pytorch", ref_device="cuda:0", test_backend="tensorrt", test_device="cuda:0")],
        both=[
            dict(ref_backend="pytorch", ref_device="cuda:0", test_backend="onnxruntime", test_device="cuda:0"),
            dict(ref_backend="pytorch", ref_device="cuda:0", test_backend="tensorrt", test_device="cuda:0"),
        ],
    ),
)

evaluation = dict(
    enabled=True,
    num_samples=-1,
    warmup=2,
    backends=dict(pytorch=dict(device="cpu"), onnxruntime=dict(device="cpu")),
)
