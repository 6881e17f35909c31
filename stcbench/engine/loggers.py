"""Loggers: CSV and TensorBoard by default; Weights & Biases on request.

wandb never blocks on the network: without credentials (no WANDB_API_KEY and no stored
login) it runs offline, writing a run folder under `<run_dir>/logs/wandb/` that
`wandb sync` uploads later.
"""
from __future__ import annotations

import netrc
import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

from stcbench.engine.schema import to_dict
from stcbench.errors import ConfigError

from stcbench.engine.settings import LOGGER_NAMES  # noqa: E402,F401  (the loggers a config may name)


def _wandb_hosts() -> set[str]:
    """The W&B server hosts a stored login may name: the classic one, the installed wandb's default and
    WANDB_BASE_URL."""
    urls = ["https://api.wandb.ai", os.environ.get("WANDB_BASE_URL", "")]
    try:
        from wandb.sdk.lib.urls import DEFAULT_BASE_URL

        urls.append(DEFAULT_BASE_URL)
    except Exception:  # noqa: BLE001 - another wandb layout: the classic host and the variable still count
        pass
    return {urlparse(url).hostname for url in urls if url} - {None}


def wandb_has_credentials() -> bool:
    """An API key in the environment, or a login stored in ~/.netrc (`wandb login`) for a W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        stored = set(netrc.netrc(str(path)).hosts)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(stored & _wandb_hosts())


def wandb_mode(requested: str) -> str:
    """`auto` -> online with credentials, else offline. WANDB_MODE in the environment wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    return "online" if wandb_has_credentials() else "offline"


def build_loggers(config, run_dir: Path, run_name: str, version: str | None = None) -> list:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    log_dir = run_dir / "logs"
    loggers = []
    for name in config.logging.loggers:
        if name == "csv":
            loggers.append(portable(CSVLogger)(str(log_dir), name="csv", version=version or ""))
        elif name == "tensorboard":
            loggers.append(portable(TensorBoardLogger)(str(log_dir), name="tensorboard", version=version or "",
                                                       default_hp_metric=False))
        elif name == "wandb":
            loggers.append(_wandb_logger(config, log_dir, run_name))
    return loggers


def portable(logger_class):
    """`logger_class` whose hparams.yaml holds the config with portable paths (stcbench.engine.portable)."""
    from stcbench.engine.portable import portable_hparams

    class Portable(logger_class):
        def log_hyperparams(self, params, *args, **kwargs):
            return super().log_hyperparams(portable_hparams(params), *args, **kwargs)

    Portable.__name__ = Portable.__qualname__ = logger_class.__name__
    return Portable


def _wandb_logger(config, log_dir: Path, run_name: str):
    return wandb_logger(project=config.logging.wandb_project, entity=config.logging.wandb_entity, name=run_name,
                        log_dir=log_dir, requested_mode=config.logging.wandb_mode, config=to_dict(config))


def wandb_logger(*, project: str, entity: str | None, name: str, log_dir: Path, requested_mode: str, config: dict):
    """A WandbLogger writing under `log_dir/wandb`, offline without credentials (see `wandb_mode`)."""
    from lightning.pytorch.loggers import WandbLogger

    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("logging.loggers names wandb, but the wandb package is not installed: pip install "
                          "'stcbench[wandb]' (or pip install wandb), or drop wandb from logging.loggers") from None

    mode = wandb_mode(requested_mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    if mode != "online":
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")      # offline means no network at all
    (log_dir / "wandb").mkdir(parents=True, exist_ok=True)
    settings = {}
    try:
        import wandb

        settings["settings"] = wandb.Settings(init_timeout=60, silent=True)
    except Exception:  # pragma: no cover - very old wandb
        pass
    logger = WandbLogger(project=project, entity=entity, name=name, save_dir=str(log_dir), mode=mode,
                         config=config, log_model=False, id=wandb_run_id(log_dir / "wandb"), resume="allow",
                         **settings)
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)          # Lightning passes anonymous=None, which wandb warns has no effect
    return logger


def wandb_run_id(folder: Path) -> str:
    """The wandb run id of this run folder, made on its first session and kept in `folder/run_id`, so that a resumed
    run logs to the same wandb run (offline: its folders share the id, and `wandb sync` uploads them as one run)."""
    import secrets

    path = folder / "run_id"
    if path.is_file():
        recorded = path.read_text().strip()
        if recorded.isalnum():
            return recorded
    run_id = secrets.token_hex(4)
    path.write_text(run_id + "\n")
    return run_id


def finish_wandb(loggers: list, failed: bool = False) -> None:
    """Finish the runs of the wandb loggers among `loggers` and wait until their files are complete."""
    for logger in loggers or []:
        if type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
            try:
                logger.experiment.finish(exit_code=1 if failed else 0)
            except Exception as error:  # a logging failure must not hide the run's own result
                warnings.warn(f"wandb could not finish its run cleanly ({error}); the offline run folder under "
                              f"logs/wandb/ may lack its last records", RuntimeWarning, stacklevel=2)
    if any(type(logger).__name__ == "WandbLogger" for logger in loggers or []):
        close_wandb_service()


def close_wandb_service() -> None:
    """Wait until wandb's service has written and closed the run's files.

    `run.finish()` only informs the service that the run ended; the service closes the
    run's transaction log (`run-*.wandb`, the file `wandb sync` uploads) later, so a
    caller reading it right after `fit` returns could see a header alone. Shutting the
    service down waits for that. A run the caller opened outside stcbench keeps it alive.
    """
    import wandb

    if wandb.run is not None:
        return
    try:
        wandb.teardown()
    except BaseException as error:  # noqa: BLE001 - wandb's teardown may sys.exit on a service error
        warnings.warn(f"wandb's service did not shut down cleanly ({error!r}); the offline run folder under "
                      f"logs/wandb/ may lack its last records", RuntimeWarning, stacklevel=3)


def log_metrics_to_wandb(loggers: list, prefix: str, metrics: dict) -> None:
    """Scalars and per-frame tables of a test result to every wandb logger."""
    wandb_loggers = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    if not wandb_loggers:
        return
    scalars = {f"{prefix}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
    per_frame = metrics.get("per_frame") or {}
    payload = dict(scalars)
    if per_frame:
        import wandb

        names = sorted(k for k, v in per_frame.items() if isinstance(v, list))
        rows = [[i] + [per_frame[n][i] for n in names] for i in range(len(per_frame[names[0]]))] if names else []
        payload[f"{prefix}/per_frame"] = wandb.Table(columns=["frame"] + names, data=rows)
    for lg in wandb_loggers:
        # One history row (written to the run log at once; offline summaries alone are not always kept,
        # wandb/wandb#7227), which also sets the run summary to these values.
        lg.experiment.log(payload)
