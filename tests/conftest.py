"""Session fixtures shared by every test folder: one real control plane per pytest run.

The cluster fixtures live in tests/cluster/fixtures.py; importing them here (and only
here) makes tests/cluster and tests/e2e share one control plane and node agent instead
of each folder starting its own.
"""

from tests.cluster.fixtures import control_plane, k8s_namespace, node_agent, pytest_collection_finish  # noqa: F401
