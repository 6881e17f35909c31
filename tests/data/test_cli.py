"""`stcbench data generate|check|info`, including every failure mode of `check` (exit code 2)."""
import json
import shutil

import numpy as np
import pytest

from stcbench.cli import main

from .conftest import write_kth_tree_by_hand, write_mmnist_by_hand, write_taxibj_by_hand


def run(capsys, *argv):
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_then_check_and_info(tmp_path, capsys):
    code, out, _ = run(capsys, "generate", "--dataset", "taxibj", "--data-root", str(tmp_path),
                       "--param", "train_days=3", "--param", "test_days=1")
    assert code == 0 and "generated TaxiBJ" in out
    code, out, _ = run(capsys, "check", "--dataset", "taxibj", "--data-root", str(tmp_path))
    assert code == 0
    assert "train" in out and "103 samples" in out and "[8x2x32x32]" in out and "generated" in out
    code, out, _ = run(capsys, "check", "--dataset", "taxibj", "--data-root", str(tmp_path), "--json")
    report = json.loads(out)
    assert report["splits"]["val"]["samples"] == 27 and report["splits"]["test"]["samples"] == 41
    assert 0 <= report["splits"]["test"]["min"] <= report["splits"]["test"]["max"] <= 1
    code, out, _ = run(capsys, "info", "--data-root", str(tmp_path))
    assert code == 0 and "kth40" in out and "20461" in out and "[generated]" in out and "[missing]" in out


def test_check_all_on_generated_root(generated_root, capsys, monkeypatch):
    monkeypatch.setenv("STCBENCH_DATA_ROOT", str(generated_root))
    code, out, err = run(capsys, "check", "--dataset", "mmnist")
    assert code == 0 and "mmnist: OK" in out


def break_mmnist(root, problem):
    folder = root / "moving_mnist"
    images, test = write_mmnist_by_hand(root, n_test=3)
    path = folder / "mnist_test_seq.npy"
    if problem == "missing":
        path.unlink()
    elif problem == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    elif problem == "wrong-shape":
        np.save(path, test[:, :, :32, :32])
    elif problem == "wrong-dtype":
        np.save(path, test.astype(np.float32))
    elif problem == "corrupt":
        path = folder / "train-images-idx3-ubyte.gz"
        path.write_bytes(b"this is not gzip data at all")
    return path


def break_taxibj(root, problem):
    arrays = write_taxibj_by_hand(root, n_train=40, n_test=4)
    path = root / "taxibj" / "dataset.npz"
    if problem == "out-of-range":
        arrays["X_test"] = arrays["X_test"] * 3
        np.savez(path, **arrays)
    elif problem == "corrupt":
        path.write_bytes(b"PK\x03\x04 garbage")
    return path


def break_kth(root, problem):
    kth_dir = write_kth_tree_by_hand(root, {("boxing", 1): 31, ("boxing", 15): 31, ("boxing", 20): 31})
    if problem == "missing":
        shutil.rmtree(kth_dir / "running")
        return kth_dir / "running"
    path = kth_dir / "boxing" / "person20_boxing_d1_uncomp" / "image_0031.jpg"
    path.write_bytes(b"\xff\xd8\xff garbage")
    return path


@pytest.mark.parametrize("dataset, problem, words", [
    ("mmnist", "missing", "not found"),
    ("mmnist", "truncated", "truncated"),
    ("mmnist", "wrong-shape", "(20, N, 64, 64)"),
    ("mmnist", "wrong-dtype", "uint8"),
    ("mmnist", "corrupt", "gzip"),
    ("taxibj", "out-of-range", "[-1, 1]"),
    ("taxibj", "corrupt", "not a readable .npz file"),
    ("kth", "missing", "not found"),
    ("kth", "corrupt", "cannot decode"),
])
def test_check_failures_exit_2_with_one_message_naming_the_file(tmp_path, capsys, dataset, problem, words):
    breaker = {"mmnist": break_mmnist, "taxibj": break_taxibj, "kth": break_kth}[dataset]
    path = breaker(tmp_path, problem)
    code, out, err = run(capsys, "check", "--dataset", dataset, "--data-root", str(tmp_path))
    assert code == 2
    errors = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err
    message = errors[0]
    assert str(path) in message and words in message
    assert f"stcbench data generate --dataset {dataset}" in message and "datasets/README.md" in message
    assert "--force" in message                       # the dataset's folder exists: generate would refuse


