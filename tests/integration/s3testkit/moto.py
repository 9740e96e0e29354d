"""Run moto's S3 server as a child process on 127.0.0.1 (a real HTTP endpoint, not an in-process mock).

A separate process keeps the server's work off the test process's GIL (throughput and
timeouts behave like a real endpoint) and lets a test run a second server with other
settings (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT=0``: moto then authenticates every request
against its IAM backend, so unknown credentials get 403 InvalidAccessKeyId).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the test process dies (e.g. SIGKILLed), so none is orphaned."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MotoServer:
    def __init__(self, extra_env: dict[str, str] | None = None, startup_timeout_s: float = 30.0) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        env = dict(os.environ, **(extra_env or {}))
        self.proc = subprocess.Popen(
            cmd + ["-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + startup_timeout_s
        port = None
        while port is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not start: {Path(self._log.name).read_text()[-2000:]}")
            m = _RUNNING.search(Path(self._log.name).read_text(errors="replace"))
            port = int(m.group(1)) if m else None
            if port is None:
                time.sleep(0.05)
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop the server this object started (by its own PID only)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
