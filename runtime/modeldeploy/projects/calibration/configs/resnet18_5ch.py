# CalibrationStatusClassification, AWML size (model config, mmengine format).
# Matches AWML projects/CalibrationStatusClassification/configs/t4dataset/
# resnet18_5ch_1xb16-50e_j6gen2.py: mmpretrain ResNet-18 (64 base channels), 5 input
# channels, GlobalAveragePooling, LinearClsHead with 2 classes. AWML checkpoints load with
# strict=True. AWML trains and exports at the camera's full resolution (1860 x 2880 for
# j6gen2; TensorRT profile 1080x1920 .. 2160x3840); the network is resolution-agnostic.
model = dict(
    type="mmpretrain.ImageClassifier",
    backbone=dict(
        type="ResNet",
        depth=18,
        in_channels=5,
        num_stages=4,
        out_indices=(3,),
        frozen_stages=-1,
        style="pytorch",
        norm_cfg=dict(type="BN", requires_grad=True),
    ),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=2,
        in_channels=512,
        loss=dict(type="LabelSmoothLoss", loss_weight=1.0, label_smooth_val=0.1, reduction="mean"),
        topk=(1,),
    ),
)

calibration_data = dict(
    max_depth=128.0,  # AWML lidar_range
    dilation_size=1,
    normalize=dict(mean=(0.0, 0.0, 0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0, 255.0, 255.0)),
    miscalibration=dict(
        probability=0.5,
        min_rotation_deg=1.0,
        max_rotation_deg=10.0,
        min_translation_m=0.05,
        max_translation_m=0.2,
        seed=0,
    ),
    # without a dataset the bundled synthetic sample is small; point runtime_io at real
    # T4 calibration info files for full-resolution evaluation.
    bundled_sample=dict(num_samples=200, seed=0, height=96, width=160),
    class_names=("miscalibrated", "calibrated"),
)
