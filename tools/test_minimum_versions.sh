#!/usr/bin/env bash
# The test suite with every dependency at the lowest version pyproject.toml admits (tools/minimum-versions.txt),
# in a fresh virtual environment beside the checkout (torch: requirements/cpu.txt's, installed as tools/setup.sh
# does, STCBENCH_TORCH_INDEX included).
#     bash tools/test_minimum_versions.sh [folder for the environment, default .venv-minimum]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-minimum}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
torch_pin="$(grep '^torch==' requirements/cpu.txt)"        # the CPU build, from STCBENCH_TORCH_INDEX as setup.sh
if [ -n "${STCBENCH_TORCH_INDEX:-}" ]; then
  "$venv/bin/pip" install -q --index-url "$STCBENCH_TORCH_INDEX" "$torch_pin"
else
  "$venv/bin/pip" install -q "$torch_pin"
fi
# the test tools without import-linter and ruff (the lint needs no old versions; import-linter wants a newer rich)
"$venv/bin/pip" install -q -c tools/minimum-versions.txt -e ".[wandb]" "pytest>=7" "pytest-xdist>=3" "scikit-image>=0.22" \
    "setuptools>=77"
"$venv/bin/pip" list 2>/dev/null | grep -i -E "^(lightning|torchmetrics|numpy|scipy|numba|wandb|matplotlib|rich) "
"$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider
