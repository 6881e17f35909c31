"""Runs cannot write outside --output-dir, destroy or mix with each other, and SIGTERM in any phase
exits 143 with a hint how to finish."""
from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from stcbench.cli import main
from stcbench.errors import ConfigError
from stcbench.engine.run_folder import create_run_dir
from tests.training.helpers import tiny_config


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_config(tmp_path: Path, data_root: Path, **sections) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data_root, tmp_path / "runs", epochs=1, **sections)))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("name", ["../../../x", "a/b", "..", ".hidden", "", " ", "a\\b"])
def test_run_names_are_single_folder_names(mmnist_root, tmp_path, capsys, name):
    config = write_config(tmp_path, mmnist_root)
    assert main(["fit", "--config", str(config), "--run-name", name]) == 2
    assert "run.name" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_memory_run_names_are_single_folder_names(tmp_path, capsys):
    assert main(["fit", "--config", "memory/adding", "--output-dir", str(tmp_path), "--run-name", "../x"]) == 2
    assert "run.name" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_fit_over_an_existing_run_is_refused_and_overwrite_replaces_it(mmnist_root, tmp_path, capsys):
    config = write_config(tmp_path, mmnist_root)
    old = tmp_path / "runs" / "mmnist" / "lif" / "t"
    (old / "checkpoints").mkdir(parents=True)
    (old / "metrics.json").write_text('{"test": {"mse": 1.0}}')
    (old / "checkpoints" / "best.ckpt").write_bytes(b"old weights")
    before = tree_hashes(old)
    assert main(["fit", "--config", str(config)]) == 2
    line = one_error_line(capsys)
    assert "already exists" in line and "--overwrite" in line and "--ckpt-path" in line
    assert tree_hashes(old) == before

    assert main(["fit", "--config", str(config), "--overwrite"]) == 0
    assert "test" in json.loads((old / "metrics.json").read_text())
    assert (old / "checkpoints" / "best.ckpt").read_bytes() != b"old weights"


def test_a_run_another_process_trains_is_neither_resumed_nor_overwritten(mmnist_root, tmp_path, capsys):
    from stcbench.engine.run_folder import training_lock

    config = write_config(tmp_path, mmnist_root)
    assert main(["fit", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "mmnist" / "lif" / "t"
    assert not (run / ".lock").exists()                          # released when the run ended
    before = tree_hashes(run)
    with training_lock(run):                                   # as a second process training it would hold
        assert "process" in (run / ".lock").read_text()
        for extra in (["--ckpt-path", str(run), "--max-epochs", "2"], ["--overwrite"]):
            assert main(["fit", "--config", str(config), *extra]) == 2
            line = one_error_line(capsys)
            assert f"run {run} is being trained by process {os.getpid()}" in line and "--ckpt-path" in line
            assert {k: v for k, v in tree_hashes(run).items() if k != ".lock"} == before
    assert not (run / ".lock").exists()
    assert main(["fit", "--config", str(config), "--ckpt-path", str(run), "--max-epochs", "2"]) == 0


def test_a_file_system_without_locks_warns_and_trains_unlocked(tmp_path, monkeypatch):
    import errno

    from stcbench.engine import run_folder

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_folder.fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot be locked on this file system"):
        with run_folder.training_lock(tmp_path):
            (tmp_path / "trained").write_text("yes")
    assert (tmp_path / "trained").read_text() == "yes"


def test_run_folders_are_created_exclusively(tmp_path):
    base = tmp_path / "runs" / "mmnist" / "lif" / "20260101-000000-seed1"
    first, created = create_run_dir(base, default_name=True, overwrite=False)
    second, created_second = create_run_dir(base, default_name=True, overwrite=False)
    assert first == base and second == base.with_name(base.name + "-2")
    assert created == (tmp_path / "runs").resolve() and created_second == second.resolve()
    (first / "mine").write_text("kept")
    with pytest.raises(ConfigError, match="already exists"):
        create_run_dir(first, default_name=False, overwrite=False)   # another run took the chosen name
    assert (first / "mine").read_text() == "kept"


def test_overwrite_that_loses_a_race_says_so(tmp_path, monkeypatch):
    """--overwrite removes the old folder; when another process recreates it before this one can, the error
    names the race instead of suggesting --overwrite."""
    from stcbench.engine import run_folder

    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "mine"
    run_dir.mkdir(parents=True)
    removed = run_folder.remove_run_dir

    def removed_then_recreated(path):
        removed(path)
        path.mkdir()
        (path / "config.yaml").write_text("the other run")

    monkeypatch.setattr(run_folder, "remove_run_dir", removed_then_recreated)
    with pytest.raises(ConfigError, match="created again by another process") as error:
        create_run_dir(run_dir, default_name=False, overwrite=True)
    assert "--overwrite" not in str(error.value)
    assert (run_dir / "config.yaml").read_text() == "the other run"


def test_default_run_names_of_the_same_second_do_not_collide(mmnist_root, tmp_path, monkeypatch):
    """Two runs started in the same second with default names get separate folders (the second one's
    folder is taken between its name check and its creation, as a concurrent run would)."""
    from stcbench.engine.run_folder import planned_run_dir
    from stcbench.training.config import resolve_config
    from stcbench.training.task import VideoTask

    config = resolve_config(tiny_config(mmnist_root, tmp_path, name=None))
    task = VideoTask()
    planned = planned_run_dir(task.run_base(config), task.run_name(config), config.seed)
    planned.mkdir(parents=True)
    (planned / "config.yaml").write_text("other run")
    made, _ = create_run_dir(planned, default_name=True, overwrite=False)
    assert made != planned and (planned / "config.yaml").read_text() == "other run"


def sigterm_at_first_test_batch(monkeypatch):
    from stcbench.training.module import VideoPredictionModule

    def on_test_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)           # Lightning's handler takes it

    monkeypatch.setattr(VideoPredictionModule, "on_test_batch_end", on_test_batch_end, raising=False)


def test_sigterm_while_testing_exits_143_and_says_how_to_finish(mmnist_root, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, mmnist_root)
    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "t"
    with monkeypatch.context() as patch:
        sigterm_at_first_test_batch(patch)
        with pytest.raises(SystemExit) as stopped:
            main(["fit", "--config", str(config)])
        assert stopped.value.code == 143
        assert f"finish the tests with `stcbench fit --ckpt-path {run_dir}`" in capsys.readouterr().err
        assert not (run_dir / "metrics.json").exists()

        with pytest.raises(SystemExit) as stopped:
            main(["test", "--ckpt-path", str(run_dir)])
        assert stopped.value.code == 143
        assert "stopped by SIGTERM before the test finished" in capsys.readouterr().err

    assert main(["fit", "--ckpt-path", str(run_dir)]) == 0          # the hint works
    assert "test" in json.loads((run_dir / "metrics.json").read_text())


def act_in_hook(monkeypatch, owner, hook: str, action):
    """Run `action` once, in the first call of `owner`'s `hook` (`on_train_epoch_start`: of the second epoch);
    the hook itself runs as before."""
    original = getattr(owner, hook, None)
    done = []

    def wrapped(self, *args, **kwargs):
        if not done and (hook != "on_train_epoch_start" or self.trainer.current_epoch == 1):
            done.append(True)
            action()
        if original is not None:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, hook, wrapped, raising=False)


@pytest.mark.parametrize("hook", ["data setup", "on_train_epoch_start", "on_test_start"],
                         ids=["while setting up the data", "in the second epoch", "while testing"])
@pytest.mark.parametrize("replaced", [False, True], ids=["removed", "replaced"])
def test_a_run_folder_removed_or_replaced_while_training_is_left_alone(mmnist_root, tmp_path, monkeypatch, capsys,
                                                                       replaced, hook):
    """A user's `rm -r` of the run folder (or another process that put its own run there) stops the run with
    one line; nothing is written into the path again and another run's files are not touched."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(mmnist_root, tmp_path / "runs", epochs=2)))
    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "t"
    other_run = {"config.yaml": "another run", ".lock": "process 1 on elsewhere", "logs/csv/hparams.yaml": "{}"}

    def remove_or_replace():
        os.replace(run_dir, tmp_path / "aside")
        if replaced:
            for name, text in other_run.items():
                (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
                (run_dir / name).write_text(text)

    from stcbench.training.datamodule import EvalExactDataModule
    from stcbench.training.module import VideoPredictionModule

    if hook == "data setup":
        act_in_hook(monkeypatch, EvalExactDataModule, "setup", remove_or_replace)
    else:
        act_in_hook(monkeypatch, VideoPredictionModule, hook, remove_or_replace)
    assert main(["fit", "--config", str(config)]) == 2
    line = one_error_line(capsys)
    assert f"run folder {run_dir} was removed or replaced while this process trained it" in line
    if replaced:
        assert tree_hashes(run_dir) == {name: hashlib.sha256(text.encode()).hexdigest()
                                        for name, text in sorted(other_run.items())}
    else:
        assert not run_dir.exists()
    assert (tmp_path / "aside" / "config.yaml").is_file()             # ours, as it was when it was moved


def test_overwrite_of_a_file_or_link_in_the_run_folders_place_is_refused(mmnist_root, tmp_path, capsys):
    config = write_config(tmp_path, mmnist_root)
    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "t"
    run_dir.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("kept")
    for make, kind in ((lambda: run_dir.write_text("a file"), "file"),
                       (lambda: run_dir.symlink_to(elsewhere, target_is_directory=True), "link"),
                       (lambda: run_dir.symlink_to(tmp_path / "missing"), "link")):
        make()
        assert main(["fit", "--config", str(config), "--overwrite"]) == 2
        assert f"{run_dir} is a {kind}, not a run folder" in one_error_line(capsys)
        assert os.path.lexists(run_dir) and (elsewhere / "keep").read_text() == "kept"
        run_dir.unlink()


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from lightning.pytorch.callbacks import Callback
from stcbench.engine import trainer as callbacks_lib
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config

class KillInSecondEpoch(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:                     # 2 steps an epoch: in the middle of epoch 2
            os.kill(os.getpid(), signal.SIGKILL)         # kill -9: no handler, no cleanup

real = callbacks_lib.checkpoint_callbacks
callbacks_lib.checkpoint_callbacks = lambda *a, **k: real(*a, **k) + [KillInSecondEpoch()]
fit(tiny_config(Path(sys.argv[1]), Path(sys.argv[2]), epochs=3))
"""


def test_kill_9_then_resume_gives_bit_identical_weights(mmnist_root, tmp_path):
    import subprocess
    import sys

    import torch

    from stcbench.training.runner import fit

    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(mmnist_root), str(tmp_path / "b")],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = tmp_path / "b" / "mmnist" / "lif" / "t"
    assert not (run_dir / "metrics.json").exists()
    resumed = fit(tiny_config(mmnist_root, tmp_path / "b", epochs=3), ckpt_path=run_dir)
    straight = fit(tiny_config(mmnist_root, tmp_path / "a", epochs=3))
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert json.loads((straight / "metrics.json").read_text())["test"] == \
        json.loads((resumed / "metrics.json").read_text())["test"]


def test_overwrite_puts_the_old_run_back_when_the_new_one_fails_before_training(mmnist_root, tmp_path, capsys):
    """--overwrite sets the old run aside and deletes it only once the new run has a checkpoint: a setting that
    Lightning refuses when training starts leaves the old run as it was (and no half-made new one)."""
    from stcbench.training.runner import fit

    old = fit(tiny_config(mmnist_root, tmp_path, epochs=1))
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(mmnist_root, tmp_path, epochs=1,
                                               trainer={"limit_train_batches": 0.0001})))
    assert main(["fit", "--config", str(path), "--overwrite"]) == 2
    assert "limit_train_batches" in capsys.readouterr().err
    assert {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in old.parent.iterdir()) == [old.name]
    # a new run that trains replaces it
    path.write_text(yaml.safe_dump(tiny_config(mmnist_root, tmp_path, epochs=1, seed=5)))
    assert main(["fit", "--config", str(path), "--overwrite"]) == 0
    assert json.loads((old / "metrics.json").read_text())["seed"] == 5
    assert sorted(p.name for p in old.parent.iterdir()) == [old.name]


def test_a_run_folder_stopped_before_its_first_checkpoint_points_to_overwrite(mmnist_root, tmp_path, capsys):
    """A folder with a config and logs but no checkpoint cannot be resumed: the refusal says so, and --overwrite
    (not --ckpt-path, which would fail) is the way on."""
    config = write_config(tmp_path, mmnist_root)
    old = tmp_path / "runs" / "mmnist" / "lif" / "t"
    (old / "logs").mkdir(parents=True)
    (old / "config.yaml").write_text("seed: 3\ntrainer: {}\nrun: {}\n")   # a run's resolved config
    assert main(["fit", "--config", str(config)]) == 2
    line = one_error_line(capsys)
    assert "holds no checkpoint to resume" in line and "--overwrite" in line and "--ckpt-path" not in line


def test_a_project_folder_with_its_own_config_and_an_evaluation_is_no_run(tmp_path):
    """Only a run's own records make a run folder: a project folder holding its config file, an `evaluate`
    result and a converted checkpoint may hold runs and be written to."""
    from stcbench.engine.run_folder import enclosing_run, refuse_run_inside_run, refuse_writing_run_records

    (tmp_path / "config.yaml").write_text("base: quick/mmnist\nmodel:\n  cell: lif\n")
    (tmp_path / "metrics.json").write_text('{"mse": 1.0, "inputs": {"pred": "p.npy"}}')
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "converted.ckpt").write_bytes(b"weights")
    assert enclosing_run(tmp_path / "runs" / "mmnist" / "lif") is None
    refuse_run_inside_run(tmp_path / "runs" / "mmnist" / "lif" / "r")
    refuse_writing_run_records(tmp_path / "metrics.json", "--out")
    (tmp_path / "config.yaml").write_text("seed: 1\nmodel: {cell: lif}\ntrainer: {}\nrun: {}\n")   # --print-config's
    (tmp_path / "checkpoints" / "converted.ckpt").unlink()
    (tmp_path / "metrics.json").write_text('{"cell": "lif", "test": {"mse": 1.0}}')                  # `test -o`'s
    assert enclosing_run(tmp_path / "runs") is None
    (tmp_path / "metrics.json").write_text('{"cell": "lif", "train_seconds": 3.0}')                  # a run's
    assert enclosing_run(tmp_path / "runs") == tmp_path.absolute()
    with pytest.raises(ConfigError, match="would replace a record of the run"):
        refuse_writing_run_records(tmp_path / "metrics.json", "--out")


