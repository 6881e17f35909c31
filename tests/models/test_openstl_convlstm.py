"""`convlstm` (variant reference) reproduces OpenSTL's own ConvLSTM_Model (tests/fixtures/openstl-convlstm).

Float64, with and without `layer_norm`, both execution paths: the train pass on `ims` with the dumped
scheduled-sampling mask and OpenSTL's loss (target not detached), every gradient, and the autoregressive
test pass. OpenSTL's per-cell `conv_o` / `conv_last` are never used by its forward pass: their dumped
gradients are zero and our cell does not build them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stcbench.models import RecurrentPredictor, unpatchify
from tests.conftest import OPENSTL_FIXTURES, assert_close_scaled, load_fixture

FIXTURES = ("model_convlstm", "model_convlstm_ln")
TOL = 1e-9


def openstl_fixture(name: str) -> dict:
    return load_fixture(name, OPENSTL_FIXTURES)


def unused_openstl_parameters(data) -> set[str]:
    return set(data["meta"]["params_without_grad"])


def build_from_fixture(data, fast: bool = False, variant: str = "reference") -> RecurrentPredictor:
    meta = data["meta"]
    spatial = tuple(s // meta["patch_size"] for s in meta["image_size"])
    options = {"layer_norm": True, "norm_spatial": spatial} if meta["layer_norm"] else {}
    model = RecurrentPredictor("convlstm", meta["channels"], meta["hidden"], patch_size=meta["patch_size"],
                               in_frames=meta["pre"], filter_size=meta["filter_size"],
                               cell_options={**options, "variant": variant}, fast=fast).double()
    unused = unused_openstl_parameters(data)
    params = {k.removeprefix("param/"): torch.from_numpy(v) for k, v in data.items()
              if k.startswith("param/") and k.removeprefix("param/") not in unused}
    model.load_state_dict(params, strict=True)
    return model


def train_pass(model, data):
    ims = torch.from_numpy(data["ims"]).requires_grad_(True)
    next_frames = model.forward_patched(ims, torch.from_numpy(data["mask"]))
    loss = model.loss(next_frames, ims, detach_target=False)
    loss.backward()
    return ims, next_frames, loss


@pytest.mark.parametrize("path", ["reference", "fast"])
@pytest.mark.parametrize("name", FIXTURES)
def test_train_pass_outputs_loss_and_every_gradient_match_openstl(name, path):
    data = openstl_fixture(name)
    model = build_from_fixture(data, fast=path == "fast")
    ims, next_frames, loss = train_pass(model, data)
    assert_close_scaled(next_frames, data["train/next_frames"], TOL, TOL, "train/next_frames")
    assert_close_scaled(loss, data["loss"], TOL, TOL, "loss")
    assert_close_scaled(ims.grad, data["grad/ims"], TOL, TOL, "grad/ims")
    ours = dict(model.named_parameters())
    unused = unused_openstl_parameters(data)
    for key in (k for k in data if k.startswith("grad/param/")):
        pname = key.removeprefix("grad/param/")
        if pname in unused:
            assert not np.any(data[key]), f"OpenSTL's unused {pname} got a gradient in the dump"
            assert pname not in ours
            continue
        assert_close_scaled(ours[pname].grad, data[key], TOL, TOL, key)
    assert set(ours) == {k.removeprefix("grad/param/") for k in data if k.startswith("grad/param/")} - unused


@pytest.mark.parametrize("path", ["reference", "fast"])
@pytest.mark.parametrize("name", FIXTURES)
def test_test_pass_matches_openstl(name, path):
    data = openstl_fixture(name)
    meta = data["meta"]
    model = build_from_fixture(data, fast=path == "fast")
    ims = torch.from_numpy(data["ims"])
    zero_mask = torch.zeros_like(torch.from_numpy(data["mask"]))
    with torch.no_grad():
        next_frames = model.forward_patched(ims, zero_mask)
    assert_close_scaled(next_frames, data["test/next_frames"], TOL, TOL, "test/next_frames")
    pred_y = unpatchify(next_frames, meta["patch_size"])[:, -meta["aft"]:].permute(0, 1, 4, 2, 3)
    assert_close_scaled(pred_y, data["test/pred_y"], TOL, TOL, "test/pred_y")
    frames = torch.from_numpy(data["frames"]).permute(0, 1, 4, 2, 3)
    assert_close_scaled(model.predict(frames[:, :meta["pre"]], meta["aft"]), data["test/pred_y"], TOL, TOL, "predict")


@pytest.mark.parametrize("name", FIXTURES)
def test_original_variant_adds_the_forget_bias_openstl_leaves_out(name):
    """Shi et al.'s forget bias of 1 (variant original) predicts other frames than OpenSTL."""
    data = openstl_fixture(name)
    with torch.no_grad():
        ours = build_from_fixture(data, variant="original").forward_patched(
            torch.from_numpy(data["ims"]), torch.from_numpy(data["mask"]))
    assert np.abs(ours.numpy() - data["train/next_frames"]).max() > 1e-3
