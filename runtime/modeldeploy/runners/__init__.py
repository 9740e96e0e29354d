"""DeploymentRunner: load → export → verify → evaluate → summary."""

from modeldeploy.runners.runner import DeploymentRunner, RunOutcome

__all__ = ["DeploymentRunner", "RunOutcome"]
