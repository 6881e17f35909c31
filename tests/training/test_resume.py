"""Exact resume: an interrupted deterministic run continued from last.ckpt equals an uninterrupted one."""
import json
import re

import pytest
import torch

from stcbench.training.module import VideoPredictionModule
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config


def weights(run_dir, name="last.ckpt"):
    ckpt = torch.load(run_dir / "checkpoints" / name, weights_only=False)
    return ckpt["state_dict"], ckpt


def test_interrupted_and_resumed_run_equals_uninterrupted(mmnist_root, tmp_path):
    straight = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=3))
    first = fit(tiny_config(mmnist_root, tmp_path / "b", epochs=3, trainer={"stop_after_epochs": 1}))
    assert not (first / "metrics.json").exists()          # unfinished runs leave no results
    _, partial = weights(first)
    assert partial["epoch"] == 0 and partial["stcbench"]["sampling"]["iteration"] == 2
    resumed = fit(tiny_config(mmnist_root, tmp_path / "b", epochs=3), ckpt_path=first / "checkpoints" / "last.ckpt")
    assert resumed == first
    a, ckpt_a = weights(straight)
    b, ckpt_b = weights(resumed)
    assert ckpt_a["stcbench"]["sampling"] == ckpt_b["stcbench"]["sampling"] == {"iteration": 6}
    assert torch.equal(ckpt_a["stcbench"]["mask_generator"], ckpt_b["stcbench"]["mask_generator"])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ma = json.loads((straight / "metrics.json").read_text())
    mb = json.loads((resumed / "metrics.json").read_text())
    assert ma["test"] == mb["test"] and ma["last"]["test"] == mb["last"]["test"]
    assert ma["val"]["mse_per_pixel"] == mb["val"]["mse_per_pixel"]


def test_scheduled_sampling_state_round_trips(mmnist_root, tmp_path):
    config = tiny_config(mmnist_root, tmp_path, sampling={"rate": 0.05})
    frames = torch.zeros(4, 20, 1, 64, 64)
    module = VideoPredictionModule(config)
    for _ in range(5):
        module.scheduled_mask(frames)
        module.sampling.step()
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    expected = []
    for _ in range(3):
        expected.append(module.scheduled_mask(frames))
        module.sampling.step()
    restored = VideoPredictionModule(config)
    restored.on_load_checkpoint(checkpoint)
    assert restored.sampling.iteration == 5
    assert restored.sampling.eta() == pytest.approx(1 - 0.05 * 6)     # eta(k) = 1 - rate (k + 1)
    for mask in expected:
        assert torch.equal(restored.scheduled_mask(frames), mask)
        restored.sampling.step()


def test_scheduled_mask_shape_and_eta(mmnist_root, tmp_path):
    module = VideoPredictionModule(tiny_config(mmnist_root, tmp_path, sampling={"rate": 0.5}))
    frames = torch.zeros(64, 20, 1, 64, 64)
    first = module.scheduled_mask(frames)            # eta = 0.5
    assert first.shape == (64, 9) and set(first.unique().tolist()) <= {0.0, 1.0}
    assert 0.2 < first.mean() < 0.8
    module.sampling.step()
    assert module.scheduled_mask(frames).sum() == 0  # eta = 1 - 0.5 * 2 = 0
    off = VideoPredictionModule(tiny_config(mmnist_root, tmp_path, sampling={"enabled": False}))
    assert off.scheduled_mask(frames).sum() == 0


def test_resume_with_optimizer_state_of_other_parameter_groups_is_a_clear_error(mmnist_root, tmp_path):
    from stcbench.errors import ConfigError

    first = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"stop_after_epochs": 1}))
    last = first / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    (group,) = ckpt["optimizer_states"][0]["param_groups"]            # as if written with two groups
    ckpt["optimizer_states"][0]["param_groups"] = [dict(group, params=group["params"][:1]),
                                                   dict(group, params=group["params"][1:])]
    torch.save(ckpt, last)
    with pytest.raises(ConfigError, match="cannot be resumed"):
        fit(tiny_config(mmnist_root, tmp_path, epochs=2), ckpt_path=last)


