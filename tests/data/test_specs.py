import pytest

from stcbench.data import DATASET_NAMES, get_dataset_spec, resolve_data_root
from stcbench.errors import ConfigError


def test_registry_shapes_frames_and_patch_sizes():
    expected = {  # name: (C, H, W, T_in, T_out, patch, train frames, eval frames)
        "mmnist": (1, 64, 64, 10, 10, 2, 20, 20),
        "taxibj": (2, 32, 32, 4, 4, 1, 8, 8),
        "kth": (1, 128, 128, 10, 20, 4, 30, 30),
        "kth40": (1, 128, 128, 10, 40, 4, 30, 50),
    }
    assert set(DATASET_NAMES) == set(expected)
    for name, values in expected.items():
        spec = get_dataset_spec(name)
        got = (spec.channels, spec.height, spec.width, spec.in_frames, spec.out_frames,
               spec.patch_size, spec.train_frames, spec.total_frames)
        assert got == values, name
        # the patched map is 32x32 for every dataset (network-and-training.md §1.1)
        assert spec.height // spec.patch_size == 32 == spec.width // spec.patch_size


def test_layout_and_published_sizes():
    assert get_dataset_spec("mmnist").files == ("train-images-idx3-ubyte.gz", "mnist_test_seq.npy")
    assert get_dataset_spec("taxibj").files == ("dataset.npz",)
    assert get_dataset_spec("kth40").folder == get_dataset_spec("kth").folder == "kth"
    taxi = get_dataset_spec("taxibj").published
    assert (taxi["openstl_train"], taxi["openstl_test"]) == (20461, 500)
    assert (taxi["stclif_train"], taxi["stclif_test"]) == (19627, 1334)
    assert get_dataset_spec("kth").published["openstl_test"] == 3167


def test_names_are_forgiving_and_unknown_names_list_the_choices():
    assert get_dataset_spec("Moving-MNIST").name == "mmnist"
    assert get_dataset_spec("KTH_40").name == "kth40"
    with pytest.raises(ConfigError) as err:
        get_dataset_spec("cifar")
    assert "cifar" in str(err.value)
    for name in DATASET_NAMES:
        assert name in str(err.value)


def test_data_root_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("STCBENCH_DATA_ROOT", raising=False)
    assert str(resolve_data_root()) == "datasets"
    monkeypatch.setenv("STCBENCH_DATA_ROOT", str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root("") == tmp_path          # a config's default data_root
    assert resolve_data_root("elsewhere").name == "elsewhere"
