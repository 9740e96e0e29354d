# CalibrationStatusClassification, tiny demo variant (model config, mmengine format).
# Same architecture and state-dict names as AWML's resnet18_5ch (mmpretrain ResNet-18,
# 5 input channels, 2 classes) but 16 base channels, so it trains on a CPU in minutes and
# the demo checkpoint is ~3 MB. Input: the synthetic data's 96x160 (H x W) images.
model = dict(
    type="ImageClassifier",
    backbone=dict(
        type="ResNet",
        depth=18,
        in_channels=5,
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(3,),
        style="pytorch",
        norm_cfg=dict(type="BN", requires_grad=True),
    ),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(type="LinearClsHead", num_classes=2, in_channels=128),
)

# How the 5-channel input is built (AWML CalibrationClassificationTransform semantics):
# channels B, G, R, depth = 255 * z / max_depth, intensity; 3x3 splat (dilation_size=1),
# nearest point wins; then (x - mean) / std = x / 255 (AWML's data_preprocessor is empty).
calibration_data = dict(
    max_depth=128.0,
    dilation_size=1,
    normalize=dict(mean=(0.0, 0.0, 0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0, 255.0, 255.0)),
    # label 0 samples: extrinsic perturbed by a rotation about a random axis and a translation
    # in a random direction (AWML: 1-10 deg, 0.05-0.2 m, probability 0.5). Deterministic per
    # sample index and seed.
    miscalibration=dict(
        probability=0.5,
        min_rotation_deg=1.0,
        max_rotation_deg=10.0,
        min_translation_m=0.05,
        max_translation_m=0.2,
        seed=0,
    ),
    # used when the deploy config names no dataset (runtime_io.info_file/data_root unset)
    bundled_sample=dict(num_samples=200, seed=0, height=96, width=160),
    class_names=("miscalibrated", "calibrated"),
)
