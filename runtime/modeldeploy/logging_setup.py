"""Logging for a terminal (rich, human) or a pod (JSON lines, one object per line).

Every handler carries ``RedactFilter`` (modeldeploy/redact.py): no secret value reaches stderr
(→ the pod log) or run.log (→ published), whatever a config or library logs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from modeldeploy.redact import RedactFilter, scrub

_SECRET_HINTS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k in ("stage", "event", "current", "total", "seconds"):
            if hasattr(record, k):
                obj[k] = getattr(record, k)
        if record.levelno >= logging.ERROR and (record.exc_text or record.exc_info):
            obj["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return scrub(json.dumps(obj, default=str))


def setup_logging(level: str = "INFO", fmt: str = "text", log_file: Path | None = None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    lvl = getattr(logging, level.upper())
    if fmt == "json":
        h: logging.Handler = logging.StreamHandler(sys.stderr)
        h.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        from rich.logging import RichHandler

        h = RichHandler(show_path=False, rich_tracebacks=False)
    else:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    h.setLevel(lvl)
    h.addFilter(RedactFilter())
    root.addHandler(h)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, mode="w")
        fh.setFormatter(JsonFormatter())
        fh.setLevel(logging.DEBUG)
        fh.addFilter(RedactFilter())
        root.addHandler(fh)
    logging.captureWarnings(True)  # warnings.warn(...) then passes through the scrubbing handlers too
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
