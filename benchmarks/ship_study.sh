#!/usr/bin/env bash
# Copy a study's tables (not its model folders) into the package: regnet_explore/analysis/results/<sweep>/{sweep.json,
# results*.jsonl} and quality*.json, what notebook 07 and analysis.shipped read.
#   bash benchmarks/ship_study.sh sweeps/proxy
set -euo pipefail
SRC=${1:?usage: ship_study.sh STUDY_DIR (e.g. sweeps/proxy)}
DST="$(dirname "${BASH_SOURCE[0]}")/../regnet_explore/analysis/results"
for dir in "$SRC"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/sweep.json" ] || continue
  mkdir -p "$DST/$name"
  rm -f "$DST/$name"/results*.jsonl
  cp "$dir/sweep.json" "$dir"/results*.jsonl "$DST/$name/"
done
for quality in "$SRC"/quality*.json; do  # quality.json, and quality-<K>-runs.json of proxy_quality.py --runs K
  if [ -f "$quality" ]; then cp "$quality" "$DST/"; fi
done
du -sh "$DST"
