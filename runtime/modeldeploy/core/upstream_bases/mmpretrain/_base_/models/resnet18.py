# Stand-in for mmpretrain::_base_/models/resnet18.py (mmpretrain 1.x), used when mmpretrain
# is not installed. Same keys and values as upstream: ImageNet ResNet-18 classifier; AWML's
# calibration config merges its own 5-channel / 2-class settings into this.
model = dict(
    type="ImageClassifier",
    backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(3,), style="pytorch"),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=1000,
        in_channels=512,
        loss=dict(type="CrossEntropyLoss", loss_weight=1.0),
        topk=(1, 5),
    ),
)
