"""`STDataModule`: the Lightning data module of every spatio-temporal benchmark."""
from __future__ import annotations

import os
import sys

import lightning as L
from torch.utils.data import DataLoader

from stcbench.atomic import check_output_folder
from stcbench.data import kth
from stcbench.data.check import verify_files
from stcbench.data.common import check_selection, fix_hint
from stcbench.data.generators import generate_dataset
from stcbench.data.loaders import build_splits, data_source
from stcbench.data.sampler import EpochSampler
from stcbench.data.checksum import dataset_checksum
from stcbench.data.specs import get_dataset_spec, require_folder_root
from stcbench.errors import ConfigError

EMBEDDED_SEED = 0          # the embedded default is always the same data


def _say(message: str) -> None:
    print(f"stcbench data: {message}", file=sys.stderr, flush=True)


class STDataModule(L.LightningDataModule):
    """Train / validation / test loaders of `dataset` (`mmnist`, `taxibj`, `kth`, `kth40`).

    Batches are float32 [B, T, C, H, W] in [0, 1]; `spec.in_frames` of them are input.
    `selection="val"` validates on the held-out split of data.md §4, `"openstl_test"` trains
    on the full training data and validates on the test split (official behaviour; tagged).
    `prepare_data` never downloads: it verifies the files (and decodes the KTH cache);
    with `generate_if_missing=True` a missing dataset folder is filled with the embedded default.
    """

    def __init__(self, dataset: str, data_root: str | os.PathLike | None = None, batch_size: int = 16,
                 val_batch_size: int | None = None, num_workers: int = 0, selection: str = "val",
                 seed: int = 42, train_samples: int | None = None, val_samples: int | None = None,
                 test_samples: int | None = None, generate_if_missing: bool = False):
        super().__init__()
        self.spec = get_dataset_spec(dataset)
        self.data_root = require_folder_root(data_root)
        if int(batch_size) < 1 or (val_batch_size is not None and int(val_batch_size) < 1):
            raise ConfigError(f"batch sizes must be positive, got {batch_size} / {val_batch_size}")
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.selection = check_selection(selection)
        self.seed = int(seed)
        self.caps = {"train_samples": train_samples, "val_samples": val_samples,
                     "test_samples": test_samples}
        self.generate_if_missing = generate_if_missing
        self.splits = None
        self.generated_now = False

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        folder = self.spec.folder_path(self.data_root)
        if self.generate_if_missing and (not folder.exists() or not any(folder.iterdir())):
            check_output_folder(folder, "data folder", "--data-root (data.data_root)")
            state = "is empty" if folder.exists() else "does not exist"
            _say(f"{folder} {state}: generating the small embedded default "
                 f"(synthetic stand-in, not the published {self.spec.title} data)")
            if folder.exists():
                folder.rmdir()
            generate_dataset(self.spec.name, self.data_root, seed=EMBEDDED_SEED, log=_say)
            self.generated_now = True
        verify_files(self.spec.name, self.data_root)
        if self.spec.folder == "kth":
            fix = fix_hint(self.spec.name, self.data_root)
            kth.cached_frames(self.data_root, kth.scan_tree(folder, fix), fix, log=_say)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = build_splits(self.spec.name, self.data_root, self.selection, self.seed,
                                   log=_say, **self.caps)
        for split in ("val", "test"):
            if len(getattr(self.splits, split)) == 0:
                raise ConfigError(f"{self.spec.name}: the {split} split of the data in "
                                  f"{self.spec.folder_path(self.data_root)} holds no sequences (too few or too short "
                                  f"for {self.spec.in_frames} -> {self.spec.out_frames} frames); check it with "
                                  f"`stcbench data check --dataset {self.spec.name}`, or regenerate it")
        processes = self._processes()
        per_process = -(-len(self.splits.train) // processes)
        if per_process < self.batch_size:
            each = f", {per_process} for each of the {processes} processes," if processes > 1 else ""
            raise ConfigError(f"{self.spec.name}: the training split has {len(self.splits.train)} "
                              f"samples{each} fewer than batch_size {self.batch_size} (batches drop "
                              f"the remainder); lower batch_size or raise train_samples"
                              + (" (or use fewer devices)" if processes > 1 else ""))

    def _processes(self) -> int:
        """The training processes the split is shared among (DDP), 1 outside a Trainer."""
        trainer = getattr(self, "trainer", None)
        return max(1, int(getattr(trainer, "world_size", 1) or 1)) if trainer is not None else 1

    def train_dataloader(self) -> DataLoader:
        train = self._require().train
        sampler = EpochSampler(len(train), self.seed, shuffle=True,
                               encode_epoch=getattr(train, "epoch_aware", False))
        return DataLoader(train, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                          **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require().val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require().test)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # ------------------------------------------------------------------ description
    @property
    def sizes(self) -> dict:
        return self._require().sizes()

    def describe(self) -> dict:
        """What was loaded, recorded with every result."""
        splits = self._require()
        source = data_source(self.spec.name, self.data_root)
        return {
            "dataset": self.spec.name,
            "checksum": dataset_checksum(self.spec.name, self.data_root),   # the data, without this machine's path
            "source": source["source"],
            "generator": source if source["source"] == "generated" else None,
            "selection": self.selection,
            "selected_on_test": self.selection == "openstl_test",
            "counts": splits.sizes(),
            "caps": dict(self.caps),
            "rules": splits.rules,
            "frames": {"in": self.spec.in_frames, "train_total": self.spec.train_frames,
                       "eval_total": self.spec.total_frames},
            "shape": list(self.spec.frame_shape),
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ helpers
    def _require(self):
        if self.splits is None:
            self.setup()
        return self.splits

    def _loader_options(self) -> dict:
        # pinned batches let the copy to a GPU run without making the host wait
        return {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0,
                "pin_memory": self._trains_on_gpu()}

    def _trains_on_gpu(self) -> bool:
        try:
            return self.trainer.strategy.root_device.type == "cuda"
        except AttributeError:          # not attached to a Trainer
            return False

    def _eval_loader(self, dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.val_batch_size, shuffle=False, drop_last=False,
                          **self._loader_options())
