"""PLIF `t_m` means different things in the two variants (cells.md §2): the state_dict records
the variant, and loading `t_m` into the other variant warns, naming both and what to do."""
import io
import warnings

import pytest
import torch
from torch import nn

from stcbench.cells import create_cell


def plif(variant, t_m=0.7):
    cell = create_cell("plif", 4, 16, variant=variant)
    with torch.no_grad():
        cell.t_m.fill_(t_m)
    return cell


def load_silently(module, state):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module.load_state_dict(state)


@pytest.mark.parametrize("source, target", [("reference", "original"), ("original", "reference")])
def test_t_m_from_the_other_variant_warns_and_still_loads(source, target):
    cell = plif(target, t_m=0.0)
    with pytest.warns(UserWarning) as record:
        cell.load_state_dict(plif(source).state_dict())
    message = str(record[0].message)
    assert f"from variant={source!r} into a variant={target!r}" in message
    assert f"into a variant={source!r} PLIF" in message and "t_m -> -t_m" in message
    assert cell.t_m.item() == pytest.approx(0.7)


@pytest.mark.parametrize("variant", ["reference", "original"])
def test_same_variant_loads_without_warning(variant):
    cell = plif(variant, t_m=0.0)
    load_silently(cell, plif(variant).state_dict())
    assert cell.t_m.item() == pytest.approx(0.7)


def test_marker_is_metadata_not_a_key_and_survives_torch_save():
    original = plif("original")
    state = original.state_dict()
    assert set(state) == set(plif("reference").state_dict())          # official key set unchanged
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=True)
    load_silently(plif("original", 0.0), restored)
    with pytest.warns(UserWarning, match="from variant='original' into a variant='reference'"):
        plif("reference").load_state_dict(restored)


def test_unmarked_state_dict_is_read_as_official_reference():
    """An official checkpoint has no marker: fine for the reference cell, a warning for the original."""
    official = dict(plif("reference").state_dict())                  # plain dict, no metadata
    load_silently(plif("reference", 0.0), official)
    with pytest.warns(UserWarning, match="without a PLIF variant marker"):
        plif("original").load_state_dict(official)


def test_marker_of_a_nested_cell():
    """In a network the marker sits under the cell's prefix (cell_list.{i})."""
    def net(variant):
        model = nn.Module()
        model.cell_list = nn.ModuleList([create_cell("lif", 4, 16), plif(variant)])
        return model

    state = net("original").state_dict()
    assert state._metadata["cell_list.1"]["plif_variant"] == "original"
    load_silently(net("original"), state)
    with pytest.warns(UserWarning, match="into a variant='reference'"):
        net("reference").load_state_dict(state)


def test_marker_survives_taking_the_network_out_of_a_module_state():
    """Reports load `net.*` out of a Lightning checkpoint: the variant marker must come along."""
    import warnings

    from stcbench.reports.analysis import submodule_state

    outer = nn.Module()
    outer.net = nn.Module()
    outer.net.cell_list = nn.ModuleList([plif("original")])
    state = outer.state_dict()
    inner = submodule_state(state, "net")
    assert set(inner) == {k.removeprefix("net.") for k in state}
    assert inner._metadata["cell_list.0"]["plif_variant"] == "original"
    target = nn.Module()
    target.cell_list = nn.ModuleList([plif("original", t_m=0.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        target.load_state_dict(inner)
    assert float(target.cell_list[0].t_m.detach()) == pytest.approx(0.7)
