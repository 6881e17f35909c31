#!/usr/bin/env bash
# The test suite with every dependency at the lowest version pyproject.toml admits (tools/minimum-versions.txt),
# in a fresh virtual environment beside the checkout (torch: the CPU wheel of the machine's pip, as tools/setup.sh).
#     bash tools/test_minimum_versions.sh [folder for the environment, default .venv-minimum]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-minimum}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "torch==2.13.0"
# the test tools without import-linter and ruff (the lint needs no old versions; import-linter wants a newer rich)
"$venv/bin/pip" install -q -c tools/minimum-versions.txt -e ".[wandb]" "pytest>=7" "pytest-xdist>=3" "scikit-image>=0.22" \
    "setuptools>=77"
"$venv/bin/pip" list 2>/dev/null | grep -i -E "^(lightning|torchmetrics|numpy|scipy|numba|wandb|matplotlib|rich) "
"$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider
