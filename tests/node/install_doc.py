"""docs/install.md as a script: its fenced ``sh`` blocks, in order, and the few it cannot run.

A block is run as written (``bash -euo pipefail``, repository root as working directory);
the only inputs are the variables the document itself tells the reader to export
(``AWS_ACCESS_KEY_ID`` ...), plus ``KUBECONFIG`` and ``PATH`` (kubectl, helm). Blocks that
cannot run on a test machine are listed in ``NOT_RUN`` by their exact text, with the
reason; ``check_known`` fails when the document and that list disagree, so an edited block
is either run or reviewed again, never silently dropped.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_MD = REPO / "docs" / "install.md"
# A fence may be indented (inside a list item): its body loses the same indent.
FENCE = re.compile(r"^([ \t]*)```(\w*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)

NOT_RUN: dict[str, str] = {
    "docker build -f images/operator/Dockerfile -t <registry>/modeldeploy/operator:0.1.0 .\n"
    "docker build -f images/runtime/Dockerfile  -t <registry>/modeldeploy/runtime:0.1.0 .\n": (
        "no Docker daemon and no registry here: tests/node/images.py builds the same Dockerfiles "
        "with `buildah bud` (runtime: its cpu-test target; the production target needs NVIDIA's "
        "TensorRT base image) and the test tags the results with the chart's default image names"
    ),
    "kubectl -n ml-team apply -f examples/yolox-deploy.yaml\n"
    "kubectl -n ml-team apply -f examples/centerpoint-deploy.yaml\n"
    "kubectl -n ml-team get mdep -w      # PHASE: Pending → Running → Succeeded (or Failed + reason)\n": (
        "needs the reader's checkpoint, dataset and bucket URIs (the document says so); `get -w` "
        "never ends. The examples are validated as shipped by the example-validation tests"
    ),
    "kubectl -n ml-team create configmap minio-ca --from-file=ca.crt=./minio-ca.crt\n"
    "kubectl -n ml-team apply -f - <<'YAML'\n"
    "apiVersion: v1\n"
    "kind: PersistentVolumeClaim\n"
    "metadata: {name: modeldeploy-cache}\n"
    "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 200Gi}}}\n"
    "YAML\n": (
        "needs the reader's MinIO CA file and a storage class for the 200Gi claim; runtime "
        "volumes and env are covered by tests/cluster (volumes, cache PVC)"
    ),
}


@dataclass(frozen=True)
class Block:
    index: int  # position among the document's sh blocks
    line: int  # line of the opening fence
    text: str


def sh_blocks(path: Path = INSTALL_MD) -> list[Block]:
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        indent, lang, body = m.groups()
        if lang in ("sh", "bash", "shell"):
            body = "".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in body.splitlines(True))
            out.append(Block(len(out), text.count("\n", 0, m.start()) + 1, body))
    return out


def check_known(blocks: list[Block]) -> list[Block]:
    """The blocks to run; raises if a NOT_RUN entry no longer appears in the document."""
    texts = {b.text for b in blocks}
    stale = [t.splitlines()[0] for t in NOT_RUN if t not in texts]
    if stale:
        raise AssertionError(
            f"{INSTALL_MD} changed: these blocks listed in NOT_RUN ({__file__}) are gone or edited: "
            f"{stale}; run the new text or list it again with the reason"
        )
    return [b for b in blocks if b.text not in NOT_RUN]


class BlockFailed(AssertionError):
    pass


def run_block(
    block: Block,
    env: dict[str, str],
    *,
    timeout: float,
    abort: Callable[[], str | None] = lambda: None,
) -> str:
    """Run one block as written; ``abort`` (polled) may end a long wait early with a reason."""
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout
    reason = None
    while proc.poll() is None:
        if time.monotonic() > deadline:
            reason = f"timed out after {timeout:.0f}s"
        else:
            reason = abort()
        if reason:
            proc.kill()
            break
        time.sleep(2)
    out = proc.communicate()[0]
    if reason or proc.returncode != 0:
        raise BlockFailed(
            f"docs/install.md line {block.line} (sh block {block.index}) failed "
            f"({reason or f'exit {proc.returncode}'}):\n{block.text}\n--- output:\n{out[-4000:]}"
        )
    return out
