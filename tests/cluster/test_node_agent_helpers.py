"""Pure helpers of the test node agent (no cluster needed)."""

from __future__ import annotations

from tests.cluster.node_agent import PathMapper, expand_vars, image_repository


def test_image_repository_strips_tag_digest_and_docker_hub_prefix():
    assert image_repository("ghcr.io/modeldeploy/runtime:0.1.0") == "ghcr.io/modeldeploy/runtime"
    assert image_repository("ghcr.io/modeldeploy/runtime@sha256:abcd") == "ghcr.io/modeldeploy/runtime"
    assert image_repository("ghcr.io/modeldeploy/runtime:1@sha256:abcd") == "ghcr.io/modeldeploy/runtime"
    assert image_repository("localhost:5000/x/y") == "localhost:5000/x/y"
    assert image_repository("localhost:5000/x/y:2") == "localhost:5000/x/y"
    assert image_repository("docker.io/library/busybox:1.36") == "busybox"
    assert image_repository("busybox") == "busybox"


def test_path_mapper_substitutes_at_path_boundaries_only():
    m = PathMapper(
        {"/work": "/tmp/p/work", "/etc/modeldeploy/job": "/tmp/p/job", "/dev/termination-log": "/tmp/p/term"}
    )
    assert m("--work-dir=/work") == "--work-dir=/tmp/p/work"
    assert m("/work/out/x.onnx") == "/tmp/p/work/out/x.onnx"
    assert m("/workspace") == "/workspace"
    assert m("/home/work") == "/home/work"
    assert m("echo done > /dev/termination-log") == "echo done > /tmp/p/term"
    assert m("/etc/modeldeploy/job/spec.json /etc/modeldeploy") == "/tmp/p/job/spec.json /etc/modeldeploy"
    assert m.local("/work/a") == "/tmp/p/work/a" and m.local("/other") is None


def test_path_mapper_is_one_pass():
    # the local path of /work lies under /tmp, itself a mapped path: no double substitution
    m = PathMapper({"/tmp": "/var/agent/tmp", "/work": "/tmp/w"})
    assert m("/work/x /tmp/y") == "/tmp/w/x /var/agent/tmp/y"


def test_expand_vars_like_kubernetes():
    env = {"A": "1", "B": "two"}
    assert expand_vars("$(A)-$(B)-$(C)", env) == "1-two-$(C)"
    assert expand_vars("$$(A) $(cat x)", env) == "$(A) $(cat x)"


def test_image_map_additions_reach_an_agent_in_another_process(tmp_path):
    from tests.cluster.controlplane import write_kubeconfig
    from tests.cluster.fixtures import ExternalNodeAgent
    from tests.cluster.node_agent import NodeAgent

    (tmp_path / "ca.crt").write_text("not a real CA")
    kc = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443", tmp_path / "ca.crt", user="u", token="t")
    agent = NodeAgent(kc, "n", work_dir=tmp_path / "agent")  # not started: no API calls
    assert agent.apiserver_host_port == ("127.0.0.1", 6443)
    assert "fake/runtime" not in agent.current_image_map()
    handle = ExternalNodeAgent("n", str(tmp_path / "agent"))
    handle.image_map["fake/runtime"] = ["/usr/bin/env", "python3"]
    assert agent.current_image_map()["fake/runtime"] == ["/usr/bin/env", "python3"]
    assert agent.current_image_map()["busybox"] == ["/bin/sh"]
