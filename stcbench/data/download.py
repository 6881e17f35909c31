"""`stcbench data download`: the published dataset files, fetched with pooch.

Each file is downloaded into `<data_root>/.stcbench_downloads/<dataset>/` (a `.part` file that a
later call resumes with an HTTP Range request), checked against its published MD5 or size, and
only then moved into place; archives are unpacked into a temporary folder that replaces the
dataset folder in one rename. A wrong checksum or size keeps nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from stcbench.errors import ConfigError, DataError

DOWNLOADS = ".stcbench_downloads"
CHUNK = 1 << 20
TRANSFER_CHUNK = 1 << 16     # what an interrupted transfer can lose: the chunk in flight
RANGE_NOT_SATISFIABLE = 416
PARTIAL_CONTENT = 206
OPENSTL_RELEASE = "https://github.com/chengtan9907/OpenSTL/releases/download/v0.1.0"


@dataclass(frozen=True)
class Source:
    """One published file: where it lives, what it must hash or weigh, and what to do with it."""

    name: str                    # file name (also the name under a --mirror URL)
    url: str
    md5: str | None = None       # published checksum
    size: int | None = None      # published size in bytes
    unpack: str | None = None    # archives: a path inside that marks the dataset folder's root


SOURCES: dict[str, tuple[Source, ...]] = {
    "mmnist": (
        Source("train-images-idx3-ubyte.gz", "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
               md5="f68b3c2dcbeaaa9fbdd348bbdeb94873", size=9_912_422),
        Source("mnist_test_seq.npy", "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy",
               md5="be083ec986bfe91a449d63653c411eb2", size=819_200_128),
    ),
    "taxibj": (Source("taxibj_dataset.zip", f"{OPENSTL_RELEASE}/taxibj_dataset.zip", unpack="dataset.npz"),),
    "kth": (Source("kth_action.zip", f"{OPENSTL_RELEASE}/kth_action.zip", unpack="boxing"),),
}
DATASET_FOLDERS = {"mmnist": "moving_mnist", "taxibj": "taxibj", "kth": "kth"}


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class ProgressBar:
    """A transfer's progress (total, update, reset, close), drawn with rich; a resumed download starts at the bytes
    already there."""

    def __init__(self, label: str, done: int):
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self.done = done
        self.progress = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), disable=not sys.stderr.isatty(), transient=False)
        self.task = self.progress.add_task(label, total=None, completed=done)
        self.progress.start()

    @property
    def total(self):
        return self.progress.tasks[0].total

    @total.setter
    def total(self, remaining: int):
        self.progress.update(self.task, total=self.done + remaining if remaining else None)

    def update(self, n: int):
        self.progress.advance(self.task, n)

    def reset(self):
        self.progress.update(self.task, completed=self.done)

    def close(self):
        self.progress.stop()


class ResumableDownloader:
    """A pooch downloader that keeps what arrived in `partial` and asks only for the rest next time.

    pooch calls it with its own temporary file beside the target; the finished `.part` file is
    renamed onto that temporary, which pooch then hash-checks and moves into place (or deletes)."""

    def __init__(self, partial: Path, label: str, timeout: float = 60.0):
        self.partial, self.label, self.timeout = partial, label, timeout

    def __call__(self, url: str, output_file: str, pooch) -> None:
        import requests

        offset = self.partial.stat().st_size if self.partial.exists() else 0
        if offset and not self._accepts_ranges(url, requests):
            offset = 0
        try:
            self._transfer(url, offset, requests)
        except requests.exceptions.RequestException as exc:
            if not (offset and getattr(exc.response, "status_code", None) == RANGE_NOT_SATISFIABLE):
                raise self._stopped(url, exc) from None
            self.partial.unlink()          # the part kept is as long as the file or longer: it cannot be resumed
            return self(url, output_file, pooch)       # from the first byte
        os.replace(self.partial, output_file)

    def _transfer(self, url: str, offset: int, requests) -> None:
        """Append the rest of the file from `offset` to the part file. A server that answers a Range request with the
        whole file (200) has its answer written from the first byte; one that sends another part is asked for the
        whole file."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            response.raise_for_status()
            if offset and response.status_code == PARTIAL_CONTENT and not continues_at(response, offset):
                response.close()                 # a part from elsewhere in the file: ask for the whole file
                return self._transfer(url, 0, requests)
            if offset and not continues_at(response, offset):
                offset = 0                       # the whole file (200): written from the first byte
            bar = ProgressBar(self.label, offset)
            try:
                length = response.headers.get("Content-Length", "")
                bar.total = int(length) if length.isdigit() else 0
                with open(self.partial, "ab" if offset else "wb") as out:
                    for chunk in response.iter_content(chunk_size=TRANSFER_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()

    def _stopped(self, url: str, exc: Exception) -> DataError:
        have = self.partial.stat().st_size if self.partial.exists() else 0
        if have:
            return DataError(f"download of {url} stopped after {have:,} bytes ({failure(exc)}); run the same "
                             f"command again to resume from there")
        self.partial.unlink(missing_ok=True)
        return DataError(f"download of {url} failed before any data arrived ({failure(exc)}); check the address "
                         f"(--mirror) and the network, then run the same command again")

    def _accepts_ranges(self, url: str, requests) -> bool:
        try:
            head = requests.head(url, allow_redirects=True, timeout=self.timeout)
        except requests.exceptions.RequestException:
            return False
        return head.ok and head.headers.get("Accept-Ranges", "").lower() == "bytes"


def continues_at(response, offset: int) -> bool:
    """True when an HTTP answer is the file from byte `offset` on: 206 with a Content-Range that starts there."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return response.status_code == PARTIAL_CONTENT and match is not None and int(match.group(1)) == offset


def failure(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    return type(exc).__name__


def check_mirror(mirror: str | None) -> None:
    if mirror is None:
        return
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--mirror {mirror!r} is not an http:// or https:// address; pass the URL of the folder "
                          f"that holds the files, e.g. --mirror https://example.org/datasets")


def source_url(source: Source, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{source.name}" if mirror else source.url


def fetch(source: Source, cache: Path, mirror: str | None, log: Callable[[str], None]) -> Path:
    """The verified file in `cache` (downloaded, or resumed, unless it is there already)."""
    import pooch

    pooch.get_logger().setLevel(logging.WARNING)     # its own lines would repeat ours
    url = source_url(source, mirror)
    target = cache / source.name
    partial = cache / f"{source.name}.part"
    log(f"{source.name}: {url}" + (f" ({source.size:,} bytes)" if source.size else ""))
    known_hash = f"md5:{source.md5}" if source.md5 else None
    try:
        pooch.retrieve(url, known_hash=known_hash, fname=source.name, path=cache,
                       downloader=ResumableDownloader(partial, source.name))
    except ValueError as exc:                      # pooch: the hash does not match
        partial.unlink(missing_ok=True)
        raise DataError(f"{source.name} from {url} does not match its published MD5 {source.md5} "
                        f"({str(exc).splitlines()[-1].strip()}); nothing was kept. Check the address (--mirror) "
                        f"and run again") from None
    if source.size is not None and target.stat().st_size != source.size:
        size = target.stat().st_size
        target.unlink()
        raise DataError(f"{source.name} from {url} has {size:,} bytes, not the published {source.size:,}; "
                        f"nothing was kept. Check the address (--mirror) and run again")
    os.chmod(target, 0o666 & ~_umask())
    return target


def _umask() -> int:
    from stcbench.atomic import _umask as umask

    return umask()


def dataset_is_present(folder: Path, files: tuple[str, ...]) -> bool:
    from stcbench.data.fileio import MARKER_NAME

    return all((folder / name).exists() for name in files) and not (folder / MARKER_NAME).exists()


def archive_root(archive: Path, marker: str) -> str:
    """The folder inside the archive that holds `marker` (the dataset folder's root)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        archive.unlink()
        raise DataError(f"{archive.name} is not a readable zip archive ({exc}); it was removed, run the same "
                        f"command again to download it anew") from None
    if bad is not None:
        archive.unlink()
        raise DataError(f"{archive.name}: member {bad} is corrupt; the archive was removed, run the same command "
                        f"again to download it anew")
    for name in sorted(names, key=len):
        parts = name.rstrip("/").split("/")
        if parts[-1] == marker:
            return "/".join(parts[:-1])
    archive.unlink()
    raise DataError(f"{archive.name} holds no {marker!r}: not the published archive; it was removed. Check the "
                    f"address (--mirror) and run again")


def unpack(archive: Path, root: str, destination: Path) -> None:
    """The members under `root` of the zip `archive`, into `destination`. An archive whose members leave the folder,
    collide (a file and a folder of one name) or unpack to more than the disk holds is removed with one DataError:
    it is not the published archive."""
    prefix = f"{root}/" if root else ""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        size, free = sum(m.file_size for m in members), shutil.disk_usage(destination).free
        if size > free:
            raise DataError(f"{archive.name} unpacks to {size / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB "
                            f"free under {destination.parent}; free some space and run the same command again (the "
                            f"archive is kept)")
        for member in members:
            relative = Path(member.filename[len(prefix):])
            if relative.is_absolute() or ".." in relative.parts:
                archive.unlink()
                raise DataError(f"{archive.name}: member {member.filename!r} points outside the dataset folder; the "
                                f"archive was removed: check the address (--mirror) and run again")
            out = destination / relative
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                archive.unlink()
                raise DataError(f"{archive.name}: member {member.filename!r} collides with another member (a file "
                                f"and a folder of one name): not the published archive; it was removed. Check the "
                                f"address (--mirror) and run again") from None


def download_dataset(name: str, data_root: str | os.PathLike | None = None, *, mirror: str | None = None,
                     force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Download, verify and install one dataset; returns what was installed with its checksums."""
    from stcbench.atomic import replacing_directory
    from stcbench.data.generators import refuse_replacing_other_data
    from stcbench.data.specs import get_dataset_spec, require_folder_root

    spec = get_dataset_spec(name)
    key = "kth" if spec.folder == "kth" else spec.name
    check_mirror(mirror)
    root = require_folder_root(data_root)
    folder = root / DATASET_FOLDERS[key]
    if not force and dataset_is_present(folder, spec.files):
        check_present(key, folder)
        log(f"{key}: already in {folder} (pass --force to download it again)")
        return {"dataset": key, "folder": str(folder), "files": {}, "downloaded": False}
    if not force and folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder} already holds other data (the generated default or an incomplete copy); "
                        f"pass --force to replace it with the download, or choose another --data-root")
    refuse_replacing_other_data(folder, spec, force)     # --force replaces a dataset folder, not the user's files
    cache = root / DOWNLOADS / key
    if force and cache.is_dir():               # no finished file an earlier call left (a wrong archive, say) is
        for finished in cache.iterdir():       # reused; an interrupted transfer (.part) still resumes
            if finished.is_file() and finished.suffix != ".part":
                finished.unlink()
    made = [path for path in (root, root / DOWNLOADS, cache) if not path.exists()]
    cache.mkdir(parents=True, exist_ok=True)
    try:
        fetched = [(source, fetch(source, cache, mirror, log)) for source in SOURCES[key]]
    except BaseException:
        for path in reversed(made):             # nothing arrived: no empty folders left behind
            _remove_if_empty(path)
        raise
    files = {}
    for source, path in fetched:
        files[source.name] = {"bytes": path.stat().st_size, "sha256": file_digest(path, "sha256"),
                              **({"md5": source.md5} if source.md5 else {})}
    try:
        with replacing_directory(folder) as staging:
            for source, path in fetched:
                if source.unpack:
                    unpack(path, archive_root(path, source.unpack), staging)
                else:
                    os.replace(path, staging / source.name)
            for sub in staging.rglob("*"):
                os.chmod(sub, (0o777 if sub.is_dir() else 0o666) & ~_umask())
            check_download(key, staging, cache, mirror)
    except BaseException:
        for path in (cache, root / DOWNLOADS):    # a removed archive leaves no empty folders behind
            _remove_if_empty(path)
        raise
    shutil.rmtree(cache, ignore_errors=True)
    _remove_if_empty(root / DOWNLOADS)
    for file, info in files.items():
        log(f"  {file}: {info['bytes']:,} bytes, sha256 {info['sha256']}"
            + (" (published MD5 verified)" if "md5" in info else ""))
    warning = other_counts_warning(key, folder)
    if warning:
        log(warning)
    log(f"{key}: installed in {folder}; check it with `stcbench data check --dataset {key}"
        f"{' --data-root ' + str(data_root) if data_root else ''}`")
    return {"dataset": key, "folder": str(folder), "files": files, "downloaded": True}


def check_present(key: str, folder: Path) -> None:
    """Files already in the dataset folder are taken only if they pass `data check`'s file check."""
    from stcbench.data.check import verify_folder

    try:
        verify_folder(key, folder, "")
    except DataError as error:
        raise DataError(f"{folder} holds the dataset's file names, but they fail the check: {str(error).strip()}; "
                        f"pass --force to download them again") from None


def check_download(key: str, staging: Path, cache: Path, mirror: str | None) -> None:
    """The unpacked download passes `data check`'s file check before it replaces anything; else nothing is kept."""
    from stcbench.data.check import verify_folder

    try:
        verify_folder(key, staging, "")
    except DataError as error:
        shutil.rmtree(cache, ignore_errors=True)
        problem = str(error).replace(str(staging), "the download").strip()
        raise DataError(f"the {key} download is not the published dataset ({problem}); nothing was installed or "
                        f"kept. Check the address{' (--mirror ' + mirror + ')' if mirror else ''} and run "
                        f"again") from None


def other_counts_warning(key: str, folder: Path) -> str | None:
    """OpenSTL's TaxiBJ archive holds 20,461 training and 500 test samples (docs/spec/data.md), and no checksum of
    it is published: a download of other counts (another file at the address, a mirror's) is named as such."""
    from stcbench.data.specs import get_dataset_spec

    if key != "taxibj":
        return None
    published = get_dataset_spec("taxibj").published
    expected = {"X_train": published["openstl_train"], "X_test": published["openstl_test"]}
    counts = npz_lengths(folder / "dataset.npz", tuple(expected))
    if counts == expected:
        return None
    found = " and ".join(f"{key} {counts.get(key)}" for key in expected)
    return (f"warning: the taxibj download holds {found} samples, the published archive {expected['X_train']:,} and "
            f"{expected['X_test']:,}: it is not the published TaxiBJ data; runs on it are not comparable with the "
            f"paper's (check the address, --mirror)")


def npz_lengths(path: Path, keys: tuple[str, ...]) -> dict[str, int | None]:
    """The first dimension of each array `keys` of an .npz file, read from the arrays' headers alone."""
    import numpy as np

    lengths: dict[str, int | None] = {}
    with zipfile.ZipFile(path) as archive:
        for key in keys:
            try:
                with archive.open(f"{key}.npy") as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape = header(member)[0]
            except (KeyError, ValueError, OSError):
                shape = ()
            lengths[key] = int(shape[0]) if shape else None
    return lengths


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