def test_a_refused_run_says_only_why(mmnist_root, tmp_path, capsys):
    """A resized quick run whose folder exists is refused with the refusal alone: the scale-label note belongs to
    runs that start."""
    taken = tmp_path / "runs" / "mmnist" / "lif" / "taken"
    (taken / "checkpoints").mkdir(parents=True)
    (taken / "checkpoints" / "last.ckpt").write_bytes(b"someone else's weights")
    argv = ["fit", "--config", "quick/mmnist", "--cell", "lif", "--data-root", str(mmnist_root), "--output-dir",
            str(tmp_path / "runs"), "--max-epochs", "1", "--run-name", "taken"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "already exists" in err[0]
    assert main([*argv[:-1], "fresh", "--set", "data.train_samples=4", "--set", "data.val_samples=2",
                 "--set", "data.test_samples=2", "--set", "logging.progress_bar=none"]) == 0
    assert "scale label: custom, not quick (changed: data.test_samples" in capsys.readouterr().err


def test_overwrite_replaces_only_a_run_folder_and_never_one_holding_other_runs(mmnist_root, tmp_path, capsys):
    """--overwrite deletes the folder at the run's path: a folder of notes is no run, and a run folder in which
    another run was made (here run D under C) would take that run with it."""
    config = write_config(tmp_path, mmnist_root)
    notes = tmp_path / "runs" / "mmnist" / "lif" / "t"
    notes.mkdir(parents=True)
    (notes / "notes.txt").write_text("mine")
    assert main(["fit", "--config", str(config)]) == 2
    assert "is not a run's folder" in one_error_line(capsys)
    assert main(["fit", "--config", str(config), "--overwrite"]) == 2
    assert "is not one" in one_error_line(capsys) and (notes / "notes.txt").read_text() == "mine"
    (notes / "notes.txt").unlink()
    notes.rmdir()
    assert main(["fit", "--config", str(config)]) == 0                           # run t
    capsys.readouterr()
    import shutil

    nested = notes / "sub" / "mmnist" / "lif" / "t"
    shutil.copytree(notes, tmp_path / "copy")
    shutil.copytree(tmp_path / "copy", nested)                                   # a run placed inside by hand
    before = tree_hashes(nested)
    assert main(["fit", "--config", str(config), "--overwrite"]) == 2
    assert "holds other runs" in one_error_line(capsys) and tree_hashes(nested) == before


def test_an_interrupted_overwrite_leaves_the_old_run_named_and_out_of_the_tables(mmnist_root, tmp_path, capsys):
    """A kill during --overwrite leaves the old run set aside (`.t.replaced-<pid>`): tables do not count it as a
    seed, and the refusals that follow say where it is."""
    from stcbench.reports.runs import discover_runs

    config = write_config(tmp_path, mmnist_root)
    assert main(["fit", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "mmnist" / "lif" / "t"
    aside = run.with_name(".t.replaced-12345")
    run.rename(aside)                                            # what a kill after set_aside leaves
    run.mkdir()
    (run / "config.yaml").write_text((aside / "config.yaml").read_text())
    assert [r.path for r in discover_runs(tmp_path / "runs")] == []
    capsys.readouterr()
    assert main(["fit", "--config", str(config)]) == 2
    assert f"left the earlier run at {aside}" in one_error_line(capsys)
    assert main(["fit", "--config", str(config), "--ckpt-path", str(run)]) == 2
    assert f"left the earlier run at {aside}" in one_error_line(capsys)


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint_to_resume_from(tmp_path):
    """A new run that wrote best.ckpt but not last.ckpt (a full disk) cannot be resumed: the old run comes back."""
    from stcbench.engine.run_folder import set_aside, settle_replaced

    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"old")
    aside = set_aside(run)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"new, alone")
    settle_replaced(aside, run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"old" and not aside.exists()
    aside = set_aside(run)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"new")
    settle_replaced(aside, run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"new" and not aside.exists()


def test_a_finished_run_trained_on_is_unfinished_until_its_new_record(mmnist_root, tmp_path):
    """A resume that trains a finished run further sets its record aside before training: a resume killed on the
    way leaves no metrics.json naming checkpoints that no longer exist."""
    from stcbench.engine import run as engine_run
    from stcbench.training.runner import fit

    run = fit(tiny_config(mmnist_root, tmp_path, epochs=1))
    first = json.loads((run / "metrics.json").read_text())
    seen = []
    original = engine_run.retire_record
    engine_run.retire_record = lambda run_dir: (original(run_dir), seen.append((run_dir / "metrics.json").exists()))
    try:
        fit(tiny_config(mmnist_root, tmp_path, epochs=2), ckpt_path=run)
    finally:
        engine_run.retire_record = original
    assert seen == [False]                                   # gone while it trained
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert json.loads((run / engine_run.SUPERSEDED_RECORD).read_text()) == first


def test_a_run_folder_another_process_just_made_is_said_to_be_trained(mmnist_root, tmp_path, capsys):
    """Two fits of one name at once: the one that lost the folder hears that the other trains it, not that the run
    stopped before its first epoch."""
    from stcbench.engine.run_folder import training_lock

    config = write_config(tmp_path, mmnist_root)
    run = tmp_path / "runs" / "mmnist" / "lif" / "t"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 3\ntrainer: {}\nrun: {}\n")   # a run's resolved config
    with training_lock(run):
        assert main(["fit", "--config", str(config)]) == 2
    assert "is being trained by process" in one_error_line(capsys)


def test_a_completed_overwrite_clears_what_killed_ones_left_aside(tmp_path):
    """An --overwrite that completes is what the killed ones were asked for: their set-aside runs go too, unless
    their process still runs."""
    import os

    from stcbench.engine.run_folder import set_aside, settle_replaced

    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"old")
    dead, alive = tmp_path / ".r.replaced-999999999", tmp_path / f".r.replaced-{os.getppid()}"
    for folder in (dead, alive):
        folder.mkdir()
    aside = set_aside(run)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"new")
    settle_replaced(aside, run)
    assert not dead.exists() and alive.exists() and not aside.exists()


def test_sigterm_between_the_two_checkpoints_tests_exits_143_and_says_how_to_finish(mmnist_root, tmp_path,
                                                                                    monkeypatch, capsys):
    """Between Lightning's loops SIGTERM had Python's default action (the process gone, no word); it now says how
    to finish, as inside a loop."""
    from stcbench.engine import evaluation

    config = write_config(tmp_path, mmnist_root)
    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "t"
    tested = []
    original = evaluation.TestedCheckpoint

    def tested_then_sigterm(*args, **kwargs):
        tested.append(args[0])
        if len(tested) == 1:
            os.kill(os.getpid(), signal.SIGTERM)          # after the best checkpoint's test, before the last's
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation, "TestedCheckpoint", tested_then_sigterm)     # the tasks import it when testing
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--config", str(config)])
    assert stopped.value.code == 143 and tested == ["best"]
    assert f"finish the tests with `stcbench fit --ckpt-path {run_dir}`" in capsys.readouterr().err
    assert not (run_dir / "metrics.json").exists()
    assert signal.getsignal(signal.SIGTERM) is handler                     # put back


