"""A run of a plugin cell records the plugin, so that the run folder works without the environment."""
from pathlib import Path

import yaml

import stcbench.cells as cells_package
from stcbench.cells import registry
from stcbench.training import runner
from tests.training.helpers import tiny_config

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "my_cell.py"


def test_plugins_from_the_environment_are_recorded_with_the_run(mmnist_root, tmp_path, monkeypatch,
                                                                 isolated_registry):
    monkeypatch.setenv(cells_package.PLUGIN_ENV, str(TEMPLATE))
    cells_package.load_plugins([str(TEMPLATE)])           # what importing stcbench.cells does with the variable
    run_dir = runner.fit(tiny_config(mmnist_root, tmp_path, cell="mylif", epochs=1, run={"test_after_fit": False}))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["plugins"] == [str(TEMPLATE)]
    monkeypatch.delenv(cells_package.PLUGIN_ENV)
    isolated_registry()                                    # a new process: the plugin is not loaded
    assert "mylif" not in registry._REGISTRY
    assert runner.test(None, run_dir)["test"]["n_sequences"] == 3      # the recorded plugin is loaded again
