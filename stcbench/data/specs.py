"""Dataset registry: shapes, frame counts, patch sizes, file layout and published sizes."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stcbench.errors import ConfigError, DataError

DATA_ROOT_ENV = "STCBENCH_DATA_ROOT"
DEFAULT_DATA_ROOT = "datasets"


@dataclass(frozen=True)
class DatasetSpec:
    """Geometry and files of one benchmark dataset.

    `in_frames`/`out_frames` describe the evaluated task. `train_out_frames` is the number of
    predicted frames in training (and default validation) windows; it differs from
    `out_frames` only for `kth40` (trained 10->20, tested 10->40).
    """

    name: str
    title: str
    channels: int
    height: int
    width: int
    in_frames: int
    out_frames: int
    patch_size: int
    folder: str
    files: tuple[str, ...]
    published: dict = field(default_factory=dict)
    train_out_frames: int | None = None

    @property
    def total_frames(self) -> int:
        """Frames of an evaluation (test) sample: T_in + T_out."""
        return self.in_frames + self.out_frames

    @property
    def train_frames(self) -> int:
        """Frames of a training sample."""
        return self.in_frames + (self.train_out_frames or self.out_frames)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def folder_path(self, data_root: str | os.PathLike | None = None) -> Path:
        return resolve_data_root(data_root) / self.folder

    def file_paths(self, data_root: str | os.PathLike | None = None) -> list[Path]:
        base = self.folder_path(data_root)
        return [base / name for name in self.files]


_SPECS = {
    "mmnist": DatasetSpec(
        name="mmnist",
        title="Moving MNIST",
        channels=1, height=64, width=64, in_frames=10, out_frames=10, patch_size=2,
        folder="moving_mnist",
        files=("train-images-idx3-ubyte.gz", "mnist_test_seq.npy"),
        published={"stclif_train": 10000, "stclif_test": 10000,
                   "openstl_train": 10000, "openstl_test": 10000,
                   "note": "training sequences are generated on the fly (10,000 per epoch)"},
    ),
    "taxibj": DatasetSpec(
        name="taxibj",
        title="TaxiBJ",
        channels=2, height=32, width=32, in_frames=4, out_frames=4, patch_size=1,
        folder="taxibj",
        files=("dataset.npz",),
        published={"stclif_train": 19627, "stclif_test": 1334,
                   "openstl_train": 20461, "openstl_test": 500,
                   "note": "the STC-LIF paper and OpenSTL disagree; the file's own split is used"},
    ),
    "kth": DatasetSpec(
        name="kth",
        title="KTH Action (10->20)",
        channels=1, height=128, width=128, in_frames=10, out_frames=20, patch_size=4,
        folder="kth",
        files=("boxing", "handclapping", "handwaving", "jogging", "running", "walking"),
        published={"stclif_train": 5200, "stclif_test": 3167,
                   "openstl_train": 5200, "openstl_test": 3167},
    ),
    "kth40": DatasetSpec(
        name="kth40",
        title="KTH Action (train 10->20, test 10->40)",
        channels=1, height=128, width=128, in_frames=10, out_frames=40, patch_size=4,
        folder="kth",
        files=("boxing", "handclapping", "handwaving", "jogging", "running", "walking"),
        published={"stclif_train": 5200, "note": "test windows of 50 frames (STC-LIF Table 5)"},
        train_out_frames=20,
    ),
}

DATASET_NAMES = tuple(_SPECS)


def get_dataset_spec(name: str) -> DatasetSpec:
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    aliases = {"movingmnist": "mmnist", "kth20": "kth"}
    key = aliases.get(key, key)
    if key not in _SPECS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return _SPECS[key]


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """`data_root` if given, else $STCBENCH_DATA_ROOT, else `datasets/` relative to the cwd."""
    if data_root is None or str(data_root) == "":
        data_root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(data_root).expanduser()


def require_folder_root(data_root: str | os.PathLike | None = None) -> Path:
    """`resolve_data_root`, refusing a data root that is a file (the datasets live in folders under it)."""
    root = resolve_data_root(data_root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: the data root is a file, not a folder. Fix: pass --data-root (or set "
                        f"${DATA_ROOT_ENV} to) a folder that holds or will hold the datasets")
    return root


def dataset_holding(path: str | os.PathLike) -> str | None:
    """The dataset whose folder holds `path` (at any depth): a folder named as a dataset's that holds one of its files,
    or the generator's description (stcbench.json). None elsewhere."""
    from stcbench.data.fileio import MARKER_NAME

    for folder in Path(path).absolute().parents:
        for spec in _SPECS.values():
            if folder.name == spec.folder and ((folder / MARKER_NAME).is_file()
                                               or any((folder / name).exists() for name in spec.files)):
                return spec.name
    return None
