"""A fast start: parsing arguments and every --help import no torch; evaluate imports neither
Lightning nor the models; a broken plugin fails in one line, only for commands that need cells."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from stcbench.cell_names import BUILTIN_CELLS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "scipy", "torchmetrics", "matplotlib", "stcbench.cells", "stcbench.models")


def run_python(code: str, tmp_path, env=None, *args):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, *args, "-c", code], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120)


def heavy_modules_after(code: str, tmp_path, env=None) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = run_python(probe, tmp_path, env)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_builtin_cell_names_are_the_registered_cells():
    from stcbench.cells import list_cells

    builtin = [i.name for i in list_cells() if getattr(i.factory, "__module__", "").startswith("stcbench.cells.")]
    assert list(BUILTIN_CELLS) == sorted(builtin), "update stcbench/cell_names.py: BUILTIN_CELLS"


def test_table_formats_match_the_renderer():
    from stcbench.commands.table import FORMATS
    from stcbench.reports.tables import FORMATS as RENDERED

    assert FORMATS == RENDERED


def test_every_help_imports_no_torch(tmp_path):
    code = ("from stcbench.cli import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "action = next(a for a in parser._actions if a.dest == 'command')\n"
            "texts = {name: sub.format_help() for name, sub in action.choices.items()}\n"
            "assert 'stclif' in texts['fit'] and 'stclif' in texts['bench'], 'cell names missing from help'\n"
            "parser.parse_args(['evaluate', '--pred', 'p.npy'])\n")
    assert heavy_modules_after(code, tmp_path) == []


def test_help_and_version_through_the_entry_point_import_no_torch(tmp_path):
    for argv in (["--help"], ["--version"], ["bench", "--help"]):
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "stcbench", *argv], cwd=tmp_path,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
        assert "stcbench.cli" in imported
        assert not {"torch", "lightning", "scipy"} & imported, argv


def test_evaluate_imports_neither_lightning_nor_the_models(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.random((2, 3, 1, 16, 16), dtype=np.float32))
    np.save(tmp_path / "t.npy", rng.random((2, 3, 1, 16, 16), dtype=np.float32))
    code = "from stcbench.cli import main\nassert main(['evaluate', '--pred', 'p.npy', '--true', 't.npy']) == 0"
    loaded = heavy_modules_after(code, tmp_path)
    assert "torch" in loaded                          # the metrics run on torch: the probe sees imports
    assert not {"lightning", "torchmetrics", "stcbench.models", "stcbench.cells"} & set(loaded)


def test_the_data_commands_import_no_lightning(tmp_path):
    """Commands that only make or read data files never pay Lightning's import (seconds on a small machine)."""
    code = ("from stcbench.cli import main\n"
            "assert main(['data', 'info']) == 0\n"
            "assert main(['data', 'generate', '--dataset', 'taxibj', '--data-root', 'd']) == 0\n"
            "assert main(['data', 'check', '--dataset', 'taxibj', '--data-root', 'd']) == 0")
    loaded = heavy_modules_after(code, tmp_path)
    assert "lightning" not in loaded and "stcbench.models" not in loaded


def test_a_broken_plugin_is_one_line_and_only_for_commands_that_need_cells(tmp_path):
    plugin = tmp_path / "broken_cell.py"
    plugin.write_text("import numpy\nraise RuntimeError('the plugin is broken\\nsecond line')\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), STCBENCH_PLUGINS=str(plugin))

    def stcbench(*argv):
        return subprocess.run([sys.executable, "-m", "stcbench", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    out = stcbench("cells")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert str(plugin) in out.stderr and "RuntimeError: the plugin is broken" in out.stderr
    for argv in (["--help"], ["--version"], ["fit", "--help"], ["cells", "--help"]):
        out = stcbench(*argv)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (argv, out.stderr)
    np.save(tmp_path / "p.npy", np.zeros((1, 2, 1, 8, 8), dtype=np.float32))
    out = stcbench("evaluate", "--pred", "p.npy", "--true", "p.npy")
    assert out.returncode == 0, out.stderr


def test_a_plugin_whose_import_fails_names_the_missing_module(tmp_path):
    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}", STCBENCH_PLUGINS="needs_dep")
    out = subprocess.run([sys.executable, "-m", "stcbench", "cells"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'needs_dep'" in out.stderr and "No module named 'no_such_dependency_xyz'" in out.stderr
