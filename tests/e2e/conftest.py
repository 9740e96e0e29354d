"""Fixtures of the end-to-end tests (real control plane + node agent, helm, Prometheus, moto S3).

* ``helm_bin`` / ``prometheus_bin`` (session): build or install on first use through
  tests/e2e/build_helm.sh and tests/e2e/install_prometheus.sh (idempotent, cached); a
  failure is an ERROR with the script's output, never a skip.
* ``control_plane`` / ``node_agent``: the tests/cluster fixtures (see tests/cluster/README.md).
* ``moto_s3`` (session): a moto S3 server process on 127.0.0.1 (tests/integration's helper).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.s3testkit.moto import MotoServer

from .tools import ToolError, ensure_helm, ensure_prometheus


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return ensure_helm()
    except ToolError as exc:
        pytest.fail(f"helm is needed and could not be built: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    try:
        return ensure_prometheus()
    except ToolError as exc:
        pytest.fail(f"the Prometheus server is needed and could not be installed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    server = MotoServer()
    try:
        yield server.endpoint
    finally:
        server.stop()
