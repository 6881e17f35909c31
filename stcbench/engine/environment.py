"""What a run sets up before anything else: plugins, the accelerator, threads, seeds, numerics."""
from __future__ import annotations

import os

import torch

from stcbench.errors import ConfigError


def load_plugins(modules: list[str]) -> None:
    """Import user modules (they register their cells): on the command line only those the user named, or all
    those of a run or checkpoint the user trusts (`--trust-checkpoint`)."""
    from stcbench.cells import load_plugins as cells_load_plugins

    check_plugin_consent(modules)
    cells_load_plugins(modules)


def check_plugin_consent(modules) -> None:
    """One ConfigError for the first plugin of `modules` that the user did not name (none when trusted)."""
    from stcbench.cells import unconsented
    from stcbench.checkpoints import trusted

    refused = [] if trusted() else unconsented(modules)
    if refused:
        raise ConfigError(f"the config or run names the plugin {refused[0]!r}, code that stcbench imports only when "
                          f"you name it yourself: if you trust it, pass --set plugins=[{refused[0]}] (fit, test, "
                          f"bench) or set STCBENCH_PLUGINS={refused[0]}, or pass --trust-checkpoint to trust every file "
                          f"the command reads")


def with_environment_plugins(plugins: list[str]) -> list[str]:
    """`plugins` and those loaded from STCBENCH_PLUGINS, files as absolute paths, so that the saved config and
    checkpoint can be used (tested, resumed, predicted with) from any folder without the environment variable."""
    from stcbench.cells import environment_plugins, recorded_plugin

    recorded = [recorded_plugin(p) for p in plugins]
    return recorded + [p for p in environment_plugins() if p not in recorded]


def check_accelerator(accelerator: str) -> None:
    """A GPU accelerator named on a machine without one: a clear error before anything runs."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator!r} but CUDA is not available on this machine "
                          f"(torch {torch.__version__}); use --accelerator cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator='mps' but MPS is not available on this machine; use --accelerator "
                          "cpu (or auto)")


def check_nodes(num_nodes: int) -> None:
    """Several nodes outside a launcher that starts the other nodes' processes: Lightning would wait for them
    for ever; say so instead."""
    from stcbench.engine.cluster import cluster_environment

    if num_nodes > 1 and cluster_environment() is None and not os.environ.get("MASTER_ADDR"):
        raise ConfigError(f"trainer.num_nodes={num_nodes}, but no multi-node launcher started this process (no SLURM, "
                          f"torchrun, LSF or MPI environment, no MASTER_ADDR), so the run would wait for the other "
                          f"nodes for ever; on one machine leave num_nodes at 1 (--set trainer.devices for more "
                          f"processes), on a cluster start it with srun or torchrun")


def prepare_environment(config) -> None:
    """`config` is any task's config: `plugins`, `seed` and the `trainer` section are read."""
    import lightning as L

    load_plugins(config.plugins)
    trainer = config.trainer
    check_accelerator(trainer.accelerator)
    check_nodes(trainer.num_nodes)
    if trainer.threads:
        torch.set_num_threads(trainer.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if trainer.tf32 is not None:
        torch.backends.cudnn.allow_tf32 = trainer.tf32
        torch.backends.cuda.matmul.allow_tf32 = trainer.tf32
    if trainer.deterministic:
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
