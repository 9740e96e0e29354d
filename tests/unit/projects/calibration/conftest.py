"""Shared fixtures: small synthetic datasets written in the real on-disk format."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.projects.calibration.synthetic import bundled_dataset, generate_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 samples, seed 7 (read-only: tests that corrupt data copy it first)."""
    out = tmp_path_factory.mktemp("calib_tiny")
    return generate_dataset(out, num_samples=4, seed=7)


@pytest.fixture(scope="session")
def bundled_first50(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 50 samples of the bundled evaluation sample (seed 0): sample i depends only
    on (seed, i), so these are byte-identical to samples 0..49 of the 200-sample bundle."""
    return bundled_dataset(50, 0, root=tmp_path_factory.mktemp("calib_cache"))