def test_resume_with_another_cell_names_the_difference(mmnist_root, tmp_path):
    from stcbench.errors import ConfigError

    first = fit(tiny_config(mmnist_root, tmp_path, cell="stclif", epochs=2, trainer={"stop_after_epochs": 1}))
    with pytest.raises(ConfigError, match=r"model\.cell 'stclif' in the checkpoint, 'lif' here"):
        fit(tiny_config(mmnist_root, tmp_path, cell="lif", epochs=2), ckpt_path=first / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("change, named", [({"seed": 7}, "seed=3 there, 7 here"),
                                           ({"optim": {"lr": 0.5}}, "optim.lr="),
                                           ({"data": {"train_samples": 6}}, "data.train_samples=4 there, 6 here"),
                                           ({"run": {"name": "other"}}, "--run-name other names another run")])
def test_resume_refuses_another_setting_and_leaves_the_run_as_it_was(mmnist_root, tmp_path, change, named):
    """A resume continues the checkpoint's run: another seed, optimiser, data or run name would relabel or mix it."""
    from stcbench.errors import ConfigError

    first = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"stop_after_epochs": 1}))
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=re.escape(named)):
        fit(tiny_config(mmnist_root, tmp_path, epochs=2, **change), ckpt_path=first / "checkpoints" / "last.ckpt")
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_resume_may_extend_training_and_change_the_hardware(mmnist_root, tmp_path):
    first = fit(tiny_config(mmnist_root, tmp_path, epochs=1))
    again = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"threads": 1}, logging={"loggers": []},
                            model={"fast": True}),
                ckpt_path=first / "checkpoints" / "last.ckpt")
    assert again == first and json.loads((first / "metrics.json").read_text())["epochs"] == 2


def test_resume_only_from_the_last_checkpoint_and_never_shorter(mmnist_root, tmp_path):
    """best.ckpt of a run is not a place to resume from (the epochs after it would be overwritten), and a resume
    may extend its run's schedule, not shorten it."""
    from stcbench.errors import ConfigError

    first = fit(tiny_config(mmnist_root, tmp_path, epochs=3, trainer={"stop_after_epochs": 2}))
    (first / "checkpoints" / "best.ckpt").write_bytes((first / "checkpoints" / "last.ckpt").read_bytes())
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="not its run's last checkpoint"):
        fit(tiny_config(mmnist_root, tmp_path, epochs=4), ckpt_path=first / "checkpoints" / "best.ckpt")
    with pytest.raises(ConfigError, match="may extend a run, not shorten it"):
        fit(tiny_config(mmnist_root, tmp_path, epochs=2), ckpt_path=first)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_a_resume_keeps_its_runs_scale_label(mmnist_root, tmp_path):
    first = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"stop_after_epochs": 1},
                            run={"scale": "custom"}))
    fit(tiny_config(mmnist_root, tmp_path, epochs=2, run={"scale": "quick"}), ckpt_path=first)
    assert json.loads((first / "metrics.json").read_text())["scale"] == "custom"


