"""fetch(): local paths, file:// and builtin:<project>/<file> (builtin tests use a fake package on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modeldeploy.artifacts.cas import default_cas_uri
from modeldeploy.artifacts.fetch import SourceNotFoundError, fetch, resolve_builtin
from modeldeploy.artifacts.s3client import parse_s3_uri
from modeldeploy.errors import ArtifactStoreError, ConfigError


def test_local_path_and_file_uri(tmp_path: Path) -> None:
    p = tmp_path / "model cfg.py"
    p.write_text("x = 1")
    assert fetch(str(p)) == p
    assert fetch(p.as_uri()) == p  # percent-encoded space decoded
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        fetch(str(tmp_path / "missing.pth"))
    assert issubclass(SourceNotFoundError, ConfigError)  # a user error: exit code 2, not retried


@pytest.fixture
def fake_projects_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway package laid out like modeldeploy/projects (a test double for the shipped one)."""
    root = tmp_path / "fakepkg_md" / "projects"
    (root / "demo" / "configs").mkdir(parents=True)
    (root / "demo" / "assets").mkdir()
    (tmp_path / "fakepkg_md" / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "demo" / "__init__.py").write_text("")
    (root / "demo" / "configs" / "deploy.py").write_text("task_type = 'x'")
    (root / "demo" / "assets" / "tiny.pth").write_bytes(b"ckpt")
    (root / "other").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakepkg_md.projects"
    for name in [m for m in sys.modules if m.startswith("fakepkg_md")]:
        del sys.modules[name]


def test_builtin_resolves_configs_and_assets_in_fake_package(fake_projects_package: str) -> None:
    assert fetch("builtin:demo/deploy.py", builtin_package=fake_projects_package).read_text() == "task_type = 'x'"
    assert fetch("builtin:demo/tiny.pth", builtin_package=fake_projects_package).read_bytes() == b"ckpt"


def test_builtin_errors_list_what_exists_in_fake_package(fake_projects_package: str) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        resolve_builtin("demo/nope.py", package=fake_projects_package)
    assert "configs/deploy.py" in info.value.one_line() and "assets/tiny.pth" in info.value.one_line()
    with pytest.raises(SourceNotFoundError) as info:
        resolve_builtin("nosuch/deploy.py", package=fake_projects_package)
    assert "demo" in info.value.one_line() and "other" in info.value.one_line()
    with pytest.raises(SourceNotFoundError, match="form builtin:<project>/<file>"):
        resolve_builtin("demo", package=fake_projects_package)
    with pytest.raises(SourceNotFoundError):
        resolve_builtin("demo/../../secret", package=fake_projects_package)


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b.pth") == ("bucket", "a/b.pth")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ArtifactStoreError):
        parse_s3_uri("s3:///key")


def test_default_cas_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELDEPLOY_CAS_URI", raising=False)
    assert default_cas_uri("s3://bkt/runs/ns/name") == "s3://bkt/cas"
    monkeypatch.setenv("MODELDEPLOY_CAS_URI", "s3://other/cache/")
    assert default_cas_uri("s3://bkt/runs") == "s3://other/cache"