def test_a_folder_with_a_config_of_another_kind_is_no_run_and_overwrite_leaves_it(mmnist_root, tmp_path, capsys):
    """A folder of one's own that holds a config.yaml (not a run's resolved config) is not a run's folder: the
    refusal says so, and --overwrite does not delete it."""
    config = write_config(tmp_path, mmnist_root)
    mine = tmp_path / "runs" / "mmnist" / "lif" / "t"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text("name: my other project\n")
    (mine / "thesis.tex").write_text("precious")
    for extra in ([], ["--overwrite"]):
        assert main(["fit", "--config", str(config), *extra]) == 2
        line = one_error_line(capsys)
        assert "is not a run's folder" in line or "is not one (no config.yaml" in line
    assert (mine / "thesis.tex").read_text() == "precious" and sorted(p.name for p in mine.iterdir()) == [
        "config.yaml", "thesis.tex"]


def finished_tiny_run(mmnist_root, tmp_path) -> Path:
    from stcbench.training.runner import fit

    return fit(tiny_config(mmnist_root, tmp_path / "runs", epochs=1))


def test_a_resume_lightning_refuses_changes_nothing_and_the_run_resumes_after(mmnist_root, tmp_path, capsys):
    """Trainer settings Lightning cannot honour are refused before the run's config.yaml or record change, so
    the plain resume still works afterwards."""
    run = finished_tiny_run(mmnist_root, tmp_path)
    before = tree_hashes(run)
    capsys.readouterr()
    assert main(["fit", "--ckpt-path", str(run), "--max-epochs", "4", "--set", "trainer.devices=0"]) == 2
    assert "Lightning cannot make a Trainer" in one_error_line(capsys)
    assert tree_hashes(run) == before
    assert main(["fit", "--ckpt-path", str(run)]) == 0              # the finished run, tested again


@pytest.mark.parametrize("damage", ["weights_only", "loops", "epoch", "global_step"])
def test_a_checkpoint_without_training_state_is_refused_and_changes_nothing(mmnist_root, tmp_path, capsys, damage):
    import torch

    run = finished_tiny_run(mmnist_root, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    if damage == "weights_only":                    # what convert-official writes
        for key in ("optimizer_states", "loops", "lr_schedulers", "callbacks"):
            checkpoint.pop(key, None)
    elif damage == "loops":
        checkpoint["loops"] = {"fit_loop": 5}
    else:
        checkpoint[damage] = "x"
    torch.save(checkpoint, last)
    before = tree_hashes(run)
    capsys.readouterr()
    assert main(["fit", "--ckpt-path", str(run), "--max-epochs", "2"]) == 2
    line = one_error_line(capsys)
    assert ("without the optimizer and loop state" if damage == "weights_only" else "is damaged") in line
    assert "stcbench test --ckpt-path" in line
    assert tree_hashes(run) == before


def test_a_loose_checkpoint_beside_a_config_of_ones_own_starts_a_run_folder_of_its_own(mmnist_root, tmp_path,
                                                                                      capsys):
    """A checkpoint copied into a project folder, next to the user's config.yaml, does not make that folder a run:
    the resume trains into a new run folder and leaves the project folder as it was."""
    import shutil

    run = finished_tiny_run(mmnist_root, tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text(f"# my config\nbase: {run / 'config.yaml'}\n")
    (project / "notes.txt").write_text("notes")
    shutil.copy(run / "checkpoints" / "last.ckpt", project / "pretrained.ckpt")
    before = tree_hashes(project)
    assert main(["fit", "--config", str(project / "config.yaml"), "--ckpt-path", str(project / "pretrained.ckpt"),
                 "--output-dir", str(tmp_path / "runs"), "--run-name", "from-pretrained", "--max-epochs", "2"]) == 0
    assert tree_hashes(project) == before
    assert (tmp_path / "runs" / "mmnist" / "lif" / "from-pretrained" / "metrics.json").is_file()
