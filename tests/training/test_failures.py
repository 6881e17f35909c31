"""Failures: one clear message, no partial result files."""
import pytest
import torch

from stcbench.cli import main
from stcbench.errors import ConfigError, DataError
from stcbench.training import module as module_lib
from stcbench.training.module import NonFiniteLossError
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config


def test_non_finite_loss_names_step_and_causes(mmnist_root, tmp_path, monkeypatch):
    real = module_lib.network_outputs
    calls = {"n": 0}

    def poisoned(net, frames, mask, return_traces=False):
        calls["n"] += 1
        out = real(net, frames, mask, return_traces)
        if calls["n"] != 3:
            return out
        return (out[0] * float("nan"), out[1]) if return_traces else out * float("nan")

    monkeypatch.setattr(module_lib, "network_outputs", poisoned)
    config = tiny_config(mmnist_root, tmp_path, cell="lif", epochs=3)
    with pytest.raises(NonFiniteLossError) as info:
        fit(config)
    message = str(info.value)
    assert "global step 2" in message and "learning rate too high" in message and "cell option" in message
    assert "precision" not in message                 # full precision (32-true) is no likely cause
    run_dir = tmp_path / "mmnist" / "lif" / "t"
    assert not (run_dir / "metrics.json").exists()


def test_accelerators_check_the_loss_without_a_host_sync_every_step(mmnist_root, tmp_path, monkeypatch):
    """Off the CPU the finite-loss flag stays on the device and is read every log_every_n_steps steps."""
    config = tiny_config(mmnist_root, tmp_path, cell="lif")
    config["logging"] = {**config.get("logging", {}), "log_every_n_steps": 4}
    module = module_lib.VideoPredictionModule(config)
    monkeypatch.setattr(module, "_defers_checks", lambda loss: True)
    step = {"n": 0}
    monkeypatch.setattr(module, "_should_log_details", lambda: step["n"] % 4 == 0)
    raised_at = None
    for step["n"] in range(1, 9):
        loss = torch.tensor(float("nan") if step["n"] == 2 else 1.0)
        try:
            module._check_finite(loss)
        except NonFiniteLossError as exc:
            raised_at, message = step["n"], str(exc)
            break
    assert raised_at == 4                        # not at step 2: the flag is read at the next logging step
    assert "at or before global step" in message
    module._finite_flag = torch.tensor(False)
    with pytest.raises(NonFiniteLossError):
        module.on_train_epoch_end()              # and at the end of every epoch
    module.on_train_epoch_end()                  # the flag was consumed: nothing pending


def test_non_finite_message_mentions_gradient_detach_for_stc_cells(mmnist_root, tmp_path):
    config = tiny_config(mmnist_root, tmp_path, cell="stclif", model={"gradient_detach": 0})
    module = module_lib.VideoPredictionModule(config)
    with pytest.raises(NonFiniteLossError, match="gradient_detach=0"):
        module._check_finite(torch.tensor(float("inf")))


def test_non_finite_message_leaves_gradient_detach_out_where_the_cells_detach(mmnist_root, tmp_path):
    """No gradient_detach in the config: the STC cells use their default, 1 (detached), so no hint."""
    config = tiny_config(mmnist_root, tmp_path, cell="stclif", model={"gradient_detach": None})
    module = module_lib.VideoPredictionModule(config)
    with pytest.raises(NonFiniteLossError) as info:
        module._check_finite(torch.tensor(float("inf")))
    assert "gradient_detach" not in str(info.value)


def test_bad_config_creates_nothing(mmnist_root, tmp_path):
    with pytest.raises(ConfigError, match="optim.lr"):
        fit(tiny_config(mmnist_root, tmp_path, optim={"lr": "x"}))
    assert not any(tmp_path.iterdir())


def test_cli_reports_config_errors_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learnrate: 1\n")
    assert main(["fit", "--config", str(bad), "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "optim.learnrate" in err and "allowed" in err
    assert main(["fit", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_missing_data_is_a_data_error(tmp_path):
    with pytest.raises(DataError):
        fit(tiny_config(tmp_path / "empty", tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("model,match", [({"patch_size": 3}, "patch_size 3 does not divide"),
                                         ({"image_size": [32, 32]}, "contradicts the mmnist frames")])
def test_geometry_that_contradicts_the_data_creates_nothing(mmnist_root, tmp_path, model, match):
    with pytest.raises(ConfigError, match=match):
        fit(tiny_config(mmnist_root, tmp_path / "runs", model=model))
    assert not (tmp_path / "runs").exists()


def test_input_error_found_while_training_starts_removes_the_new_run_folder(mmnist_root, tmp_path):
    """Split sizes are read when Lightning sets the data up, after the run folder was made."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "keep.txt").write_text("the user's")
    with pytest.raises(ConfigError, match="fewer than batch_size"):
        fit(tiny_config(mmnist_root, runs, data={"batch_size": 100_000, "train_samples": None}))   # the split's size
    assert sorted(p.name for p in runs.iterdir()) == ["keep.txt"]


def test_gpu_accelerator_without_a_gpu_is_a_config_error(mmnist_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        fit(tiny_config(mmnist_root, tmp_path / "runs", trainer={"accelerator": "gpu"}))
    assert not (tmp_path / "runs").exists()


def test_several_nodes_without_a_launcher_are_refused_not_waited_for(mmnist_root, tmp_path, monkeypatch):
    """Lightning would wait for ever for the other nodes' processes that nothing starts."""
    for name in ("SLURM_JOB_ID", "SLURM_NTASKS", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE",
                 "PMI_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="trainer.num_nodes=2, but no multi-node launcher"):
        fit(tiny_config(mmnist_root, tmp_path / "runs", trainer={"num_nodes": 2}))
    assert not (tmp_path / "runs").exists()


def test_training_that_ends_before_its_first_validation_says_how_to_go_on(mmnist_root, tmp_path):
    """max_steps inside the first epoch: no checkpoint was selected on validation, so nothing can be tested; the run
    keeps its last.ckpt and the message names the resume command (it was a missing best.ckpt error)."""
    config = tiny_config(mmnist_root, tmp_path, data={"train_samples": 8}, trainer={"max_steps": 2}, epochs=3)
    with pytest.raises(ConfigError, match=r"training ended after 2 steps without a validation.*--ckpt-path"):
        fit(config)
    run_dir = tmp_path / "mmnist" / "lif" / "t"
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / "metrics.json").exists()


def test_train_samples_below_the_batch_is_refused_before_data_is_generated(tmp_path, capsys):
    """data.train_samples under data.batch_size can never train: refused with the config, before the embedded data
    would be generated or a run folder made."""
    from stcbench.cli import main

    argv = ["fit", "--config", "quick/mmnist", "--data-root", str(tmp_path / "data"), "--output-dir",
            str(tmp_path / "runs"), "--set", "data.train_samples=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.train_samples 1 is fewer than data.batch_size 4" in err[0]
    assert list(tmp_path.iterdir()) == []
