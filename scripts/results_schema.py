#!/usr/bin/env python3
"""Write docs/results.schema.json from the results.json models (modeldeploy.core.results).

Why generated: the hand-written schema drifted from what runs wrote; now the models are the
one description and this file is derived from them. Run ``python scripts/results_schema.py``
after changing a model (``--check`` exits 1 when the committed file is stale;
tests/unit/runtime/test_results_schema.py runs the same check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results.schema.json"
sys.path.insert(0, str(ROOT / "runtime"))

from modeldeploy.core.results import results_json_schema  # noqa: E402


def render() -> str:
    return json.dumps(results_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when the committed schema differs")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python scripts/results_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
