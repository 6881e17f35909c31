from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def mmnist_root(tmp_path_factory) -> Path:
    """The embedded Moving MNIST default, generated once per session."""
    from stcbench.data import generate_dataset

    root = tmp_path_factory.mktemp("data")
    generate_dataset("mmnist", root)
    return root
