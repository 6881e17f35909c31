"""The memory tests compare networks on small tensors: one torch thread keeps them fast and repeatable."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
