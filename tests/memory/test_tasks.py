import gzip
import math
import struct

import numpy as np
import pytest
import torch

from stcbench.errors import ConfigError, DataError
from stcbench.memory import tasks


def test_adding_shapes_markers_and_targets():
    x, y = tasks.make_adding(300, 50, seed=3)
    assert x.shape == (300, 50, 2) and y.shape == (300,)
    assert torch.all(x[..., 1].sum(1) == 2)                        # exactly two marked steps
    assert torch.all((x[..., 0] > 0) & (x[..., 0] < 1))
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(1))


def test_generators_are_deterministic_per_seed():
    a = tasks.make_adding(20, 30, seed=1)
    b = tasks.make_adding(20, 30, seed=1)
    c = tasks.make_adding(20, 30, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert torch.equal(tasks.make_copy(5, 12, seed=4)[0], tasks.make_copy(5, 12, seed=4)[0])
    train = tasks.make_split("adding", "train", 8, seq_len=10, seed=0)[0]
    test = tasks.make_split("adding", "test", 8, seq_len=10, seed=0)[0]
    assert not torch.equal(train, test)                             # splits use separate streams


def test_adding_baseline_matches_formula_statistically():
    _, y = tasks.make_adding(40000, 20, seed=0)
    mse_of_mean_predictor = float(((y - 1.0) ** 2).mean())
    # Var(U1 + U2) = 1/6; standard error of the estimate ~ 0.0007 at n = 40000
    assert abs(mse_of_mean_predictor - tasks.ADDING_BASELINE) < 0.005
    assert tasks.task_spec("adding", 100).baseline == pytest.approx(0.1667, abs=1e-4)


def test_copy_layout_and_baseline_matches_formula_statistically():
    T = 30
    x, y = tasks.make_copy(20000, T, seed=0)
    assert x.shape == (20000, T + 20, 10) and y.shape == (20000, T + 20)
    symbols = x[:, :10].argmax(-1)
    assert torch.all((symbols >= 1) & (symbols <= 8))
    assert torch.all(x[:, 10:T + 10].argmax(-1) == 0) and torch.all(x[:, -10:].argmax(-1) == 9)
    assert torch.equal(y[:, -10:], symbols) and torch.all(y[:, :-10] == 0)
    # the best memoryless predictor uses the empirical class frequencies of each step
    counts = torch.nn.functional.one_hot(y, 10).double().mean(0)          # [T+20, 10]
    log_p = torch.log(counts.clamp_min(1e-12))
    memoryless_ce = float(-(torch.nn.functional.one_hot(y, 10).double() * log_p).sum(-1).mean())
    assert memoryless_ce == pytest.approx(10 * math.log(8) / (T + 20), rel=0.01)
    assert tasks.task_spec("copy", T).baseline == pytest.approx(10 * math.log(8) / (T + 20))
    assert tasks.task_spec("copy", T).steps == T + 20


def test_sklearn_digits_sequences_and_permutation(tmp_path):
    x, y = tasks.make_split("seq_digits", "train", None, seq_len=None, seed=0, data_root=tmp_path)
    xv, _ = tasks.make_split("seq_digits", "val", None, seq_len=None, seed=0, data_root=tmp_path)
    xt, yt = tasks.make_split("seq_digits", "test", 100, seq_len=None, seed=0, data_root=tmp_path)
    assert x.shape[1:] == (64, 1) and xt.shape == (100, 64, 1) and len(xv) > 100
    assert len(x) + len(xv) + len(tasks.load_sklearn_digits("test")[0]) == 1797
    assert set(y.tolist()) == set(range(10)) and float(x.max()) == 1.0
    xp, yp = tasks.make_split("pseq_digits", "train", None, seq_len=None, seed=0, data_root=tmp_path)
    perm = tasks.digit_permutation(64, 0)
    assert torch.equal(xp, x[:, perm]) and torch.equal(yp, y)
    assert tasks.task_spec("seq_digits", None, tmp_path).source == "sklearn"


def write_idx(path, magic, array):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mnist_idx_files_are_used_when_present(tmp_path):
    folder = tmp_path / "moving_mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 7)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 0x803, rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 0x801, np.arange(n) % 10)
    x, y = tasks.make_split("seq_digits", "test", None, seq_len=None, seed=0, data_root=tmp_path)
    assert x.shape == (7, 784, 1) and y.tolist() == list(range(7))
    assert tasks.task_spec("seq_digits", None, tmp_path).steps == 784
    # truncated file -> one clear DataError
    raw = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match="truncated"):
        tasks.make_split("seq_digits", "test", None, seq_len=None, seed=0, data_root=tmp_path)


def test_bad_task_and_missing_mnist(tmp_path):
    with pytest.raises(ConfigError, match="unknown memory task"):
        tasks.task_spec("parity", 10)
    with pytest.raises(DataError, match="missing"):
        tasks.make_split("seq_digits", "test", None, seq_len=None, seed=0, data_root=tmp_path, source="mnist")
