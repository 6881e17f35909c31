"""convert-official --cell convlstm imports OpenSTL ConvLSTM checkpoints; predict --precision 64 on the
converted checkpoint reproduces OpenSTL's test predictions (tests/fixtures/openstl-convlstm)."""
import numpy as np
import pytest
import torch

from stcbench.cli import main
from tests.conftest import OPENSTL_FIXTURES, load_fixture

FIXTURES = ("model_convlstm", "model_convlstm_ln")


def openstl_state_dict(fixture) -> dict:
    """The state_dict in OpenSTL's key order, its unused conv_o / per-cell conv_last included."""
    return {k.removeprefix("param/"): torch.from_numpy(v) for k, v in fixture.items() if k.startswith("param/")}


def openstl_latest(state: dict, epoch: int = 3) -> dict:
    """OpenSTL's latest.pth: {'epoch', 'optimizer', 'state_dict', 'scheduler'} of an Adam + OneCycleLR run."""
    params = [torch.nn.Parameter(v.clone()) for v in state.values()]
    optimizer = torch.optim.Adam(params, lr=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-4, total_steps=10, final_div_factor=1e4)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    scheduler.step()
    return {"epoch": epoch, "optimizer": optimizer.state_dict(), "state_dict": state,
            "scheduler": scheduler.state_dict()}


def write_checkpoint(tmp_path, name, fixture, wrap):
    path = tmp_path / f"{name}{'_latest' if wrap else ''}.pth"
    state = openstl_state_dict(fixture)
    torch.save(openstl_latest(state) if wrap else state, path)
    return path


def geometry_args(meta):
    return ["--in-frames", str(meta["pre"]), "--out-frames", str(meta["aft"]), "--patch-size",
            str(meta["patch_size"]), "--channels", str(meta["channels"]), "--image-size",
            "x".join(str(s) for s in meta["image_size"])]


def convert(reference, meta, out):
    return main(["convert-official", str(reference), "--cell", "convlstm", *geometry_args(meta), "-o", str(out)])


def predict(tmp_path, ckpt, fixture) -> np.ndarray:
    frames = tmp_path / "frames.npy"
    np.save(frames, torch.from_numpy(fixture["frames"]).permute(0, 1, 4, 2, 3).numpy())
    out = tmp_path / "preds.npy"
    assert main(["predict", str(ckpt), "--input", str(frames), "--output", str(out), "--precision", "64"]) == 0
    return np.load(out)


def test_openstl_saved_state_dict_converts_and_predicts_openstl_test_outputs(tmp_path, capsys):
    """The .pth as OpenSTL wrote it (torch.save(model.state_dict()))."""
    fixture = load_fixture("model_convlstm", OPENSTL_FIXTURES)
    ckpt = tmp_path / "converted.ckpt"
    assert convert(OPENSTL_FIXTURES / "model_convlstm.pth", fixture["meta"], ckpt) == 0
    printed = capsys.readouterr().out
    unused = fixture["meta"]["params_without_grad"]
    assert f"dropped {len(unused)} weights OpenSTL's ConvLSTM never uses" in printed
    assert all(key in printed for key in unused)
    preds = predict(tmp_path, ckpt, fixture)
    assert preds.dtype == np.float64
    np.testing.assert_allclose(preds, fixture["test/pred_y"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, wrap", [("model_convlstm", True), ("model_convlstm_ln", False),
                                        ("model_convlstm_ln", True)])
