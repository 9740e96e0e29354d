"""EngineInfo: the one record the TensorRT exporter writes and the backend reads."""

from __future__ import annotations

import json
from pathlib import Path

from modeldeploy.core.engine_info import EngineInfo, engine_info_path, read_engine_info, write_engine_info


def test_round_trip_keeps_typed_fields_and_build_details(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    info = EngineInfo(
        "m", "int8", "10.9.0", "9.0", ["logits"], {"precision_policy": "explicit_int8", "cache_key": "ab"}
    )
    assert write_engine_info(engine, info) == tmp_path / "m.engine.json" == engine_info_path(engine)
    assert read_engine_info(engine) == info
    assert not list(tmp_path.glob(".*partial"))


def test_reads_the_flat_sidecar_of_engines_published_before_engine_info(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    (tmp_path / "m.engine.json").write_text(
        json.dumps(
            {
                "component": "m",
                "precision": "fp16",
                "tensorrt": "10.3.0",
                "compute_capability": "8.9",
                "output_names": None,
                "build_seconds": 3.5,
            }
        )
    )
    got = read_engine_info(engine)
    assert (
        got is not None and got.precision == "fp16" and got.tensorrt == "10.3.0" and got.extra == {"build_seconds": 3.5}
    )


def test_missing_or_broken_record_is_none(tmp_path: Path) -> None:
    assert read_engine_info(tmp_path / "none.engine") is None
    (tmp_path / "bad.engine.json").write_text("{not json")
    assert read_engine_info(tmp_path / "bad.engine") is None
