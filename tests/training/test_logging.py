"""wandb runs offline without credentials and writes a syncable run folder."""
import json
import time

import pytest

from stcbench.engine.loggers import wandb_mode
from stcbench.training.runner import fit
from tests.training.helpers import tiny_config


@pytest.fixture
def no_wandb_credentials(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "home" / ".cache" / "wandb"))


def test_wandb_mode_auto_is_offline_without_credentials(no_wandb_credentials, monkeypatch):
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled"


def installed_wandb_default_host() -> str:
    from urllib.parse import urlparse

    try:
        from wandb.sdk.lib.urls import DEFAULT_BASE_URL
    except ImportError:                                   # releases before the module: the classic host
        return "api.wandb.ai"
    return urlparse(DEFAULT_BASE_URL).hostname


@pytest.mark.parametrize("host,online", [("api.wandb.ai", True), ("api.forge.coreweave.com", "the default"),
                                         ("example.org", False)])
def test_a_stored_login_counts_for_any_wandb_host(no_wandb_credentials, tmp_path, host, online):
    """The classic host, and the installed wandb's default (api.forge.coreweave.com in recent releases)."""
    if online == "the default":
        online = host == installed_wandb_default_host()
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / ".netrc").write_text(f"machine {host}\n  login user\n  password {'k' * 40}\n")
    (tmp_path / "home" / ".netrc").chmod(0o600)
    assert wandb_mode("auto") == ("online" if online else "offline")


def test_wandb_offline_run_files(no_wandb_credentials, mmnist_root, tmp_path, monkeypatch, capfd):
    import socket

    lookups = []

    def no_network(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(f"offline test: no lookup of {host}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    config = tiny_config(mmnist_root, tmp_path / "runs", epochs=1,
                         logging={"loggers": ["csv", "wandb"], "wandb_project": "stcbench-test"})
    run_dir = fit(config)
    assert lookups == []                                            # offline: this process asks for no host
    assert "anonymous" not in capfd.readouterr().err                # no warning about a setting stcbench never made
    runs = list((run_dir / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((run_dir / "logs").rglob("*"))
    (record,) = runs[0].glob("run-*.wandb")                         # the log `wandb sync` uploads
    data = record.read_bytes()
    for key in (b"stop_iter", b"gradient_detach", b"train/loss_step", b"val/mse", b"test/mse"):
        assert key in data, key                                     # config, losses, metrics
    assert list(runs[0].rglob("media/images/val/prediction_*.png"))   # prediction images
    (table,) = runs[0].rglob("media/table/test/per_frame_*.table.json")
    per_frame = json.loads(table.read_text())
    assert per_frame["columns"][0] == "frame" and {"mse", "mae", "ssim", "psnr"} <= set(per_frame["columns"])
    assert len(per_frame["data"]) == 10
    assert (run_dir / "metrics.json").exists()


def test_wandb_runs_one_after_another_in_one_process(no_wandb_credentials, mmnist_root, tmp_path):
    """Each fit closes wandb's service so its log is complete; the next fit starts a new one."""
    for name in ("first", "second"):
        config = tiny_config(mmnist_root, tmp_path / name, epochs=1, run={"test_after_fit": False},
                             logging={"loggers": ["wandb"], "wandb_project": "stcbench-test", "images": False})
        run_dir = fit(config)
        (record,) = (run_dir / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
        assert b"train/loss_step" in record.read_bytes(), name


def test_a_resumed_run_logs_to_the_same_wandb_run(no_wandb_credentials, mmnist_root, tmp_path):
    """Two sessions of one run (stopped after epoch 1, resumed): two offline folders of one wandb run id; another
    run gets another id."""
    def wandb_folders(run_dir):
        return sorted((run_dir / "logs" / "wandb").glob("offline-run-*"))

    logging = {"loggers": ["wandb"], "wandb_project": "stcbench-test", "images": False}
    config = tiny_config(mmnist_root, tmp_path, epochs=2, run={"test_after_fit": False}, logging=logging,
                         trainer={"stop_after_epochs": 1})
    run_dir = fit(config)
    config["trainer"]["stop_after_epochs"] = None
    time.sleep(1.1)                 # wandb names an offline folder by the second it starts, then the run id
    assert fit(config, ckpt_path=run_dir) == run_dir
    folders = wandb_folders(run_dir)
    assert len(folders) == 2
    ids = {folder.name.rsplit("-", 1)[1] for folder in folders}
    assert ids == {(run_dir / "logs" / "wandb" / "run_id").read_text().strip()}
    other = fit(tiny_config(mmnist_root, tmp_path, epochs=1, name="other", run={"test_after_fit": False},
                            logging=logging))
    assert {folder.name.rsplit("-", 1)[1] for folder in wandb_folders(other)}.isdisjoint(ids)


def test_the_wandb_logger_without_wandb_installed_says_which_extra_installs_it(tmp_path, monkeypatch):
    import sys

    from stcbench.engine.loggers import wandb_logger
    from stcbench.errors import ConfigError

    monkeypatch.setitem(sys.modules, "wandb", None)           # as on an install without the extra
    with pytest.raises(ConfigError, match=r"pip install 'stcbench\[wandb\]'"):
        wandb_logger(project="p", entity=None, name="n", log_dir=tmp_path, requested_mode="offline", config={})
    assert not (tmp_path / "wandb").exists()