def test_last_checkpoint_is_written_every_epoch_when_validation_stops_improving(mmnist_root, tmp_path, monkeypatch):
    """best.ckpt is the epoch of the lowest val/mse; last.ckpt the final epoch, improving or not."""
    from stcbench.training import module as module_lib

    def worsening(self):                            # val/mse 1, 2, 3: the first epoch stays the best
        self.log("val/mse", torch.tensor(float(self.current_epoch + 1)), sync_dist=False)
        self.val_mse.reset()

    monkeypatch.setattr(module_lib.VideoPredictionModule, "on_validation_epoch_end", worsening)
    run_dir = fit(tiny_config(mmnist_root, tmp_path, epochs=3))
    load = lambda name: torch.load(run_dir / "checkpoints" / name, weights_only=False)   # noqa: E731
    assert load("best.ckpt")["epoch"] == 0
    assert load("last.ckpt")["epoch"] == 2 and load("last.ckpt")["global_step"] == 3 * load("best.ckpt")["global_step"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selected_epoch"] == 1 and metrics["last"]["epoch"] == 3


def test_sigterm_ends_the_run_with_exit_status_143_and_a_resume_hint(mmnist_root, tmp_path, monkeypatch, capsys):
    """Lightning stops on SIGTERM with a bare SystemExit (status 0); a job script must see the run did not finish."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    from stcbench.engine import trainer as callbacks_lib

    class SignalAtFirstBatch(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:                    # in the second epoch (2 steps an epoch)
                os.kill(os.getpid(), signal.SIGTERM)        # Lightning's own handler takes it

    real = callbacks_lib.checkpoint_callbacks
    monkeypatch.setattr(callbacks_lib, "checkpoint_callbacks", lambda *a, **k: real(*a, **k) + [SignalAtFirstBatch()])
    config = tiny_config(mmnist_root, tmp_path, epochs=3)
    with pytest.raises(SystemExit) as stopped:
        fit(config)
    assert stopped.value.code == 143
    run_dir = tmp_path / "mmnist" / "lif" / "t"
    assert f"stopped by SIGTERM before the run finished; resume with `stcbench fit --ckpt-path {run_dir}`" \
        in capsys.readouterr().err
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    assert not (run_dir / "metrics.json").exists()


def test_ctrl_c_ends_the_run_with_exit_status_130_and_a_resume_hint(mmnist_root, tmp_path, monkeypatch, capsys):
    """Lightning ends a run on Ctrl-C with exit status 1 and no word on what to do; stcbench says how to resume."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    from stcbench.engine import trainer as callbacks_lib

    class InterruptInSecondEpoch(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)         # Python raises KeyboardInterrupt; Lightning takes it

    real = callbacks_lib.checkpoint_callbacks
    monkeypatch.setattr(callbacks_lib, "checkpoint_callbacks",
                        lambda *a, **k: real(*a, **k) + [InterruptInSecondEpoch()])
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # Python's Ctrl-C, whatever an earlier test left behind
    try:
        with pytest.raises(SystemExit) as stopped:
            fit(tiny_config(mmnist_root, tmp_path, epochs=3))
    finally:
        signal.signal(signal.SIGINT, handler)               # Lightning leaves Ctrl-C ignored after its shutdown
    assert stopped.value.code == 130
    run_dir = tmp_path / "mmnist" / "lif" / "t"
    assert f"stopped by Ctrl-C before the run finished; resume with `stcbench fit --ckpt-path {run_dir}`" \
        in capsys.readouterr().err
    assert not (run_dir / "metrics.json").exists()


def test_a_run_records_its_plugin_code_and_a_resume_with_other_code_is_refused(mmnist_root, tmp_path,
                                                                               isolated_registry, capsys):
    """An edited neuron is other code under the same name and options: a resume would train the run on with it."""
    import hashlib
    import shutil
    from pathlib import Path

    from stcbench.errors import ConfigError

    plugin = tmp_path / "my_cell.py"
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "my_cell.py", plugin)
    config = tiny_config(mmnist_root, tmp_path, cell="my_lif", epochs=2, trainer={"stop_after_epochs": 1},
                         plugins=[str(plugin)])
    first = fit(config)
    # the command it prints to go on names the plugin, without which a resume refuses to import it; quoted, it
    # pastes into any shell (zsh reads an unquoted [...] as a pattern)
    import shlex

    command = re.search(r"resume with `([^`]*)`", capsys.readouterr().out).group(1)
    assert shlex.split(command) == ["stcbench", "fit", "--ckpt-path", str(first), "--set", f"plugins=[{plugin}]"]
    recorded = json.loads((first / "plugin_code.json").read_text())
    assert recorded == {"my_cell.py": hashlib.sha256(plugin.read_bytes()).hexdigest()}
    plugin.write_text(plugin.read_text() + "\n# the neuron, edited\n")
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"plugin file my_cell.py defining cell my_lif has changed since the run .* "
                                          r"a resume would train it on with other code"):
        fit(tiny_config(mmnist_root, tmp_path, cell="my_lif", epochs=2, plugins=[str(plugin)]), ckpt_path=first)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
    # a test of it runs, but says that the numbers are the new code's and records it
    from stcbench.training.runner import test

    tested = test(None, first)
    assert tested["code_differs_from_training"] == ["my_cell.py"]
    assert "has changed since the run was trained" in capsys.readouterr().err


