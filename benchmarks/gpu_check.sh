#!/usr/bin/env bash
# The prepared GPU check: one script, at most 8 minutes on a CUDA machine, everything the CPU machines cannot run.
#   1. the CUDA-marked tests (pytest -m cuda): voxelizers, CPU vs CUDA boxes, fp16 boxes, ONNX on CUDA, AMP step
#   2. the inference benchmark on CUDA, fp32 and fp16 (spconv's CUDA voxelizer when an spconv-cuXXX build is
#      installed, the torch voxelizer otherwise; the output says which)
#   3. the ONNX runtime on onnxruntime's CUDA provider (when onnxruntime-gpu is installed), frames per second
#   4. a few AMP (fp16) training iterations on the synthetic set
#   5. the shipped study's first 48 models a space timed as deployable detectors in fp32 and fp16 (latency table
#      OUT/latency-gpu.jsonl; `regnet-explore latency-report --shipped --table OUT/latency-gpu.jsonl` reads it)
# Without CUDA it says so and exits 0 having run nothing (CPU machines, CI). Logs go to OUT (default gpu_check/).
#   bash benchmarks/gpu_check.sh [--out DIR] [--budget SECONDS] [--python PY] [--dry-run]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=gpu_check
BUDGET=480
PY=${PYTHON:-.venv/bin/python}
DRY=0
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift 2 ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check: --budget $BUDGET: not a whole number of seconds" >&2; exit 2 ;; esac
[ -x "$PY" ] || command -v "$PY" >/dev/null || { echo "gpu_check: python $PY not found (--python)" >&2; exit 2; }

STEPS=(
  "tests|$PY -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py"
  "inference|$PY benchmarks/inference.py --device cuda --configs regnet-400mf-fpn-nus --variants torch:fp32,torch:fp16,onnx:fp32 --repeats 10"
  "train-amp|$PY -m regnet_explore.cli train regnet-400mf-fpn-nus --device cuda --amp fp16 --epochs 1 --max-iters 20 --batch-size 2 --work-dir $OUT/train"
  "latency|$PY -m regnet_explore.cli latency --shipped --device cuda --precision fp32 fp16 --limit 48 --out $OUT/latency-gpu.jsonl"
)

if [ "$DRY" = 1 ]; then
  for step in "${STEPS[@]}"; do echo "${step%%|*}: ${step#*|}"; done
  exit 0
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing run"
  exit 0
fi

mkdir -p "$OUT"
"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
from regnet_explore.detection.voxelize import spconv_runs_on
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
print("voxelizer on CUDA:", "spconv" if spconv_runs_on(torch.device("cuda")) else "torch (no spconv CUDA build)")
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, "providers:", ort.get_available_providers())
except ImportError:
    print("onnxruntime: not installed (the ONNX rows are skipped)")
EOF

start=$SECONDS
status=0
for step in "${STEPS[@]}"; do
  name=${step%%|*}
  left=$((BUDGET - (SECONDS - start)))
  if [ "$left" -le 10 ]; then echo "gpu_check: $name skipped (budget of ${BUDGET}s spent)"; status=1; continue; fi
  echo "== $name (at most ${left}s): ${step#*|}"
  if timeout "$left" bash -c "${step#*|}" > "$OUT/$name.log" 2>&1; then
    tail -n 25 "$OUT/$name.log"
  else
    rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "gpu_check: $name failed (exit $rc; $OUT/$name.log)"
    status=1
  fi
done
echo "gpu_check: done in $((SECONDS - start))s, logs in $OUT/"
exit $status
