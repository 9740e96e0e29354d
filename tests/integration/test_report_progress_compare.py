"""What a person sees, on real CLI runs of the three shipped projects (tiny, CPU):

* report.html opened in headless Chromium (Debian's ``chromium``): the screenshot is not
  blank and every <img> decoded (naturalWidth > 0), with the figures each project supports;
* a TTY run captured with tmux shows the banner, every stage and the closing line;
* ``modeldeploy compare`` on two real calibration runs (table, verdict, exit 0 / 3).

Chromium and tmux come from tests/e2e/install_report_tools.sh; without them the tests that
need them skip with that instruction (a skip never counts as a pass).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FAST = {
    "calibration": ["evaluation.num_samples=6", "evaluation.warmup=1", "verification.num_verify_samples=2"],
    "yolox": ["evaluation.num_samples=6", "evaluation.warmup=1", "verification.num_verify_samples=1"],
    "centerpoint": ["evaluation.num_samples=4", "evaluation.warmup=1", "verification.num_verify_samples=1"],
}
CONFIGS = {
    "calibration": ("builtin:calibration/deploy_demo.py", "builtin:calibration/resnet18_5ch_tiny.py"),
    "yolox": ("builtin:yolox/deploy_tiny.py", "builtin:yolox/yolox_tiny_256.py"),
    "centerpoint": ("builtin:centerpoint/deploy_tiny.py", "builtin:centerpoint/centerpoint_tiny.py"),
}
COMMON_FIGURES = (
    "Latency distribution per backend",
    "Latency per stage",
    "Accuracy vs latency",
    "Verification error per sample",
)
PROJECT_FIGURES = {"calibration": "Confusion matrix", "yolox": "PR curves", "centerpoint": "PR curves"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def _run(project: str, work: Path) -> Path:
    deploy, model = CONFIGS[project]
    proc = _cli("run", deploy, model, "--work-dir", str(work), "--cfg-options", *FAST[project])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report_runs")
    return {p: _run(p, base / p) for p in CONFIGS}


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed: run tests/e2e/install_report_tools.sh")
    return exe


def _browser(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("project", list(CONFIGS))
def test_report_html_renders_in_chromium_with_every_figure(runs: dict[str, Path], project: str, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    exe = _chromium()
    report = runs[project] / "report.html"
    text = report.read_text()
    assert "<script" not in text and 'src="http' not in text  # self-contained, nothing fetched
    srcs = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', text)
    captions = [c for c, _ in srcs]
    for want in COMMON_FIGURES + (PROJECT_FIGURES[project],):
        assert any(c.startswith(want) for c in captions), (want, captions)
    for caption, b64 in srcs:  # each embedded image is a decodable, non-trivial PNG
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert img.format == "PNG" and img.width > 100 and img.height > 100, caption
    # the browser's view: every <img> decoded (naturalWidth > 0) ...
    probe = tmp_path / "probe.html"
    probe.write_text(
        text + "<script>addEventListener('load',()=>{const i=[...document.images];"
        "document.body.setAttribute('data-loaded',i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length)})</script>"
    )
    dom = _browser(exe, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    m = re.search(r'data-loaded="(\d+)/(\d+)"', dom.stdout)
    assert m, dom.stderr[-2000:]
    assert m.group(1) == m.group(2) == str(len(srcs))
    # ... and the screenshot of the page itself is not blank
    shot = tmp_path / "shot.png"
    _browser(exe, f"--screenshot={shot}", "--window-size=1200,3000", report.as_uri())
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 3000)
    assert ImageStat.Stat(img).var[0] > 100.0  # a white (or single-colour) page has ~0 variance
    assert len(img.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_results_reference_raw_latency_and_curve_sidecars(runs: dict[str, Path]) -> None:
    for project, work in runs.items():
        res = json.loads((work / "results.json").read_text())
        for e in res["evaluation"].values():
            side = json.loads((work / e["latency_samples"]).read_text())
            assert len(side["total"]) == e["num_samples"] and side["unit"] == "ms"
            if project != "calibration":
                curves = json.loads((work / e["pr_curves"]).read_text())["pr_curves"]
                assert curves and all(len(c["recall"]) == len(c["precision"]) > 10 for c in curves.values())
        names = {a["name"] for a in res["artifacts"]}
        assert any(n.startswith("latency/") for n in names)
        manifest = json.loads(
            (work / json.loads((work / "current.json").read_text())["prefix"] / "manifest.json").read_text()
        )
        assert {"report.html", "report.md", "results.json"} <= {a["name"] for a in manifest["artifacts"]}


def test_results_identify_the_run(runs: dict[str, Path]) -> None:
    res = json.loads((runs["calibration"] / "results.json").read_text())
    assert (
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", res["run"]["started_at"])
        and res["run"]["finished_at"] >= res["run"]["started_at"]
    )
    assert res["run"]["modeldeploy"] and res["environment"]["torch"] and res["environment"]["onnxruntime"]
    for k in ("deploy_config", "model_config", "checkpoint"):
        assert re.fullmatch(r"[0-9a-f]{64}", res["inputs"][k]["sha256"]), k


@pytest.fixture(scope="module")
def tty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A second calibration run, on a real terminal (tmux), captured as a person sees it."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed: run tests/e2e/install_report_tools.sh")
    base = tmp_path_factory.mktemp("tty")
    work, rc_file, session = base / "run", base / "rc", f"mdtest{os.getpid()}"
    deploy, model = CONFIGS["calibration"]
    cmd = (
        f"cd {base} && OMP_NUM_THREADS=1 {sys.executable} -m modeldeploy run {deploy} {model} --work-dir {work} "
        f"--cfg-options {' '.join(FAST['calibration'])}; echo $? > {rc_file}; sleep 120"
    )
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd], check=True, env=ENV)
    try:
        deadline = time.monotonic() + 900
        while not rc_file.exists() and time.monotonic() < deadline:
            time.sleep(2)
        time.sleep(1)
        screen = subprocess.run(
            [tmux, "capture-pane", "-p", "-t", session, "-S", "-500"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)
    assert rc_file.exists(), "the TTY run did not finish in 900 s:\n" + screen
    assert rc_file.read_text().strip() == "0", screen
    return work, screen


def test_tty_run_shows_banner_every_stage_and_the_closing_line(tty_run: tuple[Path, str]) -> None:
    work, screen = tty_run
    flat = " ".join(screen.split())  # rich wraps long lines
    assert "modeldeploy run: project calibration" in flat and "device cpu" in flat and "torch" in flat
    for stage in (
        "preflight",
        "download / fetch inputs",
        "load model and data",
        "export ONNX",
        "TensorRT build",
        "verification",
        "evaluation",
        "regression gate",
        "upload",
        "report",
    ):
        assert f"▶ {stage}" in flat, stage
        assert re.search(rf"✓ {re.escape(stage)}[^▶]*?\(\d+\.\d\ds\)", flat), stage
    assert "TensorRT build: skipped (export.mode=onnx)" in flat
    assert re.search(
        r"modeldeploy: succeeded in \d+\.\ds — verdict PASS — report " + re.escape(str(work / "report.html")), flat
    ), flat[-800:]


def test_json_logs_carry_stage_events(tmp_path: Path) -> None:
    deploy, model = CONFIGS["calibration"]
    proc = _cli(
        "run",
        deploy,
        model,
        "--work-dir",
        str(tmp_path / "w"),
        "--log-format",
        "json",
        "--cfg-options",
        "evaluation.enabled=False",
        "verification.num_verify_samples=1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    kinds = [e.get("event") for e in events]
    assert kinds[:2] == ["starting", "start"] and kinds[-1] == "end"
    started = {e["stage"] for e in events if e.get("event") == "stage_start"}
    ended = {e["stage"]: e for e in events if e.get("event") == "stage_end"}
    assert (
        {
            "preflight",
            "fetch",
            "load",
            "export_onnx",
            "export_tensorrt",
            "verify",
            "evaluate",
            "gate",
            "upload",
            "report",
        }
        <= started
        == set(ended)
    )
    assert all(isinstance(e["seconds"], float) for e in ended.values())
    assert "verdict PASS" in events[-1]["msg"] and str(tmp_path / "w" / "report.html") in events[-1]["msg"]


def test_compare_two_real_runs(runs: dict[str, Path], tty_run: tuple[Path, str]) -> None:
    a, b = runs["calibration"], tty_run[0]
    ok = _cli(
        "compare", str(a / "results.json"), str(b), "--max-metric-drop", "0.0"
    )  # b: a run dir (current.json followed)
    assert ok.returncode == 0, ok.stderr
    assert "pytorch:cpu" in ok.stdout and "onnxruntime:cpu" in ok.stdout and "verdict: no regression" in ok.stdout
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    acc = ra["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    assert acc == rb["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]  # same checkpoint and data: same accuracy
    ratio = (
        rb["evaluation"]["onnxruntime:cpu"]["latency_ms"]["p50"]
        / ra["evaluation"]["onnxruntime:cpu"]["latency_ms"]["p50"]
    )
    bad = _cli("compare", str(a / "results.json"), str(b / "results.json"), "--max-latency-ratio", f"{ratio / 2:.6g}")
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "REGRESSION" in bad.stdout and "onnxruntime:cpu: latency p50" in " ".join(bad.stdout.split())
    missing = _cli("compare", str(a / "nope.json"), str(b))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_compare_reads_runs_from_s3(runs: dict[str, Path], s3_env: str, s3_admin: object, bucket: str) -> None:
    """compare fetches results.json from a real S3 endpoint (moto server on 127.0.0.1)."""
    src = runs["calibration"] / "results.json"
    s3_admin.put_object(Bucket=bucket, Key="runs/a/results.json", Body=src.read_bytes())  # type: ignore[attr-defined]
    proc = subprocess.run(
        [sys.executable, "-m", "modeldeploy", "compare", f"s3://{bucket}/runs/a/results.json", str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    assert "onnxruntime:cpu" in flat and "verdict: no regression" in flat
