import hashlib
import json

import numpy as np
import pytest

from stcbench.data import data_source, generate_dataset
from stcbench.data import generators
from stcbench.data.generators import mmnist as mmnist_gen
from stcbench.errors import ConfigError, DataError

from .conftest import write_taxibj_by_hand


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name, params", [
    ("mmnist", {"test_sequences": "6"}),
    ("taxibj", {"train_days": "2", "test_days": "1"}),
])
def test_generation_is_deterministic_by_seed(tmp_path, name, params):
    a = generate_dataset(name, tmp_path / "a", seed=3, overrides=params)
    b = generate_dataset(name, tmp_path / "b", seed=3, overrides=params)
    c = generate_dataset(name, tmp_path / "c", seed=4, overrides=params)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_marker_describes_the_generated_data(generated_root):
    marker = json.loads((generated_root / "taxibj" / "stcbench.json").read_text())
    assert marker["source"] == "generated" and marker["seed"] == 0
    assert marker["params"]["train_days"] == 4
    assert marker["counts"]["train_samples"] == 4 * 48 - 7
    assert data_source("taxibj", generated_root)["source"] == "generated"
    assert data_source("kth40", generated_root)["source"] == "generated"


def test_hand_written_data_is_real_and_the_marker_is_not_needed_to_read(tmp_path, generated_root):
    write_taxibj_by_hand(tmp_path)
    assert data_source("taxibj", tmp_path) == {"source": "real"}


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupted(folder, params, seed):
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(mmnist_gen, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset("mmnist", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_force(tmp_path):
    params = {"test_sequences": "2"}
    folder = generate_dataset("mmnist", tmp_path, overrides=params)
    before = digest(folder)
    with pytest.raises(DataError) as err:
        generate_dataset("mmnist", tmp_path, seed=9, overrides=params)
    assert "--force" in str(err.value)
    assert digest(folder) == before
    generate_dataset("mmnist", tmp_path, seed=9, overrides=params, force=True)
    assert digest(folder) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moving_mnist"]


def test_parameters_presets_and_errors():
    assert generators.generator_params("kth", "medium").scenarios_per_person == 4
    assert generators.generator_params("kth40").frames_per_video == 52
    assert generators.generator_params("taxibj", overrides={"test_days": "3"}).test_days == 3
    with pytest.raises(ConfigError, match="frames_per_video"):
        generators.generator_params("kth", overrides={"frames": "3"})
    with pytest.raises(ConfigError, match="small, medium"):
        generators.generator_params("kth", "huge")
    with pytest.raises(ConfigError, match="not a valid"):
        generators.generator_params("taxibj", overrides={"test_days": "many"})


def test_invalid_counts_are_config_errors_and_leave_nothing(tmp_path):
    with pytest.raises(ConfigError, match="held_out_digits"):
        generate_dataset("mmnist", tmp_path, overrides={"held_out_digits": "-3"})
    assert list(tmp_path.iterdir()) == []


def test_small_default_sizes_support_every_split(generated_root):
    # the embedded defaults are tiny here; the presets must still give non-empty splits
    sizes = generators.generator_params("kth")
    assert sizes.frames_per_video >= 50                               # kth40 test windows
    assert np.load(generated_root / "moving_mnist" / "mnist_test_seq.npy", mmap_mode="r").shape[1] == 24


def test_the_kth_writer_is_deterministic_by_seed(tmp_path):
    from stcbench.data.generators import kth as kth_gen

    params = kth_gen.KTHParams(persons=2, frames_per_video=3)     # below the usable range: the writer alone
    folders = {name: tmp_path / name for name in "abc"}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        kth_gen.write(folders[name], params, seed)
    assert digest(folders["a"]) == digest(folders["b"]) != digest(folders["c"])


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "mmnist", "--param", "test_sequences=0"], ["test_sequences=0", ">= 1", "default 300"]),
    (["--dataset", "mmnist", "--param", "test_sequences=-5"], ["test_sequences=-5", ">= 1"]),
    (["--dataset", "mmnist", "--param", "held_out_digits=-3"], ["held_out_digits=-3", "0..", "0 = a tenth",
                                                                "default 0"]),
    (["--dataset", "taxibj", "--param", "peak_count=nan"], ["peak_count=nan", "1..1000000"]),
    (["--dataset", "taxibj", "--param", "peak_count=inf"], ["peak_count=inf", "1..1000000"]),
    (["--dataset", "taxibj", "--param", "train_days=1"], ["train_days=1", ">= 2"]),
    (["--dataset", "kth", "--param", "jpeg_quality=500"], ["jpeg_quality=500", "1..100", "default 90"]),
    (["--dataset", "kth", "--param", "persons=3"], ["persons=3", "17..25"]),
    (["--dataset", "kth", "--param", "frames_per_video=10"], ["frames_per_video=10", ">= 30"]),
    (["--dataset", "mmnist", "--seed", "-1"], ["--seed -1", ">= 0"]),
])
def test_out_of_range_parameters_are_refused_up_front(tmp_path, capsys, argv, words):
    from stcbench.cli import main

    root = tmp_path / "data"
    assert main(["data", "generate", "--data-root", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(word in err for word in words), err
    assert "numpy" not in err and "negative dimensions" not in err and "lam value" not in err
    assert not root.exists()


def test_held_out_digits_range_starts_at_its_default():
    allowed = generators.mmnist.param_ranges(generators.generator_params("mmnist"))["held_out_digits"]
    assert allowed.admits(mmnist_gen.MovingMNISTParams().held_out_digits) and not allowed.admits(-1)
