#!/usr/bin/env bash
# Create a virtual environment (default .venv, or $STCBENCH_VENV) and install stcbench with
# its pinned CPU dependencies. Usage: bash tools/setup.sh [--test]
# STCBENCH_TORCH_INDEX=URL takes torch from that index (e.g. https://download.pytorch.org/whl/cpu, where
# pip's default index would give the CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${STCBENCH_VENV:-.venv}"
python3 -m venv "$venv"
pip="$venv/bin/pip"
"$pip" install -q --upgrade pip >/dev/null 2>&1 || true
reqs="requirements/cpu.txt"
[ "${1:-}" = "--test" ] && reqs="requirements/test.txt"
# torch first and alone, so nothing later can swap the CPU build for a CUDA one.
torch_pin="$(grep '^torch==' requirements/cpu.txt)"
if [ -n "${STCBENCH_TORCH_INDEX:-}" ]; then
  "$pip" install -q --index-url "$STCBENCH_TORCH_INDEX" "$torch_pin"
else
  "$pip" install -q "$torch_pin"
fi
"$pip" install -q -r "$reqs" -e .
# spikingjelly (optional; its surrogates are compared with ours in the tests). Its metadata asks
# for torchvision/torchaudio, which would replace the CPU torch, so it is installed without deps.
"$pip" install -q --no-deps "spikingjelly==0.0.0.0.14" || echo "spikingjelly not installed (optional)"
"$venv/bin/python" -c "import torch, lightning, stcbench; print('stcbench', stcbench.__version__, '| torch', torch.__version__, '| lightning', lightning.__version__)"