def test_a_cell_option_given_on_one_side_only_is_a_difference():
    """Keyword arguments (cell options) count when one side leaves them to the cell's default; a config field that
    one side lacks (another version's) does not."""
    from stcbench.engine.resume import UNSET, differences

    stored = {"model": {"cell_options": {}, "fast": False}, "data": {"options": {"a": 1}}}
    given = {"model": {"cell_options": {"tau_m": 3.0}}, "data": {"options": {}}, "new_field": 1}
    assert differences(stored, given) == [("data.options.a", 1, UNSET), ("model.cell_options.tau_m", UNSET, 3.0)]


def test_a_copied_run_folder_resumes_under_its_own_name(mmnist_root, tmp_path, capsys):
    """A run folder copied (or renamed) next to the original goes on in the copy; --run-name of yet another run is
    still refused."""
    import shutil

    from stcbench.errors import ConfigError

    first = fit(tiny_config(mmnist_root, tmp_path, epochs=2, trainer={"stop_after_epochs": 1}))
    copy = first.with_name("t-copy")
    shutil.copytree(first, copy)
    with pytest.raises(ConfigError, match="--run-name other names another run"):
        fit(tiny_config(mmnist_root, tmp_path, epochs=2, run={"name": "other"}), ckpt_path=copy)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dirpath has changed.*")      # the best score would be lost
        assert fit(tiny_config(mmnist_root, tmp_path, epochs=2), ckpt_path=copy) == copy
    assert "was made as run t (its config.yaml names it so) and goes on under its folder's name, t-copy" in \
        capsys.readouterr().err
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    assert not (first / "metrics.json").exists()
    saved = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["hyper_parameters"]["config"]["run"]["name"] == "t-copy"      # recorded under its new name
    state = saved["callbacks"]
    assert all(key.startswith("ModelCheckpoint{") for key in state if "Checkpoint" in key)   # Lightning's keys
    best = next(v for v in state.values() if isinstance(v, dict) and v.get("monitor"))
    assert best["best_model_path"].startswith(str(copy)) and best["best_model_score"] is not None


def test_a_checkpoint_copied_out_of_a_run_never_takes_over_an_existing_run(mmnist_root, tmp_path):
    """A loose checkpoint starts a run folder of its own: one that exists (another run) is refused without
    --overwrite and left as it was; a new name trains on from the checkpoint."""
    import shutil

    from stcbench.errors import ConfigError

    other = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=1, name="A"))
    source = fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="E", trainer={"stop_after_epochs": 1}))
    loose = tmp_path / "loose.ckpt"
    shutil.copy(source / "checkpoints" / "last.ckpt", loose)
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="already exists"):
        fit(tiny_config(mmnist_root, tmp_path / "a", epochs=2, name="A"), ckpt_path=loose)
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    fresh = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=2, name="F"), ckpt_path=loose)
    assert json.loads((fresh / "metrics.json").read_text())["epochs"] == 2


