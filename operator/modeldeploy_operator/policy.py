"""Tenant policy: what a ModelDeployment may ask for (pure functions, no API calls).

The API server enforces these rules first, with the chart's ValidatingAdmissionPolicy
(charts/modeldeploy-operator/templates/tenant-policy.yaml, CEL). The operator checks the
same rules again before it creates anything, because
* the admission policy can be switched off, bound to a subset of namespaces, or set to
  Warn/Audit only, and a CR may predate the policy;
* one rule needs another object: the credentials Secret must carry the opt-in label, and
  a ValidatingAdmissionPolicy cannot read arbitrary objects — only the operator can.

Both read the same values (chart ``policy:`` → env ``MODELDEPLOY_POLICY`` as JSON), and
each violation names its rule with the same identifier the admission messages use.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"

# Rule identifiers: the admission policy's messages start with "policy <rule>:" too.
RULE_IMAGE = "image-allow-list"
RULE_SERVICE_ACCOUNT = "service-account-allow-list"
RULE_SECRET_OPT_IN = "credentials-secret-opt-in"
RULE_WILDCARD_TOLERATION = "no-wildcard-toleration"
RULE_CONTROL_PLANE = "no-control-plane-scheduling"
RULE_GPU = "gpu-maximum"
RULE_CPU = "cpu-maximum"
RULE_MEMORY = "memory-maximum"
RULE_VOLUME_TYPE = "volume-type-allow-list"
RULE_RESERVED_ENV = "reserved-env-names"
RULE_RESERVED_MOUNT = "reserved-mount-paths"
RULE_PROJECT = "project-allow-list"
RULE_GATE = "gate-limits"

# spec.project: any registered project name (built-in or external, docs/adding-a-project.md);
# the same pattern as the CRD's. A cluster may narrow it with policy allowedProjects.
PROJECT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Bounds of the gate limits, the same as the CRD's (tests/unit/operator/test_gate_spec.py
# compares them): (minimum, minimum is exclusive, maximum). All finite.
GATE_BOUNDS: dict[str, tuple[float, bool, float]] = {
    "verification.gate.maxMeanAbsDiff": (0.0, True, 1000.0),
    "evaluation.gate.maxMetricDrop": (0.0, False, 1e6),
    "evaluation.gate.maxLatencyMs": (0.0, True, 86_400_000.0),
    "evaluation.gate.maxCV": (0.0, True, 100.0),
    "evaluation.gate.baseline.maxMetricDrop": (0.0, False, 1e6),
    "evaluation.gate.baseline.maxLatencyRatio": (0.0, True, 1000.0),
}
BACKEND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

# Volume sources spec.runtime.volumes may use at all (the CRD admits only these; no
# hostPath, no CSI inline, no projected service-account tokens). The policy may narrow it.
VOLUME_TYPES = ("persistentVolumeClaim", "configMap", "secret", "emptyDir")
# Variables the operator sets itself (jobs.py): a spec.runtime.env entry must not shadow
# them (credentials come only from credentialsSecretRef; MODELDEPLOY_* steer the runtime).
RESERVED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "HOME",
    "XDG_CACHE_HOME",
    "PYTHONUNBUFFERED",
)
ALLOWED_MODELDEPLOY_ENV = ("MODELDEPLOY_CACHE",)
# The operator's own mounts (/work, the job/user config under /etc/modeldeploy, /tmp,
# the termination log under /dev): user volumes may not replace or shadow them.
RESERVED_MOUNT_EXACT = ("/", "/tmp", "/work", "/etc", "/dev")
RESERVED_MOUNT_PREFIXES = ("/work/", "/etc/modeldeploy", "/dev/")
RESERVED_VOLUME_NAMES = ("job-config", "work", "tmp")

DEFAULT_FORBIDDEN_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


class PolicyError(ValueError):
    """MODELDEPLOY_POLICY is malformed: the operator refuses to start with a clear line."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """The tenant rules. ``None``/empty for a limit means "no limit" (operator run outside
    the chart without MODELDEPLOY_POLICY: only the Secret scrubbing protects then)."""

    image_prefixes: tuple[str, ...] = ()  # empty: any image
    service_accounts: tuple[str, ...] | None = None  # None: any; (): none may be named
    secret_opt_in_label: str = ""  # "": no opt-in needed; else label that must be "true"
    allow_wildcard_toleration: bool = True
    forbidden_scheduling_keys: tuple[str, ...] = ()
    max_gpus: int | None = None
    max_cpu: str | None = None
    max_memory: str | None = None
    volume_types: tuple[str, ...] | None = None  # None: every type in VOLUME_TYPES
    projects: tuple[str, ...] | None = None  # None: any project the runtime image knows

    @property
    def enabled(self) -> bool:
        return self != Policy()


@dataclasses.dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"policy {self.rule}: {self.message}"


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (int or '500m', '16Gi', '1e3') as a Decimal, via the official client."""
    from kubernetes.utils.quantity import parse_quantity as _pq

    return _pq(value)


