"""The fast path gives the same outputs, traces and ALL gradients as the reference loop (float64)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from stcbench.errors import ConfigError
from stcbench.models import RecurrentPredictor, ScheduledSampling, build_predictor, count_parameters
from stcbench.training.config import ModelConfig
from tests.conftest import assert_close_scaled

CASES = {
    "lif": ("lif", {}),
    "stclif_gd0": ("stclif", {"gradient_detach": 0}),
    "stclif_gd1": ("stclif", {"gradient_detach": 1}),
    "stclmh_gd1": ("stclmh", {"gradient_detach": 1}),
    "stc_tclif": ("stc_tclif", {}),             # a circuit cell without a fused step: the generic step, fused gates
    "stcplif_gd0": ("stcplif", {"gradient_detach": 0}),
    "stclif_self": ("stclif", {"circuit_groups": "self", "circuit_spatial": (4, 4)}),
    "tclif": ("tclif", {}),
    "glif": ("glif", {}),
    "convlstm": ("convlstm", {}),
}


def make_pair(cell, options, in_frames=4, seed=0):
    torch.manual_seed(seed)
    ref = RecurrentPredictor(cell, 1, (16, 16), patch_size=2, in_frames=in_frames, cell_options=options,
                             fast=False).double()
    fast = RecurrentPredictor(cell, 1, (16, 16), patch_size=2, in_frames=in_frames, cell_options=options,
                              fast=True).double()
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def run_train(model, frames, mask):
    frames = frames.clone().requires_grad_(True)
    out, traces = model(frames, mask, return_traces=True)
    loss = model.loss(out, frames, detach_target=False)
    loss.backward()
    grads = {name: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
             for name, p in model.named_parameters()}
    return out, traces, frames.grad, grads


@pytest.mark.parametrize("mask_kind", ["sampled", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_equals_reference(case, mask_kind):
    ref, fast = make_pair(*CASES[case])
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 8, 1, 8, 8, generator=gen, dtype=torch.float64)
    mask = ScheduledSampling(start_value=0.5, decay_rate=0.0).mask(2, 3, generator=gen, dtype=torch.float64)
    mask = mask if mask_kind == "sampled" else None
    out_r, traces_r, gin_r, grads_r = run_train(ref, frames, mask)
    out_f, traces_f, gin_f, grads_f = run_train(fast, frames, mask)
    assert_close_scaled(out_f, out_r.detach(), what="next_frames")
    assert traces_r.keys() == traces_f.keys()
    spike_total = 0.0
    for key in traces_r:
        if key.endswith("/spike"):
            assert torch.equal(traces_f[key], traces_r[key]), key
            spike_total += float(traces_r[key].sum())
        else:
            assert_close_scaled(traces_f[key], traces_r[key], what=key)
    if ref.cell_list[0].spiking:
        assert spike_total > 0, "the test network must spike to be meaningful"
    assert_close_scaled(gin_f, gin_r, what="grad/frames")
    assert grads_r.keys() == grads_f.keys()
    for name in grads_r:
        assert_close_scaled(grads_f[name], grads_r[name], what=f"grad/{name}")


def _assert_train_pass_equal(ref, fast, mask=None):
    frames = torch.rand(2, 8, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out_r, _, gin_r, grads_r = run_train(ref, frames, mask)
    out_f, _, gin_f, grads_f = run_train(fast, frames, mask)
    assert_close_scaled(out_f, out_r.detach(), what="next_frames")
    assert_close_scaled(gin_f, gin_r, what="grad/frames")
    for name in grads_r:
        assert_close_scaled(grads_f[name], grads_r[name], what=f"grad/{name}")


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("case", ["lif", "stclif_gd0", "stclmh_gd1"])
def test_fast_path_in_nchw_order_equals_reference(case, recompute):
    """NCHW feature maps (the fast path's GPU default, with kept activations) on the same numbers."""
    ref, fast = make_pair(*CASES[case])
    fast.channels_last, fast.recompute = False, recompute
    _assert_train_pass_equal(ref, fast)


def test_compiled_step_equals_reference():
    """model.compile: torch.compile of each layer's step after its input convolution."""
    ref, fast = make_pair(*CASES["stc_tclif"])
    fast.compile_step = True
    mask = ScheduledSampling(start_value=0.5, decay_rate=0.0).mask(2, 3, generator=torch.Generator().manual_seed(3),
                                                                   dtype=torch.float64)
    _assert_train_pass_equal(ref, fast, mask)
    assert set(fast._compiled_dynamics) == {0, 1}       # compiled once per layer, kept on the model


@pytest.mark.parametrize("case", ["lif", "stclif_gd0"])
def test_fast_path_without_recompute_equals_reference(case):
    ref, fast = make_pair(*CASES[case])
    fast.recompute = False
    _assert_train_pass_equal(ref, fast)


@pytest.mark.parametrize("fast", [False, True])
def test_predict_runs_any_horizon_and_matches_autoregressive_forward(fast):
    torch.manual_seed(0)
    model = RecurrentPredictor("lif", 1, (16,), patch_size=2, in_frames=3, fast=fast).double()
    frames = torch.rand(2, 9, 1, 8, 8, dtype=torch.float64)
    long = model.predict(frames[:, :3], 6)
    assert long.shape == (2, 6, 1, 8, 8)
    with torch.no_grad():
        full = model(frames, None)                 # future inputs are the model's own predictions
    assert_close_scaled(long, full[:, -6:], what="predict vs forward")
    assert_close_scaled(model.predict(frames, 2), long[:, :2], what="shorter horizon is a prefix")


def test_mask_ones_is_teacher_forcing():
    """mask = 1 feeds the ground truth; the future then depends on the future frames."""
    torch.manual_seed(0)
    model = RecurrentPredictor("lif", 1, (16,), patch_size=2, in_frames=2).double()
    frames = torch.rand(1, 5, 1, 8, 8, dtype=torch.float64)
    changed = frames.clone()
    changed[:, 3] = 1.0 - changed[:, 3]
    ones, zeros = torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    with torch.no_grad():
        assert not torch.allclose(model(frames, ones)[:, 3], model(changed, ones)[:, 3])
        assert torch.equal(model(frames, zeros), model(changed, zeros))
        assert torch.equal(model(frames, zeros), model(frames, None))


def test_state_dict_names_follow_official_network():
    model = RecurrentPredictor("lif", 1, (16, 32), patch_size=2, in_frames=2)
    names = set(model.state_dict())
    assert names == {"cell_list.0.conv_x.0.weight", "cell_list.0.conv_x.1.weight", "cell_list.0.conv_x.1.bias",
                     "cell_list.1.conv_x.0.weight", "cell_list.1.conv_x.1.weight", "cell_list.1.conv_x.1.bias",
                     "conv_last.weight"}
    assert model.state_dict()["conv_last.weight"].shape == (4, 32, 1, 1)
    assert model.state_dict()["cell_list.1.conv_x.0.weight"].shape == (32, 16, 5, 5)


@pytest.mark.parametrize("cell,dataset,expected", [
    ("lif", (1, 2), 3_304_960), ("lif", (2, 1), 3_291_648), ("lif", (1, 4), 3_384_832),
    ("stclif", (1, 2), 3_922_432), ("glif", (1, 2), 3_311_104), ("tclif", (1, 2), 3_304_975),
])
def test_parameter_counts_match_spec(cell, dataset, expected):
    channels, patch = dataset
    model = RecurrentPredictor(cell, channels, (256, 256, 256), patch_size=patch, in_frames=10)
    assert count_parameters(model) == expected


def mmnist_like(**changes):
    """The Moving MNIST geometry with some fields changed (a DatasetSpec, as a run passes it)."""
    from stcbench.data import get_dataset_spec

    return dataclasses.replace(get_dataset_spec("mmnist"), **changes)


def test_build_predictor_from_config_section():
    model = build_predictor(ModelConfig(cell="LIF", num_hidden=[16, 16]), mmnist_like())
    assert model.patch_size == 2 and model.num_hidden == [16, 16] and model.frame_channels == 4
    assert not model.fast and model.conv_algorithm == "auto" and not model.compile_step
    assert model.fast_settings("cpu") == ("circuit cells", True)   # recompute: circuit cells on the CPU
    assert model.fast_settings("cuda") == (False, False)
    model = build_predictor(ModelConfig(cell="lif", num_hidden=[16], fast=True, recompute=False, channels_last=True,
                                        conv_algorithm="direct", compile=True), mmnist_like())
    assert model.fast and model.conv_algorithm == "direct" and model.compile_step
    assert model.fast_settings("cpu") == (False, True) and model.fast_settings("cuda") == (False, True)
    with pytest.raises(ConfigError, match="model.cell is missing"):
        build_predictor(ModelConfig(cell=""), mmnist_like())


def test_build_predictor_sets_the_self_connection_map_size():
    """circuit_groups: self has one weight per neuron: the builder passes the patched map size."""
    spec = mmnist_like(height=64, width=48)
    model = build_predictor(ModelConfig(cell="stclif", num_hidden=[16], cell_options={"circuit_groups": "self"}), spec)
    assert model.cell_list[0].conv_h.weight.shape == (16, 32, 24)
    model = build_predictor(ModelConfig(cell="stclif", num_hidden=[16], patch_size=4,
                                        cell_options={"circuit_groups": "self"}), spec)
    assert model.cell_list[0].conv_v.weight.shape == (16, 16, 12)
    chosen = build_predictor(ModelConfig(cell="stclif", num_hidden=[16],
                                         cell_options={"circuit_groups": "self", "circuit_spatial": [8, 8]}), spec)
    assert chosen.cell_list[0].conv_h.weight.shape == (16, 8, 8)               # the user's value wins
    grouped = build_predictor(ModelConfig(cell="stclif", num_hidden=[16]), spec)
    assert "circuit_spatial" not in grouped.cell_options


def test_build_predictor_sets_glif_original_time_steps():
    """GLIF original has a time-wise conduct [T_c, C]; T_c = T_in + T_out - 1 of training."""
    def conduct_rows(cell_options, spec=mmnist_like(out_frames=20, height=16, width=16)):
        model = build_predictor(ModelConfig(cell="glif", num_hidden=[16], cell_options=cell_options), spec)
        return model.cell_list[0].glif.conduct.shape[0]

    assert conduct_rows({"variant": "original"}) == 29
    assert conduct_rows({"variant": "original", "time_steps": 5}) == 5            # the user's value wins
    assert conduct_rows({}) == 1                                                 # reference: [1, C]
    kth40 = mmnist_like(out_frames=40, train_out_frames=20, height=16, width=16)  # trained 10->20
    assert conduct_rows({"variant": "original"}, kth40) == 29
    model = build_predictor(ModelConfig(cell="stc_glif", num_hidden=[16], cell_options={"variant": "original"}),
                            mmnist_like(out_frames=20))
    assert model.cell_list[0].glif.conduct.shape == (29, 16)


def test_bad_inputs_raise_clear_errors():
    model = RecurrentPredictor("lif", 1, (16,), patch_size=2, in_frames=3)
    with pytest.raises(ConfigError, match=r"frames must be \[B,T,1,H,W\]"):
        model(torch.zeros(1, 5, 3, 8, 8))
    with pytest.raises(ConfigError, match="mask must be"):
        model(torch.zeros(2, 5, 1, 8, 8), torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="context has 2 frames"):
        model.predict(torch.zeros(1, 2, 1, 8, 8), 4)
    with pytest.raises(ConfigError, match="num_hidden"):
        RecurrentPredictor("lif", 1, (), patch_size=2)


def test_build_predictor_sets_celif_te_steps_and_map_sizes():
    """CE-LIF's temporal encoding has T_in + T_out - 1 rows (19 MMNIST, 7 TaxiBJ, 29 KTH), and options that
    need the patched map size get it from the dataset."""
    from stcbench.data import get_dataset_spec

    def te_shape(dataset, **options):
        model = build_predictor(ModelConfig(cell="celif", num_hidden=[16], cell_options=options),
                                get_dataset_spec(dataset))
        return tuple(model.cell_list[0].te.shape)

    assert te_shape("mmnist") == (19, 16)
    assert te_shape("taxibj") == (7, 16)
    assert te_shape("kth") == (29, 16)
    assert te_shape("kth40") == (29, 16)                                           # trained 10->20
    assert te_shape("taxibj", te_steps=3) == (3, 16)                              # the user's value wins
    assert te_shape("mmnist", te_granularity="neuron") == (19, 16, 32, 32)         # 64 / patch 2
    lstm = build_predictor(ModelConfig(cell="convlstm", num_hidden=[16], cell_options={"layer_norm": True}),
                           get_dataset_spec("taxibj"))
    assert lstm.cell_list[0].conv_x[-1].normalized_shape[-2:] == (32 // get_dataset_spec("taxibj").patch_size,) * 2


def test_default_recompute_on_the_cpu_is_for_circuit_cells_only():
    from stcbench.cells import create_cell
    from stcbench.models.fastpath import CIRCUIT_CELLS, LayerRunner

    assert not LayerRunner(create_cell("lif", 4, 16), CIRCUIT_CELLS, True).recompute
    assert not LayerRunner(create_cell("convlstm", 4, 16), CIRCUIT_CELLS, True).recompute   # its conv_h is no circuit
    assert LayerRunner(create_cell("stc_tclif", 4, 16), CIRCUIT_CELLS, True).recompute
    assert LayerRunner(create_cell("lif", 4, 16), True, True).recompute       # forced
