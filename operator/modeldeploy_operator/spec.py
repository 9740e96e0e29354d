"""Pure functions over a ModelDeployment spec: hash, child names, runtime arguments.

The operator never executes a user's config file (mmengine configs are Python code): it
only decides *where* the runtime finds each config and which ``--cfg-options``
overrides it passes. Nothing here talks to the API server.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .constants import CONTAINER_NAME, JOB_CONFIG_MOUNT, TERMINATION_LOG, USER_CONFIG_MOUNT

HASH_LEN = 8
MAX_CHILD_NAME = 63  # Job names end up in the pod label `job-name`, limited to 63 chars.

# Keys that may appear on the left of `--cfg-options key=value`. The operator only ever
# renders keys from this table, so a spec value can never smuggle another option in.
_CFG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal specs give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Full sha256 of the spec as stored by the API server (CRD defaults included).

    Operator-side defaults (e.g. the runtime image from the environment) are *not*
    hashed: upgrading the operator must not re-run every finished deployment.
    """
    return hashlib.sha256(canonical_json(dict(spec)).encode()).hexdigest()


def child_name(name: str, hash_: str) -> str:
    """`<name>-<hash8>`, with the name shortened so the result is a valid 63-char label."""
    suffix = hash_[:HASH_LEN]
    room = MAX_CHILD_NAME - len(suffix) - 1
    base = name[:room].rstrip("-.")
    return f"{base}-{suffix}"


def run_id(namespace: str, name: str, generation: int, hash_: str) -> str:
    """`<namespace>/<name>/g<generation>/<hash8>`: which deployment generation a Job/ConfigMap
    belongs to (annotation modeldeploy.io/run-id). Not the runtime's run id: that is the
    pod's name (env MODELDEPLOY_RUN_ID), one per attempt, so retries never share a prefix."""
    return f"{namespace}/{name}/g{generation}/{hash_[:HASH_LEN]}"


def effective_device(spec: Mapping[str, Any]) -> str:
    """`runtime.device` if given, else cuda when a TensorRT engine is requested, else cpu."""
    device = (spec.get("runtime") or {}).get("device")
    if device:
        return str(device)
    mode = (spec.get("export") or {}).get("mode")
    return "cuda" if mode in ("trt", "both") else "cpu"


def _render_value(value: Any) -> str:
    """A value as both mmengine's DictAction and json.loads read it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    return canonical_json(value)


def render_profiles(profiles: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """spec.export.profiles → the runtime's `backend_config.model_inputs` (one per component)."""
    by_component: dict[Any, dict[str, Any]] = {}
    for p in profiles:
        comp = p.get("component")
        entry = by_component.setdefault(comp, {"component": comp, "input_shapes": {}})
        entry["input_shapes"][p["input"]] = {
            "min_shape": list(p["min"]),
            "opt_shape": list(p["opt"]),
            "max_shape": list(p["max"]),
        }
    return list(by_component.values())


def cfg_options(spec: Mapping[str, Any]) -> list[str]:
    """Render spec.export / verification / evaluation / dataset as `key=value` overrides.

    Only fields the user set are rendered: the deploy config file stays the base and the
    spec overrides it. Each item becomes its own argv element (no shell is involved).
    """
    pairs: list[tuple[str, Any]] = []
    export = spec.get("export") or {}
    if "mode" in export:
        pairs.append(("export.mode", export["mode"]))
    if "precision" in export:
        pairs.append(("backend_config.common_config.precision_policy", export["precision"]))
    if "opset" in export:
        pairs.append(("onnx_config.opset_version", int(export["opset"])))
    if "workspaceMiB" in export:
        pairs.append(("backend_config.common_config.max_workspace_size", int(export["workspaceMiB"]) * (1 << 20)))
    if export.get("profiles"):
        pairs.append(("backend_config.model_inputs", render_profiles(export["profiles"])))
    ver = spec.get("verification") or {}
    if "enabled" in ver:
        pairs.append(("verification.enabled", bool(ver["enabled"])))
    if "tolerance" in ver:
        pairs.append(("verification.tolerance", float(ver["tolerance"])))
    if "numSamples" in ver:
        pairs.append(("verification.num_verify_samples", int(ver["numSamples"])))
    vgate = ver.get("gate") or {}
    if "maxMeanAbsDiff" in vgate:
        pairs.append(("verification.gate.max_mean_abs_diff", float(vgate["maxMeanAbsDiff"])))
    ev = spec.get("evaluation") or {}
    if "enabled" in ev:
        pairs.append(("evaluation.enabled", bool(ev["enabled"])))
    if "numSamples" in ev:
        pairs.append(("evaluation.num_samples", int(ev["numSamples"])))
    pairs += _gate_pairs(ev.get("gate") or {})
    ds = spec.get("dataset") or {}
    if ds.get("uri"):
        pairs.append(("runtime_io.data_root", ds["uri"]))
    if ds.get("infoFile"):
        pairs.append(("runtime_io.info_file", ds["infoFile"]))
    out = []
    for key, value in pairs:
        if not _CFG_KEY_RE.match(key):  # pragma: no cover - the table above is static
            raise ValueError(f"refusing to render cfg-option key {key!r}")
        out.append(f"{key}={_render_value(value)}")
    return out


# spec.evaluation.gate field → runtime key (evaluation.gate.*, config/sections.py EvaluationGate)
EVALUATION_GATE_KEYS = {
    "reference": "reference",
    "maxMetricDrop": "max_metric_drop",
    "maxLatencyMs": "max_latency_ms",
    "maxCV": "max_cv",
}
BASELINE_GATE_KEYS = {"maxMetricDrop": "max_metric_drop", "maxLatencyRatio": "max_latency_ratio"}


