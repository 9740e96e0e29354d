"""A worked example of a modeldeploy project outside the package (docs/adding-a-project.md)."""
