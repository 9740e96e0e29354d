# YOLOX_opt_elan, the AWML model (model config, mmengine format): the `model` section of
# AWML's projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/
# yolox-s-opt-elan_960x960_300e_t4dataset.py (ELANDarknet + YOLOXPAFPN_ELAN + mmdet YOLOXHead,
# 8 T4 classes, ReLU6). An AWML checkpoint of this config loads with strict=True.
IMG_SCALE = (960, 960)
activation = "ReLU6"

model = dict(
    type="YOLOX",
    # no mean/std: the network sees BGR 0-255 (DetDataPreprocessor without normalisation)
    data_preprocessor=dict(type="DetDataPreprocessor", pad_size_divisor=32),
    backbone=dict(
        type="ELANDarknet", deepen_factor=2, widen_factor=1, out_indices=(2, 3, 4), act_cfg=dict(type=activation)
    ),
    neck=dict(
        type="YOLOXPAFPN_ELAN",
        in_channels=[128, 256, 512],
        out_channels=128,
        num_elan_blocks=2,
        act_cfg=dict(type=activation),
    ),
    bbox_head=dict(type="YOLOXHead", num_classes=8, in_channels=128, feat_channels=128, act_cfg=dict(type=activation)),
    train_cfg=dict(assigner=dict(type="SimOTAAssigner", center_radius=2.5)),
    test_cfg=dict(score_thr=0.01, nms=dict(type="nms", iou_threshold=0.65)),
)

# Resize(keep_ratio) to IMG_SCALE, then Pad(pad_to_square, 114), as AWML's test_pipeline.
# No bundled_sample: this model was not trained on the synthetic shapes, so without a
# dataset (runtime_io unset) the run exports from a synthesised input and skips/refuses
# verification and evaluation (docs/configuration.md, "Export without data").
yolox_data = dict(
    img_scale=IMG_SCALE,
    pad_val=114.0,
)

# Label order of the head, as AWML's detection2d/dataset/t4dataset/t4dataset_dynamic_recognition.py
# (`classes`, also the T4 2D info file's metainfo.classes). A data set with other classes is refused.
classes = ("unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle")
