"""KTH Action: JPEG frame folders, person split, window rule and a decoded-frame cache (data.md §3)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from stcbench.data.common import (FrameSequenceDataset, MappedArray, Splits, cap, check_selection, counted,
                                  fix_hint)
from stcbench.atomic import exclusive_lock, replacing, write_text as atomic_write_text
from stcbench.data.fileio import read_npy_header
from stcbench.data.resize import resize_linear_u8
from stcbench.errors import DataError
from stcbench.strict_json import dumps
from stcbench.record_io import read_bytes, read_text

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
OVERLAPPING = ("jogging", "running")          # windows every 3 frames; the others do not overlap
SIZE = 128
PERSONS = range(1, 26)
TRAIN_PERSONS = range(1, 15)
VAL_PERSONS = range(15, 17)
TEST_PERSONS = range(17, 26)
CACHE_ENV = "STCBENCH_CACHE_DIR"
CACHE_VERSION = "kth-frames-v1: channel 0, OpenCV INTER_LINEAR to 128x128, uint8"
VIDEO_PATTERN = re.compile(r"^person(\d\d)_")
FRAME_PATTERN = re.compile(r"^image_(\d+)\.jpe?g$", re.IGNORECASE)


@dataclass(frozen=True)
class Video:
    action: str
    name: str
    person: int
    frame_files: tuple[str, ...]      # sorted by frame number
    frame_numbers: tuple[int, ...]


# ----------------------------------------------------------------------------- folder scan
def scan_tree(kth_dir: Path, fix: str) -> list[Video]:
    """All videos in sorted order (actions, then folders, then frames by number)."""
    kth_dir = Path(kth_dir)
    if not kth_dir.is_dir():
        raise DataError(f"{kth_dir}: folder not found (expected <data_root>/kth/<action>/"
                        f"personXX_<action>_dY_uncomp/image_NNNN.jpg). {fix}")
    videos = []
    for action in ACTIONS:
        action_dir = kth_dir / action
        if not action_dir.is_dir():
            raise DataError(f"{action_dir}: action folder not found; KTH needs all of "
                            f"{', '.join(ACTIONS)}. {fix}")
        for entry in sorted(os.scandir(action_dir), key=lambda e: e.name):
            if entry.is_dir():
                videos.append(scan_video(action, Path(entry.path), fix))
    if not videos:
        raise DataError(f"{kth_dir}: no video folders found. {fix}")
    return videos


def scan_video(action: str, folder: Path, fix: str) -> Video:
    match = VIDEO_PATTERN.match(folder.name)
    if not match or int(match.group(1)) not in PERSONS:
        raise DataError(f"{folder}: video folders must be named personXX_{action}_dY_uncomp with "
                        f"XX in 01-25. {fix}")
    frames = []
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the video's frames ({exc.strerror}); check its permissions. "
                        f"{fix}") from None
    for name in names:
        m = FRAME_PATTERN.match(name)
        if m:
            frames.append((int(m.group(1)), name))
    if not frames:
        raise DataError(f"{folder}: no image_NNNN.jpg frames. {fix}")
    frames.sort()
    return Video(action=action, name=folder.name, person=int(match.group(1)),
                 frame_files=tuple(n for _, n in frames), frame_numbers=tuple(k for k, _ in frames))


# ----------------------------------------------------------------------------- windows
def window_starts(video_ids: np.ndarray, frame_numbers: np.ndarray, overlapping: np.ndarray,
                  seq_len: int) -> list[int]:
    """Start positions of the windows in a frame list, by the backward scan of data.md §3.

    A window [s, s + seq_len) is kept when its first and last frames belong to the same video
    and their frame numbers differ by seq_len - 1. After a hit the scan jumps back seq_len
    frames (non-overlapping actions) or 3 frames (jogging, running). Starts are returned in
    scan order (descending), as the reference loader lists them.
    """
    starts = []
    i = len(video_ids) - 1
    while i >= seq_len - 1:
        s = i - seq_len + 1
        if video_ids[s] == video_ids[i] and frame_numbers[i] - frame_numbers[s] == seq_len - 1:
            starts.append(s)
            i -= 2 if overlapping[i] else seq_len - 1
        i -= 1
    return starts


@dataclass
class FrameTable:
    """Per-frame video id, frame number, person and action flag, in cache order."""

    video_ids: np.ndarray
    frame_numbers: np.ndarray
    persons: np.ndarray
    overlapping: np.ndarray

    @classmethod
    def from_videos(cls, videos: list[Video]) -> "FrameTable":
        counts = [len(v.frame_numbers) for v in videos]
        return cls(
            video_ids=np.repeat(np.arange(len(videos)), counts),
            frame_numbers=np.concatenate([np.asarray(v.frame_numbers, dtype=np.int64) for v in videos]),
            persons=np.repeat([v.person for v in videos], counts),
            overlapping=np.repeat([v.action in OVERLAPPING for v in videos], counts),
        )

    def split_windows(self, persons: range, seq_len: int) -> np.ndarray:
        """Global (cache) start indices of the windows of the frames of `persons`."""
        positions = np.flatnonzero(np.isin(self.persons, list(persons)))
        local = window_starts(self.video_ids[positions], self.frame_numbers[positions],
                              self.overlapping[positions], seq_len)
        return positions[np.asarray(local, dtype=np.int64)] if local else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- frame decoding
FRAME_LIMIT = 16 << 20           # bytes: a KTH frame is a few kB


def decode_frame(path: Path, fix: str) -> np.ndarray:
    """Channel 0 of a JPEG (frames are grey stored as RGB) as uint8 [H, W]."""
    try:
        with Image.open(io.BytesIO(read_bytes(path, FRAME_LIMIT))) as image:   # never a blocking or endless read
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode the JPEG ({exc}). {fix}") from None
    if pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise DataError(f"{path}: unexpected image layout {pixels.shape} {pixels.dtype}; expected "
                        f"an 8-bit grey or RGB frame. {fix}")
    return pixels


def decode_video(kth_dir: Path, video: Video, fix: str) -> np.ndarray:
    """Frames of one video resized to [n, 128, 128] uint8 (OpenCV INTER_LINEAR, see resize.py)."""
    folder = kth_dir / video.action / video.name
    frames = [decode_frame(folder / name, fix) for name in video.frame_files]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(f"{folder}: frames have different sizes {sorted(shapes)}. {fix}")
    return resize_linear_u8(np.stack(frames), SIZE, SIZE)


# ----------------------------------------------------------------------------- cache
def cache_root(data_root: Path) -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(data_root) / ".stcbench_cache")


def tree_fingerprint(kth_dir: Path, videos: list[Video], fix: str = "") -> str:
    """Hash of the frame list with sizes and modification times (changes when any file does)."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for video in videos:
        folder = kth_dir / video.action / video.name
        for name in video.frame_files:
            try:
                st = os.stat(folder / name)
            except OSError as exc:
                raise DataError(f"{folder / name}: cannot read the frame ({exc.strerror}; a broken link?). "
                                f"{fix}") from None
            digest.update(f"{video.action}/{video.name}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached_frames(data_root: Path, videos: list[Video], fix: str, log=None) -> np.ndarray:
    """Memory-mapped uint8 [N_frames, 128, 128] of every frame, decoding the tree on first use."""
    kth_dir = Path(data_root) / "kth"
    folder = cache_root(data_root) / f"kth-{tree_fingerprint(kth_dir, videos, fix)}"
    path = folder / "frames.npy"
    total = sum(len(v.frame_files) for v in videos)
    if is_complete_cache(path, total, fix):
        return np.load(path, mmap_mode="r")
    if log:
        log(f"decoding {total} KTH frames from {len(videos)} videos into {path} (once)")
    build_cache(kth_dir, videos, folder, total, fix)
    return np.load(path, mmap_mode="r")


def build_cache(kth_dir: Path, videos: list[Video], folder: Path, total: int, fix: str) -> None:
    """Decode the frames into `folder`, one process at a time (another one that decodes the same tree is waited
    for, and what it wrote is used); what a killed decode left there is removed first, and after a decode, the
    caches of earlier versions of the same tree (the files changed since) are removed: they are never read again."""
    made = [p for p in (folder.parent, folder) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the KTH frame cache ({exc}); set "
                        f"{CACHE_ENV} to a writable folder") from None
    try:
        with cache_lock(folder):
            if is_complete_cache(folder / "frames.npy", total, fix):
                return
            for leftover in folder.glob(".frames.npy.*.tmp.npy"):      # a decode killed before it finished
                leftover.unlink(missing_ok=True)
            write_cache(kth_dir, videos, folder, total, fix)
    except BaseException:
        for path in reversed(made):             # a failed decode leaves no empty cache folders behind
            shutil.rmtree(path, ignore_errors=True)
        raise
    remove_earlier_versions(folder, kth_dir)


@contextlib.contextmanager
def cache_lock(folder: Path):
    """The cache folder's lock, held while one process decodes into it (a folder it cannot write: one DataError)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(folder / ".lock"))
        except OSError as exc:
            raise DataError(f"{folder}: cannot lock the KTH frame cache ({exc.strerror or exc}); set {CACHE_ENV} to "
                            f"a writable folder") from None
        yield


def is_complete_cache(path: Path, total: int, fix: str) -> bool:
    """Whether `path` is a frame cache of `total` frames (uint8, 128 x 128)."""
    if not path.is_file():
        return False
    try:
        shape, dtype, _, _ = read_npy_header(path, fix)
    except DataError:
        return False                                   # stale or broken cache: rebuild it
    return shape == (total, SIZE, SIZE) and dtype == np.uint8


def remove_earlier_versions(folder: Path, kth_dir: Path) -> None:
    """Remove the other `kth-*` caches beside `folder` that were decoded from the same KTH folder (their index.json
    names it): each is a copy of the tree as it was before its files changed. Caches of other trees stay."""
    source = str(kth_dir.resolve())
    for other in folder.parent.glob("kth-*"):
        if other == folder or other.is_symlink() or not other.is_dir():
            continue
        try:
            index = json.loads(read_text(other / "index.json"))
        except (OSError, ValueError, DataError):
            continue
        if isinstance(index, dict) and index.get("source") == source:
            shutil.rmtree(other, ignore_errors=True)


def write_cache(kth_dir: Path, videos: list[Video], folder: Path, total: int, fix: str) -> None:
    with replacing(folder / "frames.npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, SIZE, SIZE))
        position = 0
        for video in videos:
            frames = decode_video(kth_dir, video, fix)
            out[position:position + len(frames)] = frames
            position += len(frames)
        out.flush()
        del out
    index = [{"action": v.action, "video": v.name, "frames": len(v.frame_files)} for v in videos]
    atomic_write_text(folder / "index.json", dumps({"version": CACHE_VERSION, "source": str(kth_dir.resolve()),
                                                    "videos": index}, indent=None))


# ----------------------------------------------------------------------------- datasets
class KTHWindows(FrameSequenceDataset):
    """Windows frames[s : s + seq_len] -> float32 [seq_len, 1, 128, 128] in [0, 1]."""

    def __init__(self, frames: np.ndarray, starts: np.ndarray, seq_len: int):
        self.mapped = MappedArray(frames.filename, frames) if isinstance(frames, np.memmap) else None
        self._frames = None if self.mapped else frames
        self.starts = np.asarray(starts, dtype=np.int64)
        self.seq_len = int(seq_len)

    @property
    def frames(self) -> np.ndarray:
        return self.mapped.array if self.mapped else self._frames

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> torch.Tensor:
        s = int(self.starts[index])
        window = np.asarray(self.frames[s:s + self.seq_len], dtype=np.float32) / 255.0
        return torch.from_numpy(window[:, None])


def person_splits(selection: str) -> dict[str, range]:
    if selection == "val":
        return {"train": TRAIN_PERSONS, "val": VAL_PERSONS, "test": TEST_PERSONS}
    return {"train": range(1, 17), "val": TEST_PERSONS, "test": TEST_PERSONS}


def build_splits(data_root: Path, selection: str = "val", seed: int = 42,
                 train_samples=None, val_samples=None, test_samples=None,
                 train_frames: int = 30, eval_frames: int = 30, log=None) -> Splits:
    """Windows of `train_frames` for training and `eval_frames` for validation and test."""
    check_selection(selection)
    fix = fix_hint("kth", data_root)
    kth_dir = Path(data_root) / "kth"
    videos = scan_tree(kth_dir, fix)
    table = FrameTable.from_videos(videos)
    frames = cached_frames(data_root, videos, fix, log=log)
    persons = person_splits(selection)
    lengths = {"train": train_frames, "val": eval_frames, "test": eval_frames}
    caps = {"train": train_samples, "val": val_samples, "test": test_samples}
    datasets = {split: KTHWindows(frames, table.split_windows(persons[split], lengths[split]),
                                  lengths[split]) for split in caps}
    used = {split: cap(datasets[split], caps[split]) for split in caps}
    rules = {split: f"persons {persons[split].start:02d}-{persons[split].stop - 1:02d}, windows of "
                    f"{lengths[split]} frames ({counted(len(used[split]), len(datasets[split]))})"
             for split in caps}
    if selection == "openstl_test":
        rules["val"] = f"the test split ({counted(len(used['val']), len(datasets['val']))} windows)"
    rules["videos"] = len(videos)
    rules["frames"] = int(len(frames))
    return Splits(train=used["train"], val=used["val"], test=used["test"], rules=rules)
