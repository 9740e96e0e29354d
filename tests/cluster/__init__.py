"""Real Kubernetes control plane + test node agent for the modeldeploy tests (see README.md)."""