def test_a_run_folder_whose_checkpoints_are_a_link_is_not_resumed(mmnist_root, tmp_path):
    """A run folder whose checkpoints/ is a link to another run's: a resume would write that run's checkpoints."""
    import shutil

    from stcbench.errors import ConfigError

    real = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=2, name="A", trainer={"stop_after_epochs": 1}))
    copy = tmp_path / "b" / "mmnist" / "lif" / "A"
    shutil.copytree(real, copy)
    shutil.rmtree(copy / "checkpoints")
    (copy / "checkpoints").symlink_to(real / "checkpoints")
    before = {p: p.read_bytes() for p in (real / "checkpoints").iterdir()}
    with pytest.raises(ConfigError, match="is a symbolic link"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"), ckpt_path=copy)
    assert {p: p.read_bytes() for p in (real / "checkpoints").iterdir()} == before


def test_a_run_folder_with_a_link_deeper_inside_is_not_resumed(mmnist_root, tmp_path):
    """A link anywhere in the run folder (here its CSV log folder, linked to another run's) is refused too: a
    resume would write its new log version there."""
    import shutil

    from stcbench.errors import ConfigError

    real = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=2, name="A", trainer={"stop_after_epochs": 1}))
    copy = tmp_path / "b" / "mmnist" / "lif" / "A"
    shutil.copytree(real, copy)
    shutil.rmtree(copy / "logs" / "csv")
    (copy / "logs" / "csv").symlink_to(real / "logs" / "csv")
    before = sorted(p.relative_to(real) for p in real.rglob("*"))
    with pytest.raises(ConfigError, match=r"logs/csv is a symbolic link"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"), ckpt_path=copy)
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == before


def test_a_lock_file_that_is_a_link_is_never_written_through(mmnist_root, tmp_path):
    """A `.lock` linked to a file elsewhere (or to the run's own config, symbolically or as a hard link): neither a
    refusal nor a resume writes the process id into that file."""
    import os
    import shutil

    from stcbench.errors import ConfigError

    real = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=2, name="A", trainer={"stop_after_epochs": 1}))
    copy = tmp_path / "b" / "mmnist" / "lif" / "A"
    shutil.copytree(real, copy)
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    (copy / ".lock").symlink_to(victim)
    with pytest.raises(ConfigError, match=r"\.lock is not a lock file stcbench wrote \(a link\)"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"))                 # refused: it exists
    with pytest.raises(ConfigError, match=r"is a symbolic link|is not a lock file"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"), ckpt_path=copy)   # a resume
    assert victim.read_text() == "precious"
    config = (copy / "config.yaml").read_bytes()
    (copy / ".lock").unlink()
    (copy / ".lock").symlink_to("config.yaml")              # a link within the run: the resume reaches the lock
    with pytest.raises(ConfigError, match=r"\.lock is not a lock file stcbench wrote \(a link\)"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"), ckpt_path=copy)
    (copy / ".lock").unlink()
    os.link(copy / "config.yaml", copy / ".lock")           # a hard link: another name of the run's config
    with pytest.raises(ConfigError, match=r"a hard link"):
        fit(tiny_config(mmnist_root, tmp_path / "b", epochs=2, name="A"), ckpt_path=copy)
    assert (copy / "config.yaml").read_bytes() == config


def test_sigterm_as_training_ends_is_not_taken_for_a_finished_run(mmnist_root, tmp_path, monkeypatch, capsys):
    """A SIGTERM that arrives after the last batch (Lightning then ends fit without a word) stops the run before its
    tests with 143 and the command that finishes them; the command does."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    from stcbench.engine import trainer as callbacks_lib

    class SignalAtTheEnd(Callback):
        def on_train_end(self, trainer, *args):
            os.kill(os.getpid(), signal.SIGTERM)            # Lightning's own handler takes it

    real = callbacks_lib.checkpoint_callbacks
    monkeypatch.setattr(callbacks_lib, "checkpoint_callbacks", lambda *a, **k: real(*a, **k) + [SignalAtTheEnd()])
    with pytest.raises(SystemExit) as stopped:
        fit(tiny_config(mmnist_root, tmp_path, epochs=1))
    assert stopped.value.code == 143
    run_dir = tmp_path / "mmnist" / "lif" / "t"
    assert "before the tests, so metrics.json was not written" in capsys.readouterr().err
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.setattr(callbacks_lib, "checkpoint_callbacks", real)
    fit(tiny_config(mmnist_root, tmp_path, epochs=1), ckpt_path=run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1
