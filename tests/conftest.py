import json
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "stclif-reference"
OPENSTL_FIXTURES = Path(__file__).parent / "fixtures" / "openstl-convlstm"


def load_fixture(name: str, folder: Path = FIXTURES) -> dict:
    """Arrays of one reference dump (`folder`/<name>.npz, by default tests/fixtures/stclif-reference) plus parsed meta."""
    with np.load(Path(folder) / f"{name}.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


def assert_close_scaled(ours, ref, atol=1e-9, rtol=1e-9, what=""):
    """|ours - ref| <= atol*max(1, max|ref|) + rtol*|ref| (fixture README, step 4)."""
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
    err = np.abs(ours - ref)
    bound = atol * scale + rtol * np.abs(ref)
    worst = float((err - bound).max()) if ref.size else 0.0
    assert worst <= 0, f"{what}: max error {err.max():.3e} exceeds tolerance (scale {scale:.3e})"


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def isolated_registry():
    """Register plugin cells for one test only, so other tests see the registry unchanged; yields a function that
    restores it at once (as in a new process, where no plugin is loaded)."""
    import stcbench.cells as cells_package
    from stcbench.cells import registry

    saved = (dict(registry._REGISTRY), dict(registry._ALIASES), dict(cells_package._LOADED_PLUGINS))

    def restore():
        for target, copy in zip((registry._REGISTRY, registry._ALIASES, cells_package._LOADED_PLUGINS), saved):
            target.clear()
            target.update(copy)
    yield restore
    restore()
