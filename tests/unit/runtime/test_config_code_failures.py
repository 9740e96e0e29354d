"""A config whose code fails while loading says which line failed and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.config.deploy_config import read_mmengine_config
from modeldeploy.errors import ConfigError


@pytest.mark.parametrize(
    "body, expect",
    [
        ("import os\nproject = os.environ.get('HOME')\n", ["line 2", "os.environ.get", "lazy-import", "literal"]),
        ("import numpy as np\nscale = np.float32(2)\n", ["line 2", "np.float32", "lazy-import"]),
        ("a = 1\nb = undefined_name\n", ["line 2", "NameError", "undefined_name"]),
        ("x = 1\nraise ValueError('broken on purpose')\n", ["line 2", "ValueError: broken on purpose"]),
        ("x = [1, 2][5]\n", ["line 1", "IndexError"]),
    ],
)
def test_message_names_file_line_and_cause(tmp_path: Path, body: str, expect: list[str]) -> None:
    cfg = tmp_path / "cfg.py"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        read_mmengine_config(cfg)
    line = info.value.one_line()
    assert str(cfg) in line or "cfg.py" in line
    assert "RuntimeError: —" not in line and not line.rstrip().endswith("RuntimeError:")
    for text in expect:
        assert text in line, f"{text!r} missing from {line}"
    assert info.value.exit_code == 2


def test_secret_raised_by_a_config_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    cfg = tmp_path / "cfg.py"
    cfg.write_text("x = __import__('os').environ['AWS_SECRET_ACCESS_KEY']\nraise ValueError(x)\n")
    with pytest.raises(ConfigError) as info:
        read_mmengine_config(cfg)
    assert "very-secret-value-123" not in info.value.one_line() and "ValueError" in info.value.one_line()


def test_a_secret_cut_by_the_message_limit_is_still_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "S3cretValueThatStraddlesTheCut-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    cfg = tmp_path / "cfg.py"
    cfg.write_text("raise ValueError('x' * 280 + __import__('os').environ['AWS_SECRET_ACCESS_KEY'])\n")
    with pytest.raises(ConfigError) as info:
        read_mmengine_config(cfg)
    assert secret[:12] not in info.value.one_line()
