# YOLOX_opt_elan, tiny demo variant (model config, mmengine format). Same architecture and
# state-dict names as AWML's YOLOX-S-opt-elan but widen 0.25 / deepen 0.33 and a 256x256
# input, so it trains on a CPU in minutes (python -m modeldeploy.projects.yolox.train) and
# the checkpoint stays well under a megabyte. 4 classes of the bundled synthetic data.
IMG_SCALE = (256, 256)
activation = "ReLU6"

model = dict(
    type="YOLOX",
    data_preprocessor=dict(type="DetDataPreprocessor", pad_size_divisor=32),
    backbone=dict(
        type="ELANDarknet", deepen_factor=0.33, widen_factor=0.25, out_indices=(2, 3, 4), act_cfg=dict(type=activation)
    ),
    neck=dict(
        type="YOLOXPAFPN_ELAN",
        in_channels=[32, 64, 128],
        out_channels=32,
        num_elan_blocks=1,
        act_cfg=dict(type=activation),
    ),
    bbox_head=dict(type="YOLOXHead", num_classes=4, in_channels=32, feat_channels=32, act_cfg=dict(type=activation)),
    train_cfg=dict(assigner=dict(type="SimOTAAssigner", center_radius=2.5)),
    test_cfg=dict(score_thr=0.01, nms=dict(type="nms", iou_threshold=0.65), max_per_img=100),
)

# the bundled synthetic set's shapes, in label order (the data set's classes must match)
classes = ("ellipse", "triangle", "rectangle", "cross")

yolox_data = dict(
    img_scale=IMG_SCALE,
    pad_val=114.0,
    # used when the deploy config names no dataset (runtime_io.info_file/data_root unset):
    # generated deterministically into ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/datasets/
    bundled_sample=dict(num_images=48, seed=1000, min_size=200, max_size=320),
)