def from_json(text: str) -> Policy:
    """Policy from the chart's JSON (env MODELDEPLOY_POLICY); '' → no policy.

    Keys (all optional): imagePrefixes [str], serviceAccounts [str] (absent: any),
    secretOptInLabel str, allowWildcardToleration bool, forbiddenSchedulingKeys [str],
    maxGpus int, maxCpu quantity, maxMemory quantity, allowedVolumeTypes [str] (absent:
    every type of VOLUME_TYPES), allowedProjects [str] (absent or empty: any project).
    """
    if not text.strip():
        return Policy()
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"MODELDEPLOY_POLICY is not JSON ({exc}); render it from the chart's policy values") from None
    if not isinstance(doc, dict):
        raise PolicyError("MODELDEPLOY_POLICY must be a JSON object")
    known = {
        "imagePrefixes",
        "serviceAccounts",
        "secretOptInLabel",
        "allowWildcardToleration",
        "forbiddenSchedulingKeys",
        "maxGpus",
        "maxCpu",
        "maxMemory",
        "allowedVolumeTypes",
        "allowedProjects",
    }
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PolicyError(f"MODELDEPLOY_POLICY has unknown keys {unknown}; known: {sorted(known)}")

    def strings(key: str) -> tuple[str, ...]:
        v = doc.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise PolicyError(f"MODELDEPLOY_POLICY.{key} must be a list of non-empty strings, got {v!r}")
        return tuple(v)

    def quantity(key: str) -> str | None:
        v = doc.get(key)
        if v in (None, ""):
            return None
        try:
            parse_quantity(v)
        except ValueError:
            raise PolicyError(f"MODELDEPLOY_POLICY.{key} must be a Kubernetes quantity, got {v!r}") from None
        return str(v)

    max_gpus = doc.get("maxGpus")
    if max_gpus is not None and (isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or max_gpus < 0):
        raise PolicyError(f"MODELDEPLOY_POLICY.maxGpus must be an integer >= 0, got {max_gpus!r}")
    volume_types = strings("allowedVolumeTypes") if "allowedVolumeTypes" in doc else None
    if volume_types is not None and not set(volume_types) <= set(VOLUME_TYPES):
        raise PolicyError(
            f"MODELDEPLOY_POLICY.allowedVolumeTypes may only name {list(VOLUME_TYPES)}, "
            f"got {sorted(set(volume_types) - set(VOLUME_TYPES))}"
        )
    projects = strings("allowedProjects") or None  # the chart renders [] for "any"
    bad_projects = [p for p in projects or () if not PROJECT_PATTERN.match(p)]
    if bad_projects:
        raise PolicyError(
            f"MODELDEPLOY_POLICY.allowedProjects must hold project names ({PROJECT_PATTERN.pattern}), "
            f"got {bad_projects}"
        )
    label = doc.get("secretOptInLabel") or ""
    if not isinstance(label, str):
        raise PolicyError("MODELDEPLOY_POLICY.secretOptInLabel must be a string")
    return Policy(
        image_prefixes=strings("imagePrefixes"),
        service_accounts=strings("serviceAccounts") if "serviceAccounts" in doc else None,
        secret_opt_in_label=label,
        allow_wildcard_toleration=bool(doc.get("allowWildcardToleration", True)),
        forbidden_scheduling_keys=strings("forbiddenSchedulingKeys"),
        max_gpus=max_gpus,
        max_cpu=quantity("maxCpu"),
        max_memory=quantity("maxMemory"),
        volume_types=volume_types,
        projects=projects,
    )


def _over(value: Any, maximum: str | int) -> bool:
    try:
        return parse_quantity(value) > parse_quantity(maximum)
    except ValueError:
        return True  # the CRD's pattern refuses non-quantities; anything odd is refused here too


