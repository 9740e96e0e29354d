"""What a TensorRT engine was built as, handed from the exporter to the backend.

Why one typed record and one function pair: the exporter wrote a JSON sidecar and the
backend re-read it with a path and keys both sides spelled by hand; now the file name, the
known fields and their types live here only. The file stays ``<engine>.json`` with the same
flat keys, so engines published before this change still load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EngineInfo:
    component: str
    precision: str  # what the engine computes in (fp16, tf32, int8 …), not the policy's name
    tensorrt: str | None = None  # TensorRT version that built it: engines are not portable across versions
    compute_capability: str | None = None  # nor across GPU architectures
    output_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # build details for humans (policy, flags, cache key …)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "component": self.component,
            "precision": self.precision,
            "tensorrt": self.tensorrt,
            "compute_capability": self.compute_capability,
            "output_names": self.output_names,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineInfo:
        d = dict(data)
        return cls(
            component=str(d.pop("component", "")),
            precision=str(d.pop("precision", None) or "fp32"),
            tensorrt=d.pop("tensorrt", None),
            compute_capability=d.pop("compute_capability", None),
            output_names=d.pop("output_names", None),
            extra=d,
        )


def engine_info_path(engine_path: Path) -> Path:
    return Path(engine_path).with_name(Path(engine_path).name + ".json")


def write_engine_info(engine_path: Path, info: EngineInfo) -> Path:
    """Write ``<engine>.json`` atomically (a reader never sees half a file); returns its path."""
    path = engine_info_path(engine_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(info.to_json(), indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_engine_info(engine_path: Path) -> EngineInfo | None:
    """The engine's record, or None when there is none (an engine built elsewhere) or it is unreadable."""
    path = engine_info_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return EngineInfo.from_json(data) if isinstance(data, dict) else None
