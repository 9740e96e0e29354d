"""Build the project's images (images/*/Dockerfile) with buildah for the image and node tiers.

No container registry is reachable here, so every image is built FROM local base images
made by ``tests/node/build_base_image.sh`` (debootstrap'ed Debian + python3, a static
pause). Builds are cached by content: the tag is a hash of the Dockerfile, the build-context
files the Dockerfiles COPY (pyproject.toml, README.md, runtime/, operator/ — filtered like
.dockerignore), the target, the build args and the base image id. A tag already in podman's
store is reused as is; a record of each build (seconds, size) is kept as JSON under
``${MODELDEPLOY_IMAGE_CACHE:-~/.cache/modeldeploy/images}``.

The runtime image is the ``cpu-test`` target of images/runtime/Dockerfile (PyPI torch with
its CUDA wheels, onnxruntime CPU, no TensorRT; see that Dockerfile); the operator image is its production target, only the
base image differs. A failed build raises ``ImageBuildError`` (the tests ERROR, never skip).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INSTALL_PREREQS = HERE / "install_prereqs.sh"
BUILD_BASE = HERE / "build_base_image.sh"
CONTEXT_PATHS = ("pyproject.toml", "README.md", "runtime", "operator")
SKIP_PARTS = {"__pycache__", "work_dirs", ".pytest_cache"}
# Debian's bundle path in the base image; the host bundle is mounted over it during RUN steps.
BUILD_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"


class ImageBuildError(RuntimeError):
    """A prerequisite install, base image or image build failed (the test must ERROR)."""


@dataclass(frozen=True)
class BuiltImage:
    name: str  # "runtime" / "operator"
    ref: str  # localhost/modeldeploy/<name>:<tag>
    image_id: str
    size_bytes: int
    build_seconds: float  # 0.0 when reused from the cache
    cached: bool

    def summary(self) -> str:
        """One line for logs: ref, size, reused or built in N s."""
        state = "reused" if self.cached else f"built in {self.build_seconds:.0f}s"
        return f"{self.ref} {self.size_bytes / 1e6:.0f} MB, {state}"


def cache_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_IMAGE_CACHE", Path.home() / ".cache/modeldeploy/images"))


def _run(argv: list[str], *, timeout: float, log: Path | None = None, what: str) -> str:
    """Run a build step; on failure raise with the tail of its output (no silent skips)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except FileNotFoundError as e:
        raise ImageBuildError(f"{what}: {argv[0]} not found ({e}); run {INSTALL_PREREQS}") from e
    except subprocess.TimeoutExpired as e:
        raise ImageBuildError(f"{what}: timed out after {timeout:.0f}s") from e
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def capability_gaps() -> list[str]:
    """What this machine lacks OUTRIGHT for the image and node tiers (→ skip with the reason); a failed
    install or start is not a gap (→ the tests ERROR)."""
    gaps = []
    if os.geteuid() != 0:
        gaps.append("not root (containerd and the kubelet need root)")
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").is_file():
        gaps.append("no memory cgroup controller")
    if shutil.which("apt-get") is None and shutil.which("containerd") is None:
        gaps.append("no containerd and no apt-get to install it")
    return gaps


def ensure_prereqs() -> None:
    """apt-get installs podman/buildah/containerd/runc/CNI/debootstrap once (idempotent)."""
    _run(["bash", str(INSTALL_PREREQS)], timeout=1800, what=str(INSTALL_PREREQS))


def ensure_base_images() -> tuple[str, str]:
    """(debian-python image, pause image), made locally and cached."""
    out = _run(["bash", str(BUILD_BASE)], timeout=1800, log=cache_dir() / "logs" / "base.log", what=str(BUILD_BASE))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ImageBuildError(f"{BUILD_BASE} printed no image names: {out!r}")
    return lines[-2], lines[-1]


def context_files() -> list[Path]:
    """The files the Dockerfiles COPY, as .dockerignore filters them (pycache, egg-info, work_dirs out)."""
    files: list[Path] = []
    for rel in CONTEXT_PATHS:
        p = REPO / rel
        if p.is_file():
            files.append(p)
            continue
        for f in sorted(p.rglob("*")):
            parts = set(f.relative_to(REPO).parts)
            if (
                not f.is_file()
                or parts & SKIP_PARTS
                or f.suffix == ".pyc"
                or any(x.endswith(".egg-info") for x in parts)
            ):
                continue
            files.append(f)
    return files


def content_hash(dockerfile: Path, target: str | None, build_args: dict[str, str], base_id: str) -> str:
    h = hashlib.sha256()
    h.update(dockerfile.read_bytes())
    h.update(json.dumps({"target": target, "args": build_args, "base": base_id}, sort_keys=True).encode())
    for f in context_files():
        h.update(str(f.relative_to(REPO)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def image_id(ref: str) -> str:
    return _run(["podman", "image", "inspect", "--format", "{{.Id}}", ref], timeout=60, what=f"inspect {ref}").strip()


def image_size(ref: str) -> int:
    return int(
        _run(["podman", "image", "inspect", "--format", "{{.Size}}", ref], timeout=60, what=f"inspect {ref}").strip()
    )


def image_exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], capture_output=True).returncode == 0