def check(spec: Mapping[str, Any], policy: Policy) -> list[Violation]:
    """Every rule `spec` breaks (empty: allowed). The Secret rule is `check_secret`'s job.

    An unset spec.runtime.image is always allowed: the Job then gets the operator's own
    default image, which an admin chose.
    """
    rt = spec.get("runtime") or {}
    out: list[Violation] = []
    image = rt.get("image")
    if image and policy.image_prefixes and not any(str(image).startswith(p) for p in policy.image_prefixes):
        out.append(
            Violation(RULE_IMAGE, f"image {image!r} is not allowed; allowed prefixes: {list(policy.image_prefixes)}")
        )
    sa = rt.get("serviceAccountName")
    if sa and policy.service_accounts is not None and sa not in policy.service_accounts:
        allowed = list(policy.service_accounts) or "none (leave runtime.serviceAccountName unset)"
        out.append(Violation(RULE_SERVICE_ACCOUNT, f"serviceAccountName {sa!r} is not allowed; allowed: {allowed}"))
    tolerations = [t for t in rt.get("tolerations") or [] if isinstance(t, Mapping)]
    if not policy.allow_wildcard_toleration and any(not t.get("key") for t in tolerations):
        out.append(
            Violation(RULE_WILDCARD_TOLERATION, "a toleration without a key tolerates every taint; name the taint key")
        )
    forbidden = set(policy.forbidden_scheduling_keys)
    bad = sorted(
        {str(t.get("key")) for t in tolerations if t.get("key") in forbidden}
        | {k for k in (rt.get("nodeSelector") or {}) if k in forbidden}
    )
    if bad:
        out.append(Violation(RULE_CONTROL_PLANE, f"tolerations/nodeSelector may not use {bad} (control-plane nodes)"))
    resources = rt.get("resources") or {}
    for kind in ("limits", "requests"):
        amounts = resources.get(kind) or {}
        for rname, maximum, rule in (
            (GPU_RESOURCE, policy.max_gpus, RULE_GPU),
            ("cpu", policy.max_cpu, RULE_CPU),
            ("memory", policy.max_memory, RULE_MEMORY),
        ):
            if maximum is not None and rname in amounts and _over(amounts[rname], maximum):
                out.append(Violation(rule, f"resources.{kind}.{rname}={amounts[rname]} exceeds the maximum {maximum}"))
    out += check_volumes_and_env(rt, policy)
    out += check_project(spec, policy)
    out += check_gates(spec)
    return out


def check_project(spec: Mapping[str, Any], policy: Policy) -> list[Violation]:
    """spec.project: a project name (the CRD's pattern), and one of policy.projects when the
    cluster narrows them (e.g. only the projects its runtime image ships)."""
    project = str(spec.get("project") or "")
    if not PROJECT_PATTERN.match(project):
        return [Violation(RULE_PROJECT, f"project {project!r} is not a project name ({PROJECT_PATTERN.pattern})")]
    if policy.projects is not None and project not in policy.projects:
        return [Violation(RULE_PROJECT, f"project {project!r} is not allowed here; allowed: {list(policy.projects)}")]
    return []


