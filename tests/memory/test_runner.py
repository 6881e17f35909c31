import re
import json
import warnings

import pytest
import torch
import yaml

from stcbench.errors import ConfigError
from stcbench.memory import config as memory_config
from stcbench.memory import runner
from stcbench.engine import trainer as engine_trainer
from stcbench.engine.task import task_of
from stcbench.memory.runner import fit


def tiny_config(tmp_path, **data):
    return {
        "task": "memory",
        "seed": 1,
        "data": {"task": "adding", "seq_len": 12, "train_samples": 128, "val_samples": 64, "test_samples": 64,
                 "batch_size": 32, **data},
        "model": {"cell": "lif", "hidden": [16, 16]},
        "optim": {"lr": 1e-2},
        "trainer": {"max_epochs": 3, "threads": 1},
        "logging": {"loggers": ["csv", "tensorboard"], "log_every_n_steps": 1},
        "run": {"output_dir": str(tmp_path / "runs"), "name": "tiny", "scale": "test"},
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("memory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = fit(tiny_config(tmp_path))
    return tmp_path, run_dir


def test_fit_reduces_adding_loss_and_writes_run_directory(tiny_run):
    tmp_path, run_dir = tiny_run
    assert run_dir == tmp_path / "runs" / "memory" / "adding_T12" / "lif" / "tiny"
    for name in ("config.yaml", "metrics.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                 "logs/csv/metrics.csv", "gradient_through_time.npz", "gradient_through_time.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "logs" / "tensorboard").glob("events.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = [row["val/loss"] for row in metrics["history"]]
    assert len(val) == 3 and val[-1] < val[0]
    train = [row["train/loss"] for row in metrics["history"]]
    assert train[-1] < train[0]
    assert metrics["baseline"] == pytest.approx(1 / 6)
    assert metrics["test"]["loss"] > 0 and metrics["memory_task"] == "adding" and metrics["scale"] == "test"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["task"] == "memory" and saved["model"]["readout"] == "last"
    import csv

    with open(run_dir / "logs" / "csv" / "metrics.csv") as handle:      # the two tests are logged apart
        logged = {key: float(row[key]) for row in csv.DictReader(handle) for key in ("test/loss", "test_last/loss")
                  if row.get(key)}
    assert logged == pytest.approx({"test/loss": metrics["test"]["loss"], "test_last/loss": metrics["last"]["loss"]})


def test_per_sequence_losses_average_to_the_test_loss(tiny_run, tmp_path):
    import numpy as np

    _, run_dir = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_per_sequence"] == "test_per_sequence.npz"
    assert [(m["key"], m["higher_is_better"]) for m in metrics["reported_metrics"]] == [("loss", False)]   # no acc: adding
    with np.load(run_dir / "test_per_sequence.npz") as data:
        assert data["index"].tolist() == list(range(64))
        assert data["loss"].mean() == pytest.approx(metrics["test"]["loss"], rel=1e-5)
    assert len(metrics["test_set"]) == 16
    with warnings.catch_warnings():          # same seed and split sizes: the same test set, another cell
        warnings.simplefilter("ignore")
        config = tiny_config(tmp_path)
        config["model"]["cell"] = "plif"
        config["trainer"]["max_epochs"] = 1
        other = json.loads((fit(config) / "metrics.json").read_text())
        config["seed"], config["run"]["name"] = 2, "seed2"
        reseeded = json.loads((fit(config) / "metrics.json").read_text())
    assert other["test_set"] == metrics["test_set"] != reseeded["test_set"]


def test_redo_gradient_analysis_rewrites_the_runs_analysis(tiny_run, tmp_path):
    import shutil

    import numpy as np

    from stcbench.memory.task import redo_gradient_analysis

    _, run_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with np.load(run_dir / "gradient_through_time.npz") as data:
        made_by_fit = {name: data[name] for name in data.files}
    (copy / "gradient_through_time.npz").write_bytes(b"old")
    result = redo_gradient_analysis(copy)
    with np.load(copy / "gradient_through_time.npz") as data:
        for name, values in made_by_fit.items():
            np.testing.assert_allclose(data[name], values, rtol=1e-6)
    assert result["per_step"][:-1].sum() > 0            # the layer's later steps carry gradient back
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(ConfigError, match="no checkpoints/best.ckpt"):
        redo_gradient_analysis(copy)


def test_copy_per_sequence_values_average_to_the_batch_loss_and_accuracy():
    from stcbench.memory.module import per_sequence_values, task_accuracy, task_loss
    from stcbench.memory.tasks import task_spec

    spec = task_spec("copy", 12)
    torch.manual_seed(0)
    outputs = torch.randn(5, spec.steps, spec.out_features, dtype=torch.float64)
    targets = torch.randint(0, spec.out_features, (5, spec.steps))
    values = per_sequence_values(spec, outputs, targets)
    assert values["loss"].shape == (5,) and values["acc"].shape == (5,)
    assert float(values["loss"].mean()) == pytest.approx(float(task_loss(spec, outputs, targets)), rel=1e-12)
    assert float(values["acc"].mean()) == pytest.approx(float(task_accuracy(spec, outputs, targets)), rel=1e-6)


def test_test_reproduces_the_best_checkpoint_and_resume(tiny_run, tmp_path):
    _, run_dir = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.test(None, run_dir / "checkpoints" / "best.ckpt", output=tmp_path / "t.json")
    assert result["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-6)
    written = json.loads((tmp_path / "t.json").read_text())
    assert written["loss"] == pytest.approx(result["loss"])
    assert written["checkpoint"] == "checkpoints/best.ckpt" and written["run_dir"] == str(run_dir)
    with pytest.raises(ConfigError, match="already exists"):
        fit(tiny_config(run_dir.parents[4]))


def test_task_dispatch_reaches_the_memory_task():
    from stcbench.memory.task import MemoryTask
    from stcbench.training.task import VideoTask

    assert isinstance(task_of({"task": "memory"}), MemoryTask) and isinstance(task_of({}), VideoTask)
    with pytest.raises(ConfigError, match="unknown task 'speech'"):
        task_of({"task": "speech"})


@pytest.mark.parametrize("bad, message", [
    ({"data": {"tsk": "adding"}}, r"unknown config key\(s\) \['data.tsk'\] in section 'data'; allowed: \['task'"),
    ({"optimizer": {}}, r"unknown config key\(s\) \['optimizer'\] in the top level; allowed"),
    ({"data": {"task": "parity"}}, "data.task must be one of"),
    ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
    ({"model": {"recurrent": "yes"}}, "model.recurrent must be true or false"),
    ({"model": {"hidden": []}}, "model.hidden"),
    ({"data": {"task": "copy"}, "model": {"readout": "last"}}, "per_step"),
    ({"logging": {"loggers": ["mlflow"]}}, "logging.loggers"),
    ({"task": "video"}, r"task must be one of \['memory'\]"),
])
def test_config_validation_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        memory_config.resolve(bad)


@pytest.mark.parametrize("value, bar", [("none", None), (False, None), ("tqdm", "ThrottledTQDMProgressBar"),
                                        (True, "ThrottledTQDMProgressBar"), ("rich", "ThrottledRichProgressBar")])
def test_progress_bar_takes_the_values_of_video_configs(value, bar):
    cfg = memory_config.resolve({"logging": {"progress_bar": value}})
    trainer = engine_trainer.build_trainer(cfg, None)
    names = {type(c).__name__ for c in trainer.callbacks}
    assert (bar in names) if bar else not trainer.progress_bar_callback
    with pytest.raises(ConfigError, match="logging.progress_bar must be one of"):
        memory_config.resolve({"logging": {"progress_bar": "fancy"}})


@pytest.mark.parametrize("given, resolved", [(None, "layer"), ("group", "group"), ("none", "none"),
                                             (True, "group"), (False, "none")])
def test_config_synapse_norm(given, resolved):
    """Default layer; booleans are the former spelling (true = GroupNorm(16), the former default),
    so configs stored with older runs rebuild the network they trained."""
    given_cfg = {} if given is None else {"model": {"synapse_norm": given}}
    assert memory_config.resolve(given_cfg).model.synapse_norm == resolved
    with pytest.raises(ConfigError, match="model.synapse_norm must be one of"):
        memory_config.resolve({"model": {"synapse_norm": "batch"}})


def test_optimizer_follows_cell_parameter_hints():
    """GLIF original: gates on lr/10, no weight decay on GLIF parameters; every parameter once."""
    from stcbench.memory.module import MemoryModule
    cfg = memory_config.resolve({"model": {"cell": "glif", "hidden": [16], "cell_options": {"variant": "original"}},
                                 "optim": {"weight_decay": 1e-3, "lr": 1e-2}})
    module = MemoryModule(cfg)
    optimizer = module.configure_optimizers()
    params = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(params) == len(set(params)) == len(list(module.parameters()))
    assert sorted((g["lr"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups) == [
        (pytest.approx(1e-3), 0.0, 3), (1e-2, 0.0, 5), (1e-2, 1e-3, 5)]


def test_config_overrides_and_files():
    from stcbench.engine.schema import parse_override

    overrides = dict(parse_override(t) for t in ("optim.lr=1e-3", "model.cell=celif", "run.name=007"))
    cfg = memory_config.resolve({"data": {"task": "copy"}}, overrides)
    assert cfg.optim.lr == 1e-3 and cfg.model.cell == "celif" and cfg.model.readout == "per_step"
    assert cfg.run.name == "007"
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['trainer.max_epoch'\]"):
        memory_config.resolve({}, {"trainer.max_epoch": 3})


def test_celif_checkpoint_tests_on_a_longer_sequence(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["model"]["cell"] = "celif"
    cfg["trainer"]["max_epochs"] = 1
    cfg["run"]["gradient_analysis"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = fit(cfg)
        longer = runner.test(None, run_dir, overrides={"data.seq_len": 30})
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state["net.cells.0.te"].shape == (12, 16)                  # trained with T = 12
    assert longer["loss"] > 0 and longer["cell"] == "celif"


def test_a_run_stopped_by_sigterm_and_resumed_equals_the_uninterrupted_one(tiny_run, tmp_path, monkeypatch):
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    class SignalInSecondEpoch(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 5:                    # 4 steps an epoch
                os.kill(os.getpid(), signal.SIGTERM)

    real = engine_trainer.checkpoint_callbacks
    monkeypatch.setattr(engine_trainer, "checkpoint_callbacks", lambda *a, **k: real(*a, **k) + [SignalInSecondEpoch()])
    config = tiny_config(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SystemExit) as stopped:
            fit(config)
        assert stopped.value.code == 143
        monkeypatch.setattr(engine_trainer, "checkpoint_callbacks", real)
        run_dir = fit(config, ckpt_path=tmp_path / "runs" / "memory" / "adding_T12" / "lif" / "tiny")
    resumed = json.loads((run_dir / "metrics.json").read_text())
    uninterrupted = json.loads((tiny_run[1] / "metrics.json").read_text())
    assert resumed["test"]["loss"] == pytest.approx(uninterrupted["test"]["loss"], rel=1e-6)
    assert resumed["last"]["loss"] == pytest.approx(uninterrupted["last"]["loss"], rel=1e-6)
    assert [row["val/loss"] for row in resumed["history"]] == pytest.approx([row["val/loss"] for row in uninterrupted["history"]])


def test_wandb_offline_log_of_a_memory_run_is_complete(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    config = tiny_config(tmp_path)
    config["trainer"]["max_epochs"] = 1
    config["logging"]["loggers"] = ["wandb"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = fit(config)
    (record,) = (run_dir / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
    assert b"train/loss" in record.read_bytes()


def test_bad_digit_files_are_refused_before_the_run_folder_or_trainer_exists(tmp_path, monkeypatch):
    import gzip

    from stcbench.engine import run as engine_run
    from stcbench.errors import DataError

    folder = tmp_path / "data" / "moving_mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(gzip.compress(b"not an idx file"))
    monkeypatch.setattr(engine_run, "build_trainer", lambda *a, **k: pytest.fail("a trainer was built"))
    config = tiny_config(tmp_path, task="seq_digits", digits_source="mnist", data_root=str(tmp_path / "data"))
    config["data"].pop("seq_len")
    with pytest.raises(DataError, match="IDX magic"):
        fit(config)
    assert not (tmp_path / "runs").exists()


def test_checkpoints_are_replaced_in_one_rename(tmp_path):
    cfg = memory_config.resolve({"trainer": {"threads": 1}})
    trainer = engine_trainer.build_trainer(cfg, tmp_path, monitor="val/loss")
    writer = trainer.strategy.checkpoint_io
    assert type(writer).__name__ == "AtomicCheckpointIO"
    path = tmp_path / "checkpoints" / "last.ckpt"
    writer.save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError, match="killed while saving"):
        writer.save_checkpoint({"epoch": 2, "state": Unpicklable()}, path)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert engine_trainer.checkpoint_plugins("fsdp") == []


@pytest.mark.parametrize("change, named", [({"model": {"cell": "plif"}}, "model.cell='lif'"),
                                           ({"data": {"seq_len": 8}}, "data.seq_len=12"),
                                           ({"seed": 5}, "seed=1"),
                                           ({"model": {"hidden": [32, 32]}}, "model.hidden=[16, 16]"),
                                           ({"optim": {"lr": 1e-3}}, "optim.lr=0.01 there"),
                                           ({"data": {"train_samples": 256}}, "data.train_samples=128 there"),
                                           ({"run": {"name": "other"}}, "--run-name other names another run"),
                                           ({"trainer": {"max_epochs": 2}}, "may extend a run, not shorten it")])
def test_a_resume_that_would_change_the_run_is_refused(tiny_run, change, named):
    import hashlib

    tmp_path, run_dir = tiny_run
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    config = tiny_config(tmp_path)
    for section, values in change.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    config["trainer"]["max_epochs"] = 4
    for section, values in change.items():
        if isinstance(values, dict):
            config[section].update(values)
    with pytest.raises(ConfigError, match=re.escape(named)):
        fit(config, ckpt_path=run_dir)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()} == before


def test_train_seconds_add_up_over_resumed_sessions(tiny_run, tmp_path):
    import shutil

    _, run_dir = tiny_run
    copy = tmp_path / "runs" / "memory" / "adding_T12" / "lif" / "tiny"
    shutil.copytree(run_dir, copy)
    first = json.loads((run_dir / "metrics.json").read_text())["train_seconds"]
    config = tiny_config(tmp_path)
    config["trainer"]["max_epochs"] = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(config, ckpt_path=copy)
    resumed = json.loads((copy / "metrics.json").read_text())
    assert resumed["epochs"] == 4 and resumed["train_seconds"] >= first       # rounded to 0.1 s

    def clock(path):
        from stcbench.checkpoints import load_checkpoint

        return load_checkpoint(path)["callbacks"]["TrainingClock"]["seconds"]

    assert clock(copy / "checkpoints" / "last.ckpt") > clock(run_dir / "checkpoints" / "last.ckpt") > 0


@pytest.mark.parametrize("config_text", [None, "{}\n"], ids=["config.yaml gone", "config.yaml without a task"])
def test_test_of_a_memory_run_without_its_config_reads_the_task_from_the_checkpoint(tiny_run, tmp_path, capsys,
                                                                                     config_text):
    """It said the run was a checkpoint of the memory task but the config given was for the video task."""
    import shutil

    from stcbench.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run[1], run)
    (run / "config.yaml").unlink()
    if config_text is not None:
        (run / "config.yaml").write_text(config_text)
    assert main(["test", str(run)]) == 0, capsys.readouterr().err


def test_a_non_finite_training_loss_stops_the_run_and_writes_no_metrics(tmp_path):
    """As video runs do: a NaN loss is not trained on to a 'finished' run with NaN metrics."""
    from stcbench.errors import NonFiniteLossError

    config = tiny_config(tmp_path)
    config["optim"]["lr"] = 1e308
    config["trainer"]["max_epochs"] = 1
    with warnings.catch_warnings(), pytest.raises(NonFiniteLossError,
                                                  match=r"non-finite training loss \(nan\) .*optim\.lr"):
        warnings.simplefilter("ignore")
        fit(config)
    assert not list((tmp_path / "runs").rglob("metrics.json"))
