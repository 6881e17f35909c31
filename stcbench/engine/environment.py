"""What a run sets up before anything else: plugins, the accelerator, threads, seeds, numerics."""
from __future__ import annotations

import os

import torch

from stcbench.errors import ConfigError


def load_plugins(modules: list[str]) -> None:
    """Import user modules (they register their cells)."""
    from stcbench.cells import load_plugins as cells_load_plugins

    cells_load_plugins(modules)


def with_environment_plugins(plugins: list[str]) -> list[str]:
    """`plugins` and those loaded from STCBENCH_PLUGINS, so that the saved config and checkpoint can be used
    (tested, resumed, predicted with) without the environment variable."""
    from stcbench.cells import environment_plugins

    return list(plugins) + [p for p in environment_plugins() if p not in plugins]


def check_accelerator(accelerator: str) -> None:
    """A GPU accelerator named on a machine without one: a clear error before anything runs."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator!r} but CUDA is not available on this machine "
                          f"(torch {torch.__version__}); use --accelerator cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator='mps' but MPS is not available on this machine; use --accelerator "
                          "cpu (or auto)")


def prepare_environment(config) -> None:
    """`config` is any task's config: `plugins`, `seed` and the `trainer` section are read."""
    import lightning as L

    load_plugins(config.plugins)
    trainer = config.trainer
    check_accelerator(trainer.accelerator)
    if trainer.threads:
        torch.set_num_threads(trainer.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if trainer.tf32 is not None:
        torch.backends.cudnn.allow_tf32 = trainer.tf32
        torch.backends.cuda.matmul.allow_tf32 = trainer.tf32
    if trainer.deterministic:
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
