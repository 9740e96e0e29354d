#!/usr/bin/env bash
# One GPU session: stage the offline wheel batches, install them into /tmp/site, run the
# gpu-marked tests and the latency benchmark, and leave logs/tables under $OUT.
#
# The GPU machine cannot download anything and each transfer is capped at 64 MiB, so the
# wheels (built here with ../shared/tools/offline-wheels into wheels/, git-ignored) travel
# one batch per call, back to back (the machine keeps /tmp only while it stays warm):
#
#   stage DIR...          copy wheel batch dir(s) into /tmp/wheel-stage (fast)
#   run [DIR...]          stage DIR..., install when complete, then tests + benchmark
#                         (GPU_SESSION_PARTS="tests bench" picks parts; default both)
#
# Example (device calls, carry the named batch dirs):
#   bash scripts/gpu_session.sh stage wheels/batch-1 wheels/batch-7   # carry both
#   bash scripts/gpu_session.sh stage wheels/batch-2                  # ... 3, 4, 5
#   bash scripts/gpu_session.sh run wheels/batch-6
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE=${GPU_SESSION_STAGE:-/tmp/wheel-stage}
SITE=${GPU_SESSION_SITE:-/tmp/site}  # install.sh always targets /tmp/site
OUT=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT" "$STAGE"
mode=${1:-run}; shift || true

stage() {
  for d in "$@"; do
    [ -d "$d" ] || { echo "gpu_session: batch dir $d is not here (did the call carry it?)" >&2; exit 2; }
    cp "$d"/* "$STAGE"/
    echo "staged $d: $(ls "$d" | tr '\n' ' ')"
  done
  echo "stage now holds: $(ls "$STAGE" | wc -l) files, $(du -sm "$STAGE" | cut -f1) MiB"
}

install_wheels() {
  if [ -f "$SITE/.modeldeploy-installed" ]; then echo "wheels already installed in $SITE"; return 0; fi
  [ -f "$STAGE/install.sh" ] || { echo "gpu_session: install.sh not staged yet: send the batch holding it (wheels/batch-7)" >&2; return 2; }
  missing=""
  while read -r _sum name; do
    [ -f "$STAGE/$name" ] && continue
    ls "$STAGE/$name".part-* >/dev/null 2>&1 || { missing="$missing $name"; continue; }
  done < "$STAGE/SHA256SUMS"
  # split wheels: every part must be there (count parts from the batch layout is not known here; sha256 checks it)
  if [ -n "$missing" ]; then echo "gpu_session: not staged yet:$missing — resend the missing batches" >&2; return 2; fi
  bash "$STAGE/install.sh" || { echo "gpu_session: install.sh failed (a part missing or corrupt? staged: $(ls "$STAGE" | tr '\n' ' '))" >&2; return 2; }
  touch "$SITE/.modeldeploy-installed"
}

case "$mode" in
  stage) stage "$@"; exit 0 ;;
  run) [ $# -gt 0 ] && stage "$@" ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac

install_wheels 2>&1 | tee "$OUT/install.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

# onnxruntime-gpu in /tmp/site shadows the preinstalled CPU onnxruntime; our code from the tree.
export PYTHONPATH="$SITE:$REPO/runtime:$REPO:${PYTHONPATH:-}"
# CUDA 13 / cuDNN libraries from torch's nvidia-* wheels, for onnxruntime-gpu's CUDA provider.
NV_LIBS=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.update(glob.glob(os.path.join(sp, "nvidia", "*", "lib")) + glob.glob(os.path.join(sp, "nvidia", "*", "*", "lib")))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MODELDEPLOY_CACHE=/tmp/modeldeploy-cache
cd "$REPO"

{
  echo "# environment $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  python3 - <<'PY'
import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
import onnxruntime as ort, onnx
print("onnxruntime", ort.__version__, "from", ort.__file__, "providers", ort.get_available_providers())
print("onnx", onnx.__version__)
from modeldeploy.tensorrt_api import tensorrt_available
print("tensorrt", tensorrt_available())
# Does the CUDA EP really run (a session silently falls back to CPU when libraries are missing)?
import numpy as np, onnx.helper as h
g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [h.make_tensor_value_info("x", 1, [2])], [h.make_tensor_value_info("y", 1, [2])])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
s = ort.InferenceSession(m.SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
print("ort session providers", s.get_providers(), s.run(None, {"x": np.array([-1, 2], np.float32)})[0])
PY
  python3 -m pip list 2>/dev/null | grep -iE "^(torch|onnx|onnxruntime|numpy|mmengine|pydantic|scikit-learn|scipy|pytest) " || true
} 2>&1 | tee "$OUT/environment.txt"

parts=${GPU_SESSION_PARTS:-tests bench}
rc=0
if [[ " $parts " == *" tests "* ]]; then
  timeout 330 python3 -m pytest -m gpu tests/gpu -v -rs -s -p no:cacheprovider --junitxml="$OUT/pytest_gpu.xml" 2>&1 | tee "$OUT/pytest_gpu.log"
  t=${PIPESTATUS[0]}; echo "gpu tests exit code: $t"; [ "$t" -eq 0 ] || rc=$t
fi
if [[ " $parts " == *" bench "* ]]; then
  timeout 200 python3 benchmarks/gpu_latency.py --out "$OUT/bench" --iters "${BENCH_ITERS:-100}" --warmup 10 --batch 8 2>&1 | tee "$OUT/bench.log"
  b=${PIPESTATUS[0]}; echo "benchmark exit code: $b"; [ "$b" -eq 0 ] || rc=$b
fi
echo "gpu_session: done, exit $rc; outputs in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $rc
