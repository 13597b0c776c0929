#!/usr/bin/env bash
# The design-space study shipped in regnet_explore/analysis/results/ (docs/sweeps.md, "The study"): first the proxy's
# quality figures (benchmarks/proxy_quality.py: 32 RegNetX models, 4 of them with 3 training seeds, 12 of them at 4x
# the budget, 4 of those with a second training seed), then RegNetX against AnyNetX_A under the --proxy preset, grown
# 16 models at a time per space so that a stopped run leaves two comparable populations, and last the rank fidelity
# against the strict reference (benchmarks/rank_fidelity.py: RegNetX 0-23 at 4x the budget with training seeds 0, 1
# and 2; after the study, as its plan and the plan's amendment fixed). Resumable: run it again and
# it continues where it stopped. RUNS=2 makes it the study of the proxy that averages two runs a model (sweep --runs 2,
# in $OUT/<space>-2-runs; its quality figures from 1-run tables of seeds 0-5, proxy_quality.py --runs 2).
#   OUT=sweeps/proxy WORKERS=2 SAMPLES=224 RUNS=1 bash benchmarks/design_space_study.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-sweeps/proxy}
WORKERS=${WORKERS:-2}
SAMPLES=${SAMPLES:-224}
RUNS=${RUNS:-1}
SUFFIX=$([ "$RUNS" = 1 ] || echo "-$RUNS-runs")
PY=${PYTHON:-.venv/bin/python}
"$PY" benchmarks/proxy_quality.py --out "$OUT" --workers "$WORKERS" --runs "$RUNS"
for n in $(seq 32 16 "$SAMPLES"); do
  if [ "$RUNS" = 1 ]; then  # both spaces as one stream, alternating: each machine trains both in equal numbers
    "$PY" -m regnet_explore.cli sweep anynetxa regnetx --proxy --samples "$n" --workers "$WORKERS" --out "$OUT"
  else
    for space in anynetxa regnetx; do
      "$PY" -m regnet_explore.cli sweep "$space" --proxy --runs "$RUNS" --samples "$n" --workers "$WORKERS" \
        --out "$OUT/$space$SUFFIX"
    done
  fi
done
"$PY" benchmarks/proxy_quality.py --out "$OUT" --report-only --runs "$RUNS"
if [ "$RUNS" = 1 ]; then
  "$PY" benchmarks/rank_fidelity.py --out "$OUT" --workers "$WORKERS"
fi