def test_plain_and_latest_wrapper_with_and_without_layer_norm(name, wrap, tmp_path):
    fixture = load_fixture(name, OPENSTL_FIXTURES)
    meta = fixture["meta"]
    ckpt = tmp_path / "converted.ckpt"
    assert convert(write_checkpoint(tmp_path, name, fixture, wrap), meta, ckpt) == 0
    stored = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = stored["hyper_parameters"]["config"]["model"]
    assert model["cell"] == "convlstm" and model["num_hidden"] == meta["hidden"]
    assert model["cell_options"] == {"variant": "reference", "layer_norm": bool(meta["layer_norm"])}
    assert sorted(stored["converted_from"]["dropped"]) == sorted(meta["params_without_grad"])
    np.testing.assert_allclose(predict(tmp_path, ckpt, fixture), fixture["test/pred_y"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("key, value, message", [
    ("cell_list.0.extra", torch.zeros(1), "unexpected ['cell_list.0.extra']"),
    ("cell_list.1.conv_o.0.weight", torch.zeros(16, 16, 5, 5), "unexpected ['cell_list.1.conv_o.0.weight']"),
    ("cell_list.0.conv_last.bias", torch.zeros(16), "unexpected ['cell_list.0.conv_last.bias']"),
])
def test_unexpected_keys_are_refused_with_one_line(key, value, message, tmp_path, capsys):
    """Only OpenSTL's unused weights, with their own shapes, are dropped; anything else is refused."""
    fixture = load_fixture("model_convlstm", OPENSTL_FIXTURES)
    state = openstl_state_dict(fixture)
    state[key] = value
    reference = tmp_path / "openstl.pth"
    torch.save(state, reference)
    out = tmp_path / "x.ckpt"
    assert convert(reference, fixture["meta"], out) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".x.ckpt*"))


def test_missing_recurrent_weight_names_the_key(tmp_path, capsys):
    fixture = load_fixture("model_convlstm", OPENSTL_FIXTURES)
    state = openstl_state_dict(fixture)
    del state["cell_list.1.conv_h.0.weight"]
    reference = tmp_path / "openstl.pth"
    torch.save(state, reference)
    assert convert(reference, fixture["meta"], tmp_path / "x.ckpt") == 2
    assert "missing cell_list.1.conv_h.0.weight" in capsys.readouterr().err


def test_spiking_checkpoint_is_not_taken_for_a_convlstm(tmp_path, capsys):
    """An STC-LIF/LIF official checkpoint has no [4C, C, k, k] recurrent convolution."""
    fixture = load_fixture("model_lif")
    state = {k.removeprefix("param/"): torch.from_numpy(v) for k, v in fixture.items() if k.startswith("param/")}
    reference = tmp_path / "lif.pth"
    torch.save(state, reference)
    meta = fixture["meta"]
    args = ["convert-official", str(reference), "--cell", "convlstm", "--in-frames", str(meta["pre"]),
            "--out-frames", str(meta["aft"]), "--patch-size", str(meta["patch_size"]), "--channels",
            str(meta["img_channels"]), "--image-size", str(meta["img_hw"]), "-o", str(tmp_path / "x.ckpt")]
    assert main(args) == 2
    assert "an official spiking model" in capsys.readouterr().err and not (tmp_path / "x.ckpt").exists()


@pytest.mark.parametrize("cell", ["lif", "stclif"])
def test_a_convlstm_checkpoint_is_not_taken_for_a_spiking_cell(tmp_path, capsys, cell):
    args = ["convert-official", str(OPENSTL_FIXTURES / "model_convlstm.pth"), "--cell", cell,
            *geometry_args(load_fixture("model_convlstm", OPENSTL_FIXTURES)["meta"]), "-o", str(tmp_path / "x.ckpt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "an OpenSTL ConvLSTM model" in err and f"pass --cell convlstm instead of --cell {cell}" in err
    assert not (tmp_path / "x.ckpt").exists()


def test_wrong_patch_size_names_the_one_the_weights_fit(tmp_path, capsys):
    """OpenSTL's ConvLSTM configs patch frames differently from the STC-LIF paper configs."""
    fixture = load_fixture("model_convlstm", OPENSTL_FIXTURES)
    args = ["convert-official", str(OPENSTL_FIXTURES / "model_convlstm.pth"), "--cell", "convlstm",
            *geometry_args(fixture["meta"]), "-o", str(tmp_path / "x.ckpt")]
    args[args.index("--patch-size") + 1] = "4"
    assert main(args) == 2
    assert "(these weights fit --patch-size 2)" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()
