"""The overlay of the real-node tier: MutatingAdmissionPolicies that stand in for what this
test machine lacks (a pod network, kube-proxy, a GPU), so the chart, the operator, its Jobs
and the examples stay exactly as users get them.

``pod_network_policy`` — pods created in a matching namespace:

* run on the real node with ``hostNetwork: true`` (containerd's CNI is loopback-only; the
  moto S3 server and the API server listen on 127.0.0.1; see node.py);
* get ``KUBERNETES_SERVICE_HOST=127.0.0.1`` / ``KUBERNETES_SERVICE_PORT=<apiserver port>``:
  the kubelet injects the ClusterIP of the ``kubernetes`` Service there, which only
  kube-proxy (absent here) would route, and whose Endpoints may not hold 127.0.0.1 (the test
  apiserver runs with ``--endpoint-reconciler-type=none``). An in-cluster client (the
  operator pod: ServiceAccount token + kube-root-ca.crt, exactly as in any cluster) then
  reaches the API server the way the ClusterIP would have led it;
* a container with a port named ``metrics`` (the operator's) listens on 127.0.0.1
  (``MODELDEPLOY_METRICS_HOST``) and its httpGet probes target 127.0.0.1: in the host's
  network namespace the chart's 0.0.0.0 would open the port on the machine's interfaces.

``cpu_variant_policy`` — ModelDeployments created in a matching namespace run on CPU: the
shipped examples ask for a GPU and TensorRT (``device: cuda``, ``nvidia.com/gpu``, the
``deploy_gpu.py`` config) and this node has none. For the calibration project the deploy
config becomes the CPU one shipped next to it (``builtin:calibration/deploy_demo.py``,
ONNX Runtime on CPU); ``export`` becomes ONNX with precision auto (the opset stays);
``runtime.device`` ``cpu``; ``runtime.resources`` a CPU-sized request without GPUs; GPU
tolerations are dropped. Everything else (names, checkpoint, samples, output bucket,
credentials Secret) is the example's.

Both match namespaces by label (``NODE_LABEL``) or by name (a binding per use), so nothing
outside the tier's namespaces is touched.
"""

from __future__ import annotations

import json
from typing import Any

from tests.cluster.waiting import wait_for

NODE_LABEL = "modeldeploy.io/real-node"
POD_POLICY = "modeldeploy-test-real-node"
CPU_POLICY = "modeldeploy-test-cpu-variant"
CPU_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}}


def _env(name: str, value: str) -> str:
    return f'Object.spec.containers.env{{name: "{name}", value: "{value}"}}'


def _probe(kind: str) -> str:
    """An optional probe field with only httpGet.host set (merged into the container's probe)."""
    t = f"Object.spec.containers.{kind}"
    return (
        f"?{kind}: has(c.{kind}) && has(c.{kind}.httpGet) ? "
        f'optional.of({t}{{httpGet: {t}.httpGet{{host: "127.0.0.1"}}}}) : optional.none()'
    )


def pod_network_policy(node_name: str, apiserver_port: int) -> dict[str, Any]:
    """MutatingAdmissionPolicy for pods (see the module docstring); bind it with ``binding``."""
    apiserver_env = ", ".join(
        [
            _env("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            _env("KUBERNETES_SERVICE_PORT", str(apiserver_port)),
            _env("KUBERNETES_SERVICE_PORT_HTTPS", str(apiserver_port)),
        ]
    )
    has_metrics = 'c.?ports.orValue([]).exists(p, p.?name.orValue("") == "metrics")'
    containers = (
        "object.spec.containers.map(c, Object.spec.containers{name: c.name, "
        f"env: [{apiserver_env}] + ({has_metrics} ? [{_env('MODELDEPLOY_METRICS_HOST', '127.0.0.1')}] : []), "
        f"{_probe('livenessProbe')}, {_probe('readinessProbe')}}})"
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": POD_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "mutations": [
                # JSONPatch: nodeSelector is an atomic map, which ApplyConfiguration may not mutate.
                {
                    "patchType": "JSONPatch",
                    "jsonPatch": {
                        "expression": (
                            '[JSONPatch{op: "add", path: "/spec/hostNetwork", value: true}, '
                            f'JSONPatch{{op: "add", path: "/spec/nodeSelector", value: {{"kubernetes.io/hostname": "{node_name}"}}}}]'
                        )
                    },
                },
                # ApplyConfiguration: containers and env merge by name (the chart's value is replaced).
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {"expression": f"Object{{spec: Object.spec{{containers: {containers}}}}}"},
                },
            ],
        },
    }