def _gate_values(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The gate limits a spec sets, keyed like GATE_BOUNDS."""
    ver = (spec.get("verification") or {}).get("gate") or {}
    ev = (spec.get("evaluation") or {}).get("gate") or {}
    base = ev.get("baseline") or {}
    out: dict[str, Any] = {}
    for prefix, src in (("verification.gate.", ver), ("evaluation.gate.", ev), ("evaluation.gate.baseline.", base)):
        for key in GATE_BOUNDS:
            field = key[len(prefix) :]
            if key.startswith(prefix) and "." not in field and field in src:
                out[key] = src[field]
    return out


def check_gates(spec: Mapping[str, Any]) -> list[Violation]:
    """spec.verification.gate / spec.evaluation.gate: finite numbers within the CRD's bounds,
    a backend name as reference, and a baseline with at least one limit. The CRD refuses the
    same; re-checked here because the operator renders them into the Job's --cfg-options."""
    out: list[Violation] = []
    for key, value in _gate_values(spec).items():
        lo, exclusive, hi = GATE_BOUNDS[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > hi or value < lo or (exclusive and value == lo):
            bound = f"{'>' if exclusive else '>='} {lo:g} and <= {hi:g}"
            out.append(Violation(RULE_GATE, f"spec.{key} must be a number {bound}, got {value!r}"))
    ev = (spec.get("evaluation") or {}).get("gate") or {}
    ref = ev.get("reference")
    if ref is not None and not (isinstance(ref, str) and BACKEND_PATTERN.match(ref)):
        out.append(Violation(RULE_GATE, f"spec.evaluation.gate.reference must be a backend name, got {ref!r}"))
    base = ev.get("baseline")
    if base is not None:
        if not isinstance(base, Mapping) or not ({"maxMetricDrop", "maxLatencyRatio"} & set(base)):
            out.append(
                Violation(
                    RULE_GATE,
                    "spec.evaluation.gate.baseline needs a limit: maxMetricDrop and/or maxLatencyRatio",
                )
            )
        elif base.get("from", "lastSucceeded") != "lastSucceeded":
            out.append(
                Violation(
                    RULE_GATE, f"spec.evaluation.gate.baseline.from must be lastSucceeded, got {base.get('from')!r}"
                )
            )
    return out


def _reserved_env(name: str) -> bool:
    return name in RESERVED_ENV or (name.startswith("MODELDEPLOY_") and name not in ALLOWED_MODELDEPLOY_ENV)


def _reserved_mount(path: str) -> bool:
    clean = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    return (
        clean in RESERVED_MOUNT_EXACT
        or any(clean.startswith(p) for p in RESERVED_MOUNT_PREFIXES)
        or ".." in path.split("/")
    )


def check_volumes_and_env(rt: Mapping[str, Any], policy: Policy) -> list[Violation]:
    """spec.runtime.volumes/volumeMounts/env. The reserved names and paths hold with or
    without a configured policy (the CRD refuses them too): they protect the operator's own
    mounts and variables, not a tenant limit. Secrets they reference: `referenced_secrets`."""
    out: list[Violation] = []
    allowed = policy.volume_types if policy.volume_types is not None else VOLUME_TYPES
    names = set()
    for vol in [v for v in rt.get("volumes") or [] if isinstance(v, Mapping)]:
        name = str(vol.get("name", ""))
        names.add(name)
        kinds = sorted(k for k in vol if k != "name")
        bad = [k for k in kinds if k not in allowed]
        if bad or len(kinds) != 1:
            out.append(
                Violation(
                    RULE_VOLUME_TYPE,
                    f"volume {name!r} uses {kinds or 'no source'}; each volume needs exactly one "
                    f"of {list(allowed)} (no hostPath)",
                )
            )
        if name in RESERVED_VOLUME_NAMES or name.startswith("user-"):
            out.append(
                Violation(RULE_RESERVED_MOUNT, f"volume name {name!r} is the operator's own; choose another name")
            )
    for m in [m for m in rt.get("volumeMounts") or [] if isinstance(m, Mapping)]:
        path = str(m.get("mountPath", ""))
        if not path.startswith("/") or _reserved_mount(path):
            out.append(
                Violation(
                    RULE_RESERVED_MOUNT,
                    f"mountPath {path!r} is not allowed: not /, /tmp, /etc or under /work, "
                    "/etc/modeldeploy, /dev (the operator's own mounts); use e.g. /data",
                )
            )
        if ".." in str(m.get("subPath", "")).split("/"):
            out.append(Violation(RULE_RESERVED_MOUNT, f"subPath {m.get('subPath')!r} may not contain '..'"))
        if m.get("name") not in names:
            out.append(
                Violation(RULE_RESERVED_MOUNT, f"volumeMount {m.get('name')!r} names no entry of runtime.volumes")
            )
    reserved = sorted(
        {
            str(e.get("name"))
            for e in rt.get("env") or []
            if isinstance(e, Mapping) and _reserved_env(str(e.get("name")))
        }
    )
    if reserved:
        out.append(
            Violation(
                RULE_RESERVED_ENV,
                f"runtime.env may not set {reserved}: the operator sets them (credentials come "
                "from credentialsSecretRef; of MODELDEPLOY_* only MODELDEPLOY_CACHE may be set)",
            )
        )
    return out


def referenced_secrets(spec: Mapping[str, Any]) -> list[str]:
    """Every Secret the Job would read: the credentials Secret, secret volumes and
    secretKeyRef env. Each needs the opt-in label (`check_secret`): a tenant may not point a
    Job at a Secret of its namespace that its owners did not open to ModelDeployments."""
    rt = spec.get("runtime") or {}
    names = [(spec.get("credentialsSecretRef") or {}).get("name")]
    names += [(v.get("secret") or {}).get("secretName") for v in rt.get("volumes") or [] if isinstance(v, Mapping)]
    names += [
        ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
        for e in rt.get("env") or []
        if isinstance(e, Mapping)
    ]
    return list(dict.fromkeys(str(n) for n in names if n))


def check_secret(secret_name: str, secret: Mapping[str, Any] | None, policy: Policy) -> Violation | None:
    """The credentials Secret rule: it must exist in the CR's namespace and carry
    `<secretOptInLabel>: "true"` (its owners opted in to use by ModelDeployments)."""
    if not policy.secret_opt_in_label:
        return None
    if secret is None:
        return Violation(
            RULE_SECRET_OPT_IN,
            f"Secret {secret_name!r} does not exist in this namespace; create it "
            f"and label it {policy.secret_opt_in_label}=true",
        )
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(policy.secret_opt_in_label) != "true":
        return Violation(
            RULE_SECRET_OPT_IN,
            f"Secret {secret_name!r} is not opted in for ModelDeployments: its owners must label it "
            f"{policy.secret_opt_in_label}=true",
        )
    return None
