"""Atomic output: complete files with the permissions of a plain open(), nothing left behind on failure."""
import os
import stat

import pytest

from stcbench import atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_folders_get_the_permissions_of_open_and_mkdir(tmp_path, umask_022):
    written = atomic.write_json(tmp_path / "a" / "m.json", {"psnr": float("inf")})
    assert written.read_text() == '{\n  "psnr": "inf"\n}\n'
    assert mode(written) == 0o644                     # tempfile's own would be 0600
    with atomic.replacing_directory(tmp_path / "data") as folder:
        (folder / "x").write_text("1")
    assert mode(tmp_path / "data") == 0o755 and (tmp_path / "data" / "x").read_text() == "1"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "r.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["r.txt"]
    with pytest.raises(RuntimeError):
        with atomic.replacing_directory(tmp_path / "d") as folder:
            (folder / "x").write_text("1")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["r.txt"]


def test_the_temporary_keeps_the_suffix_for_writers_that_go_by_it(tmp_path):
    import numpy as np

    with atomic.replacing(tmp_path / "p.npz") as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))                 # numpy would append .npz to any other name
    assert np.load(tmp_path / "p.npz")["a"].tolist() == [0, 1, 2]


def test_a_folder_another_process_made_meanwhile_is_not_replaced_without_force(tmp_path):
    """Two `data generate` at once: the one that finishes second leaves the first one's folder as it is (and
    says so) instead of replacing it and reporting its own data as there."""
    import pytest

    from stcbench.data.fileio import atomic_directory
    from stcbench.errors import ConfigError

    target = tmp_path / "moving_mnist"
    with pytest.raises(ConfigError, match="made by another process"):
        with atomic_directory(target) as staging:
            (staging / "mine.npy").write_bytes(b"mine")
            target.mkdir()
            (target / "theirs.npy").write_bytes(b"theirs")
    assert [p.name for p in target.iterdir()] == ["theirs.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["moving_mnist"]
    with atomic_directory(target, overwrite=True) as staging:            # --force replaces it
        (staging / "mine.npy").write_bytes(b"mine")
    assert [p.name for p in target.iterdir()] == ["mine.npy"]
