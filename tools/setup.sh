#!/usr/bin/env bash
# Create a virtual environment (default .venv, or $STCBENCH_VENV) and install stcbench with
# its pinned CPU dependencies. Usage: bash tools/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${STCBENCH_VENV:-.venv}"
python3 -m venv "$venv"
pip="$venv/bin/pip"
"$pip" install -q --upgrade pip >/dev/null 2>&1 || true
reqs="requirements/cpu.txt"
[ "${1:-}" = "--test" ] && reqs="requirements/test.txt"
# torch first and alone, so nothing later can swap the CPU build for a CUDA one.
"$pip" install -q "$(grep '^torch==' requirements/cpu.txt)"
"$pip" install -q -r "$reqs" -e .
# spikingjelly (optional; its surrogates are compared with ours in the tests). Its metadata asks
# for torchvision/torchaudio, which would replace the CPU torch, so it is installed without deps.
"$pip" install -q --no-deps "spikingjelly==0.0.0.0.14" || echo "spikingjelly not installed (optional)"
"$venv/bin/python" -c "import torch, lightning, stcbench; print('stcbench', stcbench.__version__, '| torch', torch.__version__, '| lightning', lightning.__version__)"
