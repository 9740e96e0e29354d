"""Fake `modeldeploy` runtime for the operator's cluster tests and benchmark.

Speaks the runtime's contract (docs/contracts.md §1, §3) without torch: it reads the deploy
config as TEXT (never executes it) and obeys `fake_<key> = <value>` lines in it:

    fake_exit = 0|1|2|3|4|137   exit code (137 = SIGKILL itself, like an OOM kill)
    fake_sleep = 2.5            seconds to run before exiting
    fake_message = json|text|none   termination message form (default json)
    fake_leak = ENV_NAME        put that env var's VALUE in the failure message, an artifact
                                name and the log, like a user config raising
                                ValueError(os.environ["AWS_SECRET_ACCESS_KEY"]) in a runtime
                                that does not scrub (tests the operator's own scrubbing)

The node agent maps the image `ghcr.io/modeldeploy/fake-runtime` to this script.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

LEAK_ENV: str | None = None


def directives(path: str) -> dict[str, str]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        print(f"fake-runtime: cannot read deploy config {path}: {e}", file=sys.stderr)
        sys.exit(2)
    return dict(re.findall(r"^fake_(\w+)\s*=\s*['\"]?([^'\"\n]*)['\"]?\s*$", text, flags=re.M))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def summary(code: int, args: list[str]) -> dict:
    artifact = (option(args, "--artifact-uri") or "file:///work") + "/onnx/model.onnx"
    failure = None
    if code == 2:
        failure = {"stage": "load", "reason": "ConfigError", "message": "fake: unknown key 'exprt' in deploy config"}
    elif code == 3:
        failure = {"stage": "verify", "reason": "VerificationFailed", "message": "fake: max abs diff 0.5 > 0.001"}
    elif code != 0:
        failure = {"stage": "export_onnx", "reason": "RuntimeCrash", "message": f"fake: crashed with {code}"}
    leak = os.environ.get(LEAK_ENV or "", "")
    if leak and failure is not None:
        failure["message"] = f"ValueError: {leak}"
    return {
        "v": 1,
        "status": "succeeded" if code == 0 else "failed",
        "project": "calibration",
        "run_id": os.environ.get("MODELDEPLOY_RUN_ID", ""),
        "failure": failure,
        "results_uri": artifact.rsplit("/onnx/", 1)[0] + "/results.json",
        "artifacts": (
            [{"name": "onnx/model.onnx", "kind": "onnx", "uri": artifact, "sha256": "0" * 64}] if code in (0, 3) else []
        )
        + ([{"name": f"leak/{leak}", "kind": "log"}] if leak else []),
        "verification": {
            "passed": code == 0,
            "tolerance": 0.001,
            "max_abs_diff": 1e-05 if code == 0 else 0.5,
            "comparisons": 1,
        }
        if code in (0, 3)
        else None,
        "evaluation": {
            "onnxruntime:cpu": {"precision": "fp32", "metric": "accuracy", "value": 0.9, "p50_ms": 1.5, "p99_ms": 2.5}
        }
        if code == 0
        else {},
        "durations_s": {"load": 0.01, "export_onnx": 0.02, "verify": 0.01, "evaluate": 0.03},
    }


def main(argv: list[str]) -> int:
    args = argv[1:] if argv and argv[0] == "modeldeploy" else argv
    if not args or args[0] != "run" or len(args) < 3:
        print(f"fake-runtime: usage: run DEPLOY_CFG MODEL_CFG ... (got {args})", file=sys.stderr)
        return 2
    d = directives(args[1])
    global LEAK_ENV
    LEAK_ENV = d.get("leak")
    if LEAK_ENV:
        print(
            f"Traceback (most recent call last):\nValueError: {os.environ.get(LEAK_ENV, '')}",
            file=sys.stderr,
            flush=True,
        )
    code = int(d.get("exit", "0"))
    time.sleep(float(d.get("sleep", "0")))
    print(json.dumps({"level": "INFO", "msg": "fake runtime finished", "exit": code}), flush=True)
    if code == 137:
        os.kill(os.getpid(), signal.SIGKILL)
    form = d.get("message", "json")
    term = option(args, "--termination-log") or os.environ.get("MODELDEPLOY_TERMINATION_LOG")
    if term and form == "json":
        with open(term, "w", encoding="utf-8") as f:
            json.dump(summary(code, args), f)
    elif form == "text":
        print("Traceback (most recent call last):\nRuntimeError: fake text failure", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
