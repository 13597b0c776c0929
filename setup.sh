#!/usr/bin/env bash
# Set up everything and run the main job:
#   OS packages open3d needs (when root with apt-get), a virtual environment in .venv, CPU torch, this package with
#   all extras at versions known to work together, then `regnet-explore demo`.
# Environment knobs: PYTHON (interpreter for the venv, default python3), TORCH_SPEC (default torch==2.13.0, the CPU
# wheel; GPU users install their CUDA build of torch into .venv first and set TORCH_SPEC=skip), SKIP_DEMO=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
OS_PACKAGES="libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers chromium"

step() { printf '\n== %s\n' "$*"; }

step "OS packages (open3d rendering; chromium for plotly image export and the browser test): $OS_PACKAGES"
missing=$(for p in $OS_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done || true)
if [ -z "$missing" ]; then
  echo "all present"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  echo "installed: $missing"
else
  echo "warning: cannot install OS packages (needs root and apt-get). open3d views need: $missing" >&2
  echo "         everything else works without them." >&2
fi

step "virtual environment .venv"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)

if [ "$TORCH_SPEC" != skip ]; then
  step "$TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC"
fi

step "regnet_explore with all extras (pins in constraints.txt)"
"${PIP[@]}" -c constraints.txt -e ".[all]"
# Installed without dependencies on purpose: lyft-dataset-sdk would add a second OpenCV and test tools, pycls (a test
# reference) would add opencv-python; everything both import is already present.
"${PIP[@]}" --no-deps lyft-dataset-sdk==0.0.8 pycls==0.1.1
# dash (pulled in by open3d-cpu, unused here) drops a source lab extension that makes every JupyterLab page load ask
# for a rebuild ("Build Recommended"); without it the prebuilt extensions are complete.
rm -f .venv/share/jupyter/lab/extensions/dash-jupyterlab.tgz
# The Jupyter server extension that serves plotly's widget module once (regnet_explore/lab.py). A wheel install puts
# this file in place itself; pip's editable install skips a package's data files.
mkdir -p .venv/etc/jupyter/jupyter_server_config.d
cp jupyter-config/jupyter_server_config.d/regnet_explore.json .venv/etc/jupyter/jupyter_server_config.d/
# JupyterLab's settings defaults for this environment (no news prompt, no update check); the same data-file caveat
mkdir -p .venv/share/jupyter/lab/settings
cp jupyter-config/lab/settings/overrides.json .venv/share/jupyter/lab/settings/

if [ "${SKIP_DEMO:-0}" != 1 ]; then
  step "main job: regnet-explore demo"
  .venv/bin/regnet-explore demo
fi
