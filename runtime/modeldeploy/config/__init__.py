"""Deploy-config loading and validation (BaseDeploymentConfig over mmengine.Config)."""

from modeldeploy.config.deploy_config import BaseDeploymentConfig, load_mmengine_config

__all__ = ["BaseDeploymentConfig", "load_mmengine_config"]
