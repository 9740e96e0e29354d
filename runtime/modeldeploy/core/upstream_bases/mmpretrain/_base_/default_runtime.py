# Stand-in for mmpretrain::_base_/default_runtime.py (mmpretrain 1.x), used when mmpretrain
# is not installed. Same keys and values as upstream; nothing here is read by deployment.
default_scope = "mmpretrain"

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=100),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="VisualizationHook", enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)

vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="UniversalVisualizer", vis_backends=vis_backends)

log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
