"""A plugin named only inside a handed file (checkpoint, run folder, config) is not imported by a command: exit 2,
one line; the user consents with STCBENCH_PLUGINS, --set plugins=[...] or --trust-checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import stcbench.cells as cells_package
from stcbench.cli import main
from stcbench.training import runner
from tests.training.helpers import tiny_config


@pytest.fixture(scope="module")
def trained_run(mmnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return runner.fit(tiny_config(mmnist_root, out, epochs=1, run={"test_after_fit": False}))


def plugin_file(folder, marker):
    """A plugin whose import creates `marker` (it registers nothing)."""
    path = folder / "evil_plugin.py"
    path.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    return path


def crafted_checkpoint(run_dir, path, plugins):
    """The run's checkpoint with `plugins` written into its recorded config (plain strings pass a safe load)."""
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["config"]["plugins"] = plugins
    torch.save(checkpoint, path)
    return path


def predict_argv(tmp_path, ckpt):
    frames = tmp_path / "frames.npy"
    np.save(frames, np.zeros((1, 10, 1, 64, 64), np.float32))
    return ["predict", str(ckpt), "--input", str(frames), "--output", str(tmp_path / "out.npy")]


def assert_refused(capsys, code, marker, plugin):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert not marker.exists(), "the plugin named in the file was imported"
    assert len(err) == 1 and "plugin" in err[0] and plugin in err[0] and "STCBENCH_PLUGINS" in err[0], err


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative-to-the-working-folder"])
def test_predict_does_not_import_a_plugin_named_in_a_checkpoint(trained_run, tmp_path, capsys, monkeypatch,
                                                                 relative, isolated_registry):
    marker = tmp_path / "IMPORTED"
    plugin = plugin_file(tmp_path, marker)
    monkeypatch.chdir(tmp_path)
    ckpt = crafted_checkpoint(trained_run, tmp_path / "model.ckpt", [plugin.name if relative else str(plugin)])
    argv = predict_argv(tmp_path, ckpt)
    assert_refused(capsys, main(argv), marker, plugin.name)
    assert not (tmp_path / "out.npy").exists()


def test_a_trusted_checkpoint_or_a_named_plugin_is_imported(trained_run, tmp_path, capsys, monkeypatch,
                                                            isolated_registry):
    marker = tmp_path / "IMPORTED"
    plugin = plugin_file(tmp_path, marker)
    ckpt = crafted_checkpoint(trained_run, tmp_path / "model.ckpt", [str(plugin)])
    assert main(predict_argv(tmp_path, ckpt) + ["--trust-checkpoint"]) == 0
    assert marker.exists()
    marker.unlink()
    cells_package._LOADED_PLUGINS.pop(str(plugin), None)          # as in a new process
    monkeypatch.setenv(cells_package.PLUGIN_ENV, str(plugin))
    assert main(predict_argv(tmp_path, ckpt)) == 0
    assert marker.exists()


def test_test_does_not_import_a_plugin_named_in_a_run_folder(trained_run, tmp_path, capsys, isolated_registry):
    marker = tmp_path / "IMPORTED"
    plugin = plugin_file(tmp_path, marker)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("last.ckpt", "best.ckpt"):
        crafted_checkpoint(trained_run, run / "checkpoints" / name, [str(plugin)])
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    config["plugins"] = [str(plugin)]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert_refused(capsys, main(["test", str(run)]), marker, plugin.name)


def test_fit_imports_a_config_plugin_only_when_named_on_the_command_line(tmp_path, capsys, isolated_registry):
    """A config file's `plugins:` entry is found beside the file; it is imported once the user names it with --set,
    and --print-config shows what the run would record (the absolute path)."""
    marker = tmp_path / "IMPORTED"
    folder = tmp_path / "configs"
    folder.mkdir()
    plugin = plugin_file(folder, marker)
    config = folder / "mine.yaml"
    config.write_text("base: quick/mmnist\nplugins: [evil_plugin.py]\n")      # a shipped config as the base
    assert_refused(capsys, main(["fit", "--config", str(config), "--print-config"]), marker, plugin.name)
    code = main(["fit", "--config", str(config), "--print-config", "--set", f"plugins=[{plugin}]"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert code == 0 and marker.exists()
    assert printed["plugins"] == [str(plugin.resolve())] and printed["data"]["dataset"] == "mmnist"


def test_print_config_loads_the_plugin_cell_named_with_set(tmp_path, capsys, monkeypatch, isolated_registry):
    from pathlib import Path

    template = Path(__file__).resolve().parents[2] / "examples" / "my_cell.py"
    monkeypatch.chdir(template.parent)
    code = main(["fit", "--config", "quick/mmnist", "--cell", "my_lif", "--print-config", "--set",
                 "plugins=[my_cell.py]"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert code == 0, capsys.readouterr().err
    assert printed["plugins"] == [str(template)]


def test_predict_reads_the_context_of_an_npz_archive(trained_run, tmp_path, capsys):
    """A run's predictions.npz holds the test context as `context`: predict reads it as the .npy of the same frames."""
    rng = np.random.default_rng(0)
    context = rng.random((2, 10, 1, 64, 64)).astype(np.float32)
    np.save(tmp_path / "in.npy", context)
    np.savez(tmp_path / "in.npz", context=context, truth=context)
    for name in ("in.npy", "in.npz"):
        assert main(["predict", str(trained_run), "-i", str(tmp_path / name), "-o", str(tmp_path / f"{name}.out.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "in.npy.out.npy"), np.load(tmp_path / "in.npz.out.npy"))


def test_predict_reads_and_writes_a_block_at_a_time(trained_run, tmp_path, monkeypatch, capsys):
    """An .npy input stays on disk (memory-mapped) and is checked a block of sequences at a time; the predictions go
    batch by batch into the memory-mapped output: the same numbers as in memory."""
    from stcbench.training import predict

    monkeypatch.setattr(predict, "BLOCK_BYTES", 1)         # one sequence per block
    rng = np.random.default_rng(1)
    context = rng.random((3, 11, 1, 64, 64)).astype(np.float32)
    context[2, 10] = np.nan                                 # beyond the 10 context frames: not read
    np.save(tmp_path / "in.npy", context)
    module = predict.load_predictor(trained_run)
    frames = predict.read_frames(tmp_path / "in.npy", module.spec)
    assert isinstance(frames, np.memmap) and frames.shape == (3, 10, 1, 64, 64)
    assert main(["predict", str(trained_run), "-i", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"),
                 "--batch-size", "2"]) == 0
    expected = predict.predict_array(module, context[:, :10].copy(), module.spec.out_frames, batch_size=2)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    context[2, 9, 0, 5, 5] = np.inf                        # in the last block's context
    np.save(tmp_path / "in.npy", context)
    assert main(["predict", str(trained_run), "-i", str(tmp_path / "in.npy"), "-o", str(tmp_path / "bad.npy")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "bad.npy").exists()