def build_image(
    name: str,
    *,
    dockerfile: Path,
    target: str | None,
    build_args: dict[str, str],
    base_ref: str,
    use_pip_cache: bool = False,
    timeout: float = 3600,
) -> BuiltImage:
    """Build (or reuse) localhost/modeldeploy/<name>:<content hash>.

    ``MODELDEPLOY_TEST_IMAGE_<NAME>=<ref>`` (debugging only) uses an image already in podman's
    store instead, e.g. one built a few commits ago, to skip a rebuild + re-import."""
    pinned = os.environ.get(f"MODELDEPLOY_TEST_IMAGE_{name.upper()}")
    if pinned:
        if not image_exists(pinned):
            raise ImageBuildError(f"MODELDEPLOY_TEST_IMAGE_{name.upper()}={pinned} is not in podman's store")
        return BuiltImage(name, pinned, image_id(pinned), image_size(pinned), 0.0, True)
    tag = content_hash(dockerfile, target, build_args, image_id(base_ref))
    ref = f"localhost/modeldeploy/{name}:{tag}"
    record = cache_dir() / f"{name}-{tag}.json"
    if image_exists(ref):
        return BuiltImage(name, ref, image_id(ref), image_size(ref), 0.0, True)
    # --layers: a source-only change reuses the dependency layer (pyproject.toml unchanged).
    # --format docker: honour SHELL like `docker build` (the OCI format ignores it).
    argv = [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "--format",
        "docker",
        "-f",
        str(dockerfile),
        "-t",
        ref,
    ]
    if target:
        argv += ["--target", target]
    for k, v in build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    host_ca = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    if host_ca and Path(host_ca).is_file():
        # The host's pip trusts a TLS-intercepting proxy's CA: lend the bundle to the build's pip
        # (bind mount for the RUN steps only; not part of the image, not part of the cache key).
        argv += ["--build-arg", f"PIP_CERT={BUILD_CA_PATH}", "--volume", f"{host_ca}:{BUILD_CA_PATH}:ro"]
    if use_pip_cache:
        pip_cache = cache_dir() / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        argv += ["--volume", f"{pip_cache}:/pip-cache"]
    argv.append(str(REPO))
    t0 = time.monotonic()
    _run(argv, timeout=timeout, log=cache_dir() / "logs" / f"{name}-{tag}.log", what=f"buildah bud {dockerfile}")
    seconds = time.monotonic() - t0
    built = BuiltImage(name, ref, image_id(ref), image_size(ref), seconds, False)
    record.write_text(
        json.dumps({**built.__dict__, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2)
    )
    # Older tags are kept: they share all but the source layer (~10 MB) with this one, and
    # another checkout's test run (same podman store) may be saving one right now.
    return built


def build_project_images() -> dict[str, BuiltImage]:
    """Both images, CPU test variants FROM the local Debian base (cached by content).

    One builder at a time per image cache (flock): the node tier's fixture waits for a warm-up
    still building (``make test`` starts one beside the main suite, see ``main``) and then
    finds its tags, instead of building the same layers a second time."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_project_images()


def _build_project_images() -> dict[str, BuiltImage]:
    ensure_prereqs()
    python_base, _pause = ensure_base_images()
    runtime = build_image(
        "runtime",
        dockerfile=REPO / "images/runtime/Dockerfile",
        target="cpu-test",
        build_args={"CPU_BASE_IMAGE": python_base},
        base_ref=python_base,
        use_pip_cache=True,
    )
    operator = build_image(
        "operator",
        dockerfile=REPO / "images/operator/Dockerfile",
        target=None,
        build_args={"PYTHON_IMAGE": python_base},
        base_ref=python_base,
    )
    return {"runtime": runtime, "operator": operator}


def podman_run(
    ref: str, *args: str, entrypoint: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`podman run --runtime runc` (crun cannot run on this hybrid cgroup host)."""
    argv = ["podman", "--runtime", "runc", "run", "--rm", "--network", "none"]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    argv += [ref, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """Warm-up: build the node tier's images ahead of it (``python -m tests.node.images``) and,
    with ``--preload``, import them into the node cache's containerd as well.

    ``make test`` runs this beside the control-plane build and the main suite, which it
    overlaps (apt, debootstrap, pip, the layer commits and the import wait on network and disk
    as much as on a core). It never fails the make: a machine without the capability prints
    why, and a failed step prints one line; the node tier's fixtures build and import again
    and report the error as their ERROR."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.node.images", description=main.__doc__)
    parser.add_argument("--preload", action="store_true", help="also import both images into the node's containerd")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    gaps = capability_gaps()
    if gaps:
        print("node images: not built, this machine cannot run the node tier: " + "; ".join(gaps))
        return 0
    try:
        images = build_project_images()
    except ImageBuildError as e:
        print(f"node images: build failed after {time.monotonic() - t0:.0f}s (the node tier retries it): {e}")
        return 0
    for img in images.values():
        print(f"node images: {img.summary()}")
    if args.preload:
        from .node import NodeError, preload_images  # needs PyYAML: the venv's python

        t1 = time.monotonic()
        try:
            _python, pause = ensure_base_images()
            with tempfile.TemporaryDirectory(prefix="node-preload-") as tmp:
                seconds = preload_images([i.ref for i in images.values()], pause_image=pause, work_dir=Path(tmp))
        except (ImageBuildError, NodeError) as e:
            print(f"node images: import failed after {time.monotonic() - t1:.0f}s (the node tier retries it): {e}")
            return 0
        print("node images: in containerd: " + ", ".join(f"{ref} {s:.0f}s" for ref, s in seconds.items()))
    print(f"node images: ready in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