def test_the_suggested_fix_works(tmp_path, capsys):
    """The command a data error suggests, run as written, repairs the dataset."""
    import re
    import shlex

    break_mmnist(tmp_path, "corrupt")
    code, _, err = run(capsys, "check", "--dataset", "mmnist", "--data-root", str(tmp_path))
    assert code == 2
    (command,) = re.findall(r"`(stcbench data generate [^`]*)`", err)
    assert main(shlex.split(command)[1:]) == 0
    assert run(capsys, "check", "--dataset", "mmnist", "--data-root", str(tmp_path))[0] == 0
    shutil.rmtree(tmp_path / "moving_mnist")
    code, _, err = run(capsys, "check", "--dataset", "mmnist", "--data-root", str(tmp_path))
    assert code == 2 and "--force" not in err          # nothing to replace


def test_missing_root_names_the_file(tmp_path, capsys):
    code, _, err = run(capsys, "check", "--dataset", "taxibj", "--data-root", str(tmp_path / "none"))
    assert code == 2 and str(tmp_path / "none" / "taxibj" / "dataset.npz") in err


def test_generate_refuses_to_overwrite_and_bad_params(tmp_path, capsys):
    args = ("generate", "--dataset", "mmnist", "--data-root", str(tmp_path), "--param", "test_sequences=2")
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 2 and "--force" in err
    code, _, err = run(capsys, "generate", "--dataset", "mmnist", "--data-root", str(tmp_path),
                       "--param", "nonsense")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = run(capsys, "generate", "--dataset", "cifar", "--data-root", str(tmp_path))
    assert code == 2 and "mmnist, taxibj, kth, kth40" in err
    # --dataset all keeps what is there (a demo or a quick fit generated mmnist first) and makes the others
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, _ = run(capsys, "generate", "--dataset", "all", "--data-root", str(tmp_path))
    assert code == 0 and "moving_mnist: already there, kept" in out
    assert {p.name for p in tmp_path.iterdir()} == {"moving_mnist", "taxibj", "kth"}
    assert [p for p in before if (tmp_path / p).exists()] == before
    # an empty dataset folder (made by hand, say) is filled, by --dataset all too
    fresh = tmp_path / "fresh"
    (fresh / "moving_mnist").mkdir(parents=True)
    code, out, _ = run(capsys, "generate", "--dataset", "all", "--data-root", str(fresh))
    assert code == 0 and "generated Moving MNIST" in out and any((fresh / "moving_mnist").iterdir())
    # one dataset that cannot be made (a link to nothing in its place) does not stop the others
    other = tmp_path / "other"
    other.mkdir()
    (other / "taxibj").symlink_to(tmp_path / "gone")
    code, out, err = run(capsys, "generate", "--dataset", "all", "--data-root", str(other))
    assert code == 2 and "1 of 3 datasets failed (taxibj" in err
    assert (other / "moving_mnist").is_dir() and (other / "kth").is_dir()


@pytest.mark.parametrize("action", [
    ["check", "--dataset", "mmnist"],
    ["check", "--dataset", "kth"],
    ["generate", "--dataset", "taxibj"],
    ["download", "--dataset", "mmnist", "--mirror", "http://127.0.0.1:9"],
])
def test_a_data_root_that_is_a_file_is_named_as_such(tmp_path, capsys, action):
    root = tmp_path / "afile"
    root.write_text("not a folder")
    code, _, err = run(capsys, *action, "--data-root", str(root))
    assert code == 2 and err.count("\n") == 1
    assert f"{root}: the data root is a file, not a folder" in err
    assert "not found" not in err and "data generate" not in err
    assert root.read_text() == "not a folder" and sorted(tmp_path.iterdir()) == [root]


def test_generate_force_replaces_the_dataset_files_only(tmp_path, capsys):
    """--force replaces the dataset's files (generated or real); a folder that also holds files of one's own is
    refused, its files unchanged."""
    args = ("generate", "--dataset", "mmnist", "--data-root", str(tmp_path), "--param", "test_sequences=2")
    assert run(capsys, *args)[0] == 0
    folder = tmp_path / "moving_mnist"
    (folder / "stcbench.json").unlink()                                    # now it looks like real data
    assert run(capsys, *args, "--force")[0] == 0                          # the dataset's own files: replaced
    (folder / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = run(capsys, *args, "--force")
    assert code == 2 and "not the moving_mnist dataset's (notes.txt)" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