def _gate_pairs(gate: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """spec.evaluation.gate → `evaluation.gate.*` overrides. Numbers go out as floats (the
    CRD bounds them and policy.check_gates re-checks them); the reference is a backend name."""
    pairs: list[tuple[str, Any]] = []
    for field, key in EVALUATION_GATE_KEYS.items():
        if field in gate:
            value = str(gate[field]) if field == "reference" else float(gate[field])
            pairs.append((f"evaluation.gate.{key}", value))
    for field, key in BASELINE_GATE_KEYS.items():
        if field in (gate.get("baseline") or {}):
            pairs.append((f"evaluation.gate.baseline.{key}", float(gate["baseline"][field])))
    return pairs


# What the operator accepts as a baseline location recorded in status.lastSucceeded: the
# results.json a succeeded run published (s3://, file:// or an absolute path, no whitespace).
_BASELINE_RE = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+|file:///\S+|/\S+)/results\.json$")


def baseline_uri(spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> str | None:
    """The `--baseline` of a new Job: the results.json of the last succeeded generation
    (status.lastSucceeded.resultsUri) when spec.evaluation.gate.baseline asks for it.

    None when the spec wants no baseline, or there is none yet (a first generation, or the
    previous one never succeeded): the runtime's baseline gate then passes and logs why.
    Only a location the operator itself recorded, of the recorded shape, is passed; the Job
    reads it with the tenant's own credentials, the operator never reads it.
    """
    gate = ((spec.get("evaluation") or {}).get("gate") or {}).get("baseline")
    if not gate or gate.get("from", "lastSucceeded") != "lastSucceeded":
        return None
    uri = ((status or {}).get("lastSucceeded") or {}).get("resultsUri")
    if isinstance(uri, str) and len(uri) <= 4096 and _BASELINE_RE.match(uri) and ".." not in uri.split("/"):
        return uri
    return None


CONFIG_FILES = {"deployConfig": "deploy_config.py", "modelConfig": "model_config.py"}


def config_location(spec: Mapping[str, Any], field: str) -> str:
    """Where the runtime reads `spec.<field>`: a URI as is, or a path in a mounted ConfigMap."""
    src = spec[field]
    fname = CONFIG_FILES[field]
    if "uri" in src:
        return str(src["uri"])
    if "inline" in src:
        return f"{JOB_CONFIG_MOUNT}/{fname}"
    if "configMapKeyRef" in src:
        return f"{USER_CONFIG_MOUNT}/{field}/{fname}"
    raise ValueError(f"spec.{field} needs exactly one of uri, configMapKeyRef, inline")


def artifact_uri(
    spec: Mapping[str, Any],
    hash_: str,
    namespace: str | None = None,
    name: str | None = None,
    generation: int | None = None,
) -> str | None:
    """`<output.uri>/<namespace>/<name>/g<generation>`: the deployment generation's own prefix.

    Never shared by two CRs (namespace and name are part of it, so identical specs in two
    namespaces cannot interleave writes) nor by two generations; each run (pod) writes
    under `<prefix>/runs/<run id>/` and only a verified run moves `<prefix>/current.json`
    (docs/contracts.md §5). Without namespace/name (old callers) the legacy
    `<output.uri>/<hash8>` is returned.
    """
    prefix = (spec.get("output") or {}).get("uri")
    if not prefix:
        return None
    if namespace is None or name is None:
        return f"{str(prefix).rstrip('/')}/{hash_[:HASH_LEN]}"
    return f"{str(prefix).rstrip('/')}/{namespace}/{name}/g{int(generation or 1)}"


def runtime_args(
    spec: Mapping[str, Any],
    hash_: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    generation: int | None = None,
    baseline: str | None = None,
) -> list[str]:
    """argv after `modeldeploy` (docs/contracts.md §1 and §4); `baseline`: see baseline_uri."""
    args = ["run", config_location(spec, "deployConfig"), config_location(spec, "modelConfig")]
    ckpt = (spec.get("checkpoint") or {}).get("uri")
    if ckpt:
        args.append(str(ckpt))
    args += ["--work-dir", "/work", "--device", effective_device(spec)]
    uri = artifact_uri(spec, hash_, namespace, name, generation)
    if uri:
        args += ["--artifact-uri", uri]
    if baseline:
        args += ["--baseline", baseline]
    opts = cfg_options(spec)
    if opts:
        args += ["--cfg-options", *opts]
    # the one channel for the summary's path (no env var as well); the Job's terminationMessagePath is the same
    args += ["--termination-log", TERMINATION_LOG, "--log-format", "json"]
    return args


def command_line(args: list[str]) -> str:
    """Shell-quoted command for humans (spec.json, logs); `shlex.split` gives args back."""
    return shlex.join(["modeldeploy", *args])


def rendered_spec(
    namespace: str,
    name: str,
    generation: int,
    spec: Mapping[str, Any],
    hash_: str,
    baseline: str | None = None,
) -> dict[str, Any]:
    """The document stored as spec.json in the Job's ConfigMap (for audit and debugging)."""
    args = runtime_args(spec, hash_, namespace=namespace, name=name, generation=generation, baseline=baseline)
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "namespace": namespace,
        "name": name,
        "generation": generation,
        "specHash": hash_,
        "runId": run_id(namespace, name, generation, hash_),
        "artifactUri": artifact_uri(spec, hash_, namespace, name, generation),
        "container": CONTAINER_NAME,
        "args": args,
        "commandLine": command_line(args),
        "spec": dict(spec),
    }
