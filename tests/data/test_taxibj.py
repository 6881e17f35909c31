import numpy as np
import pytest
import torch

from stcbench.data import build_splits
from stcbench.data import taxibj
from stcbench.data.generators import taxibj as taxibj_gen
from stcbench.errors import DataError

from .conftest import write_taxibj_by_hand


def test_loader_maps_minus_one_one_to_unit_range(tmp_path):
    arrays = write_taxibj_by_hand(tmp_path, n_train=300, n_test=20)
    splits = build_splits("taxibj", tmp_path)
    sample = splits.test[4]
    assert sample.dtype == torch.float32 and sample.shape == (8, 2, 32, 32)
    expected = np.concatenate([arrays["X_test"][4], arrays["Y_test"][4]]).astype(np.float32)
    np.testing.assert_allclose(sample.numpy(), (expected + 1) / 2, atol=1e-7)
    edges = np.full((1, 4, 2, 32, 32), -1.0), np.full((1, 4, 2, 32, 32), 1.0)
    window = taxibj.TaxiBJWindows(*edges)[0]
    assert float(window[:4].max()) == 0.0 and float(window[4:].min()) == 1.0


def test_validation_tail_with_a_gap_of_seven(tmp_path):
    arrays = write_taxibj_by_hand(tmp_path, n_train=300, n_test=20)
    splits = build_splits("taxibj", tmp_path)
    n_val = taxibj.validation_count(300)                  # 60 = 300 / 5 (small file)
    assert n_val == 60
    assert splits.sizes() == {"train": 300 - 60 - 7, "val": 60, "test": 20}
    first_val = (arrays["X_train"][300 - 60].astype(np.float32) + 1) / 2
    last_train = (arrays["X_train"][300 - 60 - 8].astype(np.float32) + 1) / 2
    np.testing.assert_allclose(splits.val[0][:4].numpy(), first_val, atol=1e-7)
    np.testing.assert_allclose(splits.train[len(splits.train) - 1][:4].numpy(), last_train, atol=1e-7)


def test_published_size_gives_one_thousand_validation_samples():
    assert taxibj.validation_count(20461) == 1000
    fit, held = taxibj.split_indices(20461)
    assert (fit.stop, held.start, held.stop) == (19454, 19461, 20461)
    assert held.start - fit.stop == 7


def test_openstl_test_selection_uses_the_whole_train_split(tmp_path):
    write_taxibj_by_hand(tmp_path, n_train=300, n_test=20)
    splits = build_splits("taxibj", tmp_path, selection="openstl_test", test_samples=10)
    assert splits.sizes() == {"train": 300, "val": 20, "test": 10}


@pytest.mark.parametrize("problem, words", [
    ("range", "expected [-1, 1]"), ("dtype", "float dtype"), ("shape", "[N, 4, 2, 32, 32]"),
    ("keys", "missing keys"), ("nan", "expected [-1, 1]"), ("truncated", "not a readable .npz file"),
    ("text", "it is not a numpy file"), ("objects", "holds Python objects"),
])
def test_bad_files_are_rejected_with_the_file_named(tmp_path, problem, words):
    arrays = write_taxibj_by_hand(tmp_path, n_train=40, n_test=5)
    path = tmp_path / "taxibj" / "dataset.npz"
    if problem == "range":
        arrays["Y_test"][0, 0, 0, 0, 0] = 1.5
    elif problem == "dtype":
        arrays["X_train"] = np.zeros((40, 4, 2, 32, 32), np.int16)
    elif problem == "shape":
        arrays["X_test"] = arrays["X_test"][:, :3]
    elif problem == "keys":
        arrays.pop("Y_train")
    elif problem == "nan":
        arrays["X_train"][3, 0, 0, 0, 0] = np.nan
    np.savez(path, **arrays)
    if problem == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif problem == "text":
        path.write_text("not an npz\n")
    elif problem == "objects":
        np.savez(path, **{**arrays, "X_train": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError) as err:
        build_splits("taxibj", tmp_path)
    assert str(path) in str(err.value) and words in str(err.value) and "allow_pickle" not in str(err.value)


def test_generated_file_format_and_chronological_windows(generated_root):
    with np.load(generated_root / "taxibj" / "dataset.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert sorted(arrays) == sorted(taxibj.KEYS)
    assert arrays["X_train"].shape == (4 * 48 - 7, 4, 2, 32, 32)
    assert arrays["X_test"].shape == (2 * 48 - 7, 4, 2, 32, 32)
    everything = np.concatenate([arrays[k].ravel() for k in taxibj.KEYS])
    assert everything.min() >= -1 and everything.max() <= 1
    assert np.isclose(everything.min(), -1) or np.isclose(everything.max(), 1)
    x, y = arrays["X_train"], arrays["Y_train"]
    np.testing.assert_array_equal(x[1:, :3], x[:-1, 1:])           # stride-1 sliding windows
    np.testing.assert_array_equal(y[:-4], x[4:])                   # targets are the next 4 slots


def test_simulator_has_daily_rhythm_and_commute_direction():
    params = taxibj_gen.TaxiBJParams(train_days=7, test_days=7)
    flows = taxibj_gen.simulate(params, seed=0)                     # [slots, 2, 32, 32]
    total = flows.sum(axis=(1, 2, 3))
    day = 48
    # same hour on consecutive weekdays is far more alike than 6 hours apart
    same_hour = np.corrcoef(total[: 4 * day], total[day: 5 * day])[0, 1]
    assert same_hour > 0.8
    hours = np.arange(len(total)) % day / 2
    assert total[(hours == 8) & (np.arange(len(total)) < 5 * day)].mean() > \
        3 * total[(hours == 3) & (np.arange(len(total)) < 5 * day)].mean()
    # morning: outflow leaves residential cells, inflow reaches business cells; evening reverses
    morning = flows[8 * 2::day][:5].mean(axis=0)
    evening = flows[18 * 2::day][:5].mean(axis=0)
    net_morning = morning[0] - morning[1]
    net_evening = evening[0] - evening[1]
    assert np.corrcoef(net_morning.ravel(), net_evening.ravel())[0, 1] < -0.5


def test_generation_is_deterministic_by_seed(tmp_path):
    a = taxibj_gen.simulate(taxibj_gen.TaxiBJParams(train_days=2, test_days=1), seed=4)
    b = taxibj_gen.simulate(taxibj_gen.TaxiBJParams(train_days=2, test_days=1), seed=4)
    c = taxibj_gen.simulate(taxibj_gen.TaxiBJParams(train_days=2, test_days=1), seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
