"""``centerpoint = dict(...)`` in a deploy config: the project's own deploy-time choices."""

from __future__ import annotations

from modeldeploy.config.sections import Section


class CenterPointDeploySection(Section):
    """Declared as ``CenterPointProject.deploy_section``; unknown keys are refused by name.

    ``fast_pipeline``: run ``FastCenterPointPipeline`` (fast_pipeline.py) — voxelization,
    decoration, scatter, decode and NMS at fixed shapes with no host synchronisation between
    stages (Triton kernels on CUDA), the voxel encoder on all ``max_voxels`` rows — instead of
    the reference ``CenterPointPipeline``. Same components, stage names and results (tests
    compare them box for box); opt-in because the reference pipeline is the plain,
    exact-size transcription everything else is checked against.
    """

    fast_pipeline: bool = False
