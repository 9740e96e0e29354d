"""Bad numbers never pass: NaN/Inf fail verification, tolerances are finite and bounded."""

from __future__ import annotations

import math

import pytest
import torch

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.config.sections import TOLERANCE_MAX
from modeldeploy.errors import ConfigError
from modeldeploy.verification.compare import compare_outputs, summarize


def _cmp(ref: torch.Tensor, test: torch.Tensor, allow: tuple[str, ...] = ()) -> list:
    return compare_outputs(
        {"o": ref},
        {"o": test},
        reference="pytorch:cpu",
        test_label="onnxruntime:cpu",
        tolerance=1e-3,
        allow_nonfinite=allow,
    )


def test_nan_vs_nan_is_not_equal() -> None:
    nan = torch.full((4,), float("nan"))
    (c,) = _cmp(nan, nan.clone())
    assert not c.passed and c.reason == "NonFinite"
    assert c.max_abs_diff is None, "no finite value was compared: no diff may be reported as 0.0"
    assert c.nonfinite == {"reference": 4, "test": 4}
    (row,) = summarize([c])
    assert row.passed is False and row.reason == "NonFinite" and row.nonfinite is not None
    assert (row.nonfinite.reference, row.nonfinite.test) == (4, 4)


def test_inf_in_reference_only_or_both_fails() -> None:
    x = torch.zeros(3)
    y = x.clone()
    y[0] = float("inf")
    assert _cmp(y, x)[0].reason == "NonFinite"
    assert _cmp(y, y.clone())[0].reason == "NonFinite"


def test_allowed_output_passes_only_when_the_nonfinite_pattern_matches() -> None:
    r = torch.tensor([0.0, float("-inf"), 1.0, float("nan")])
    (c,) = _cmp(r, r.clone(), allow=("o",))
    assert c.passed and c.max_abs_diff == 0.0
    t = r.clone()
    t[1] = float("inf")  # sign flipped
    assert _cmp(r, t, allow=("o",))[0].reason == "NonFinite"
    t = r.clone()
    t[0] = float("nan")  # NaN where the reference is finite
    assert _cmp(r, t, allow=("o",))[0].reason == "NonFinite"
    t = r.clone()
    t[2] = 1.5  # finite part still compared
    assert _cmp(r, t, allow=("o",))[0].reason == "ToleranceExceeded"


def _cfg(**verification: object) -> BaseDeploymentConfig:
    return BaseDeploymentConfig.from_dict({"project": "calibration", "verification": verification})


@pytest.mark.parametrize("tol", [math.inf, float("nan"), 0.0, -1e-3, TOLERANCE_MAX * 10, 1e309])
def test_tolerance_must_be_finite_and_bounded(tol: float) -> None:
    with pytest.raises(ConfigError, match="verification.tolerance"):
        _cfg(tolerance=tol)


def test_tolerance_bounds_accept_the_documented_range() -> None:
    assert _cfg(tolerance=TOLERANCE_MAX).verification.tolerance == TOLERANCE_MAX
    assert _cfg(tolerance=1e-6, allow_nonfinite=["logits"]).verification.allow_nonfinite == ("logits",)


def test_cli_cfg_options_inf_tolerance_is_refused_like_the_file(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "check-config",
            "builtin:calibration/deploy_demo.py",
            "--cfg-options",
            "verification.tolerance=1e309",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("modeldeploy: error:")]
    assert len(line) == 1 and "verification.tolerance" in line[0] and "Traceback" not in proc.stderr