def cpu_variant_policy() -> dict[str, Any]:
    """MutatingAdmissionPolicy for ModelDeployments (see the module docstring)."""
    res = json.dumps(CPU_RESOURCES)  # JSON objects are CEL map literals
    ops = [
        'JSONPatch{op: "add", path: "/spec/export/mode", value: "onnx"}',
        'JSONPatch{op: "add", path: "/spec/export/precision", value: "auto"}',
        'JSONPatch{op: "add", path: "/spec/runtime/device", value: "cpu"}',
        f'JSONPatch{{op: "add", path: "/spec/runtime/resources", value: {res}}}',
    ]
    expr = (
        "[" + ", ".join(ops) + "]"
        ' + (object.spec.project == "calibration" ? [JSONPatch{op: "replace", path: "/spec/deployConfig", '
        'value: {"uri": "builtin:calibration/deploy_demo.py"}}] : [])'
        ' + (has(object.spec.runtime.tolerations) ? [JSONPatch{op: "remove", path: "/spec/runtime/tolerations"}] : [])'
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": CPU_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["modeldeploy.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["modeldeployments"],
                    }
                ]
            },
            # The blocks the JSON pointers above go into must exist.
            "matchConditions": [
                {"name": "has-runtime-and-export", "expression": "has(object.spec.runtime) && has(object.spec.export)"}
            ],
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": expr}}],
        },
    }


def binding(policy: str, name: str, *, label: bool = False, namespaces: list[str] | None = None) -> dict[str, Any]:
    """Bind ``policy`` to namespaces labelled ``NODE_LABEL=hostnetwork`` or named in ``namespaces``."""
    if label:
        selector: dict[str, Any] = {"matchLabels": {NODE_LABEL: "hostnetwork"}}
    else:
        selector = {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(namespaces or [])}
            ]
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": policy, "matchResources": {"namespaceSelector": selector}},
    }


def apply_objects(cp: Any, objs: list[dict[str, Any]]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def delete_objects(cp: Any, objs: list[dict[str, Any]]) -> None:
    for o in objs:
        cp.kubectl("delete", o["kind"].lower(), o["metadata"]["name"], "--ignore-not-found", check=False)


def wait_pod_policy_active(cp: Any, node_name: str, namespace: str, timeout: float = 60.0) -> None:
    """Policies load asynchronously: wait until a server-side dry-run pod in ``namespace`` (an
    existing one the binding matches) comes back mutated (hostNetwork, node, apiserver env)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "localhost/none"}]},
    }
    last = ""

    def mutated() -> bool:
        nonlocal last
        proc = cp.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod), check=False)
        last = proc.stdout[-500:] + proc.stderr[-500:]
        if proc.returncode != 0:
            return False
        spec = json.loads(proc.stdout)["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0].get("env", [])}
        return (
            spec.get("hostNetwork") is True
            and spec.get("nodeSelector") == {"kubernetes.io/hostname": node_name}
            and env.get("KUBERNETES_SERVICE_HOST") == "127.0.0.1"
        )

    wait_for(
        mutated, timeout, f"the real-node pod policy to take effect in {namespace}", interval=1, on_timeout=lambda: last
    )


def wait_cpu_policy_active(cp: Any, namespace: str, manifest: str, timeout: float = 60.0) -> None:
    """Wait until a server-side dry-run of ``manifest`` (a ModelDeployment file) in
    ``namespace`` comes back with ``runtime.device: cpu``."""
    last = ""

    def mutated() -> bool:
        nonlocal last
        proc = cp.kubectl("-n", namespace, "apply", "--dry-run=server", "-o", "json", "-f", manifest, check=False)
        last = proc.stdout[-500:] + proc.stderr[-500:]
        return proc.returncode == 0 and json.loads(proc.stdout)["spec"]["runtime"].get("device") == "cpu"

    wait_for(mutated, timeout, f"the CPU overlay to take effect in {namespace}", interval=1, on_timeout=lambda: last)
