"""The process's rank before a Trainer exists, from the cluster environment Lightning will choose.

Lightning picks TorchElastic, SLURM, LSF or MPI when it detects one (under `srun` it reads
SLURM_PROCID); otherwise the ranks it gives the processes it starts itself (RANK / LOCAL_RANK /
NODE_RANK). Everything that must happen once per run before the Trainer exists (creating the run
folder, writing config.yaml, recording a failure) asks `is_rank_zero()`.
"""
from __future__ import annotations

import os


def cluster_environment():
    """The detected cluster environment (an instance), or None outside a cluster launcher."""
    from lightning.fabric.plugins.environments import (LSFEnvironment, MPIEnvironment, SLURMEnvironment,
                                                       TorchElasticEnvironment)

    for environment in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if environment.detect():
            return environment()
    return None


def is_rank_zero() -> bool:
    environment = cluster_environment()
    if environment is not None:
        return int(environment.global_rank()) == 0
    if os.environ.get("RANK", "") != "":
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("LOCAL_RANK", "0") or 0) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0
