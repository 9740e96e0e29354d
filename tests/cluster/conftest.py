"""Fixtures for the cluster tests: see tests/cluster/fixtures.py."""

from .fixtures import control_plane, k8s_namespace, node_agent, pytest_collection_finish  # noqa: F401
