import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The cell tests use tiny tensors: one intra-op thread avoids thread oversubscription on a
    shared 2-core machine (measured 4-9x faster under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
