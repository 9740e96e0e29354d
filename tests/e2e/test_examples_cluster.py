"""The API server (CRD schema + CEL rules from the chart's crds/) admits every example, and
refuses the most likely GitOps typos with a clear message (server-side dry run, nothing runs)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_CRD = REPO / "charts" / "modeldeploy-operator" / "crds" / "modeldeployment.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*-deploy.yaml"))

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crd(control_plane):
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART_CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io", "--timeout=60s")
    return control_plane


def dry_run(cp, body: dict) -> object:
    return cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_api_server_admits_example(crd, path: Path) -> None:
    proc = dry_run(crd, yaml.safe_load(path.read_text()))
    assert proc.returncode == 0, proc.stderr
    assert "(server dry run)" in proc.stdout


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s["export"].update(precision="fp8"), "spec.export.precision"),
        (lambda s: s["export"].update(opset=9), "spec.export.opset"),
        (lambda s: s["runtime"].update(device="cpu"), "needs runtime.device: cuda"),
    ],
)
def test_api_server_refuses_bad_edits_of_an_example(crd, edit, message) -> None:
    body = yaml.safe_load((REPO / "examples" / "centerpoint-deploy.yaml").read_text())
    bad = copy.deepcopy(body)
    edit(bad["spec"])
    proc = dry_run(crd, bad)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
