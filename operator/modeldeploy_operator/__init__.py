"""modeldeploy operator: reconciles ``ModelDeployment`` resources into runtime Jobs.

Importing this package must stay cheap and must never import torch (the operator image
has no torch); heavy modules (kopf, kubernetes) are imported only by the modules that
need them, never here.
"""

__version__ = "0.1.0"
