"""Datasets: real-format loaders, generators of the embedded default, Lightning data module.

Names: `mmnist`, `taxibj`, `kth`, `kth40`. Samples are float32 [T, C, H, W] in [0, 1].
"""
from stcbench.data.check import check_dataset, verify_files
from stcbench.data.common import SELECTIONS, Splits
from stcbench.data.generators import GENERATED_NAMES, generate_dataset
from stcbench.data.loaders import build_splits, data_source
from stcbench.data.specs import DATASET_NAMES, DatasetSpec, get_dataset_spec, resolve_data_root

__all__ = [
    "DATASET_NAMES", "DatasetSpec", "GENERATED_NAMES", "SELECTIONS", "STDataModule", "Splits",
    "build_splits", "check_dataset", "data_source", "generate_dataset", "get_dataset_spec",
    "resolve_data_root", "verify_files",
]


def __getattr__(name: str):
    """STDataModule is imported when first asked for: it needs Lightning, which commands that only read or make
    data files (data info, check, generate) never load."""
    if name == "STDataModule":
        from stcbench.data.datamodule import STDataModule

        return STDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
