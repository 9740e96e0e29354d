"""Fixtures for the cluster tests: see tests/cluster/fixtures.py (imported by tests/conftest.py)."""
