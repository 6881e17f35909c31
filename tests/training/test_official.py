"""convert-official + predict reproduce the official network's test predictions (float64)."""
import numpy as np
import pytest
import torch

from stcbench.cli import main
from tests.conftest import load_fixture

CELLS = {"lif": "model_lif", "stclif": "model_stclif_gd0"}


def save_official(tmp_path, fixture, wrap=False, prefix=""):
    state = {prefix + k[len("param/"):]: torch.from_numpy(v) for k, v in fixture.items() if k.startswith("param/")}
    obj = {"epoch": 3, "optimizer": {}, "state_dict": state, "scheduler": {}} if wrap else state
    path = tmp_path / "official.pth"
    torch.save(obj, path)
    return path


def context_file(tmp_path, fixture):
    frames = torch.from_numpy(fixture["frames"]).permute(0, 1, 4, 2, 3).numpy()   # [B,T,H,W,C] -> [B,T,C,H,W]
    path = tmp_path / "frames.npy"
    np.save(path, frames)        # all T_total frames: the ones beyond T_in must be ignored
    return path


def convert_args(ref, meta, out, cell):
    return ["convert-official", str(ref), "--cell", cell, "--in-frames", str(meta["pre"]),
            "--out-frames", str(meta["aft"]), "--patch-size", str(meta["patch_size"]),
            "--channels", str(meta["img_channels"]), "--image-size", str(meta["img_hw"]), "-o", str(out)]


@pytest.mark.parametrize("cell, wrap, prefix", [("lif", False, ""), ("lif", True, "module."),
                                                ("stclif", False, "")])
def test_converted_checkpoint_predicts_official_outputs(cell, wrap, prefix, tmp_path):
    fixture = load_fixture(CELLS[cell])
    meta = fixture["meta"]
    ref = save_official(tmp_path, fixture, wrap=wrap, prefix=prefix)
    ckpt = tmp_path / "converted.ckpt"
    assert main(convert_args(ref, meta, ckpt, cell)) == 0
    out = tmp_path / "preds.npy"
    assert main(["predict", str(ckpt), "--input", str(context_file(tmp_path, fixture)), "--output", str(out),
                 "--precision", "64"]) == 0
    preds = np.load(out)
    assert preds.dtype == np.float64 and preds.shape == fixture["test/pred_y"].shape
    np.testing.assert_allclose(preds, fixture["test/pred_y"], rtol=1e-9, atol=1e-9)
    # --out-frames beyond the trained horizon: the first frames are unchanged
    longer = tmp_path / "longer.npy"
    assert main(["predict", str(ckpt), "--input", str(context_file(tmp_path, fixture)), "--output", str(longer),
                 "--precision", "64", "--out-frames", "6"]) == 0
    np.testing.assert_allclose(np.load(longer)[:, :4], preds, rtol=1e-12, atol=1e-12)


def test_convert_rejects_wrong_geometry_and_incomplete_weights(tmp_path, capsys):
    fixture = load_fixture("model_lif")
    meta = fixture["meta"]
    ref = save_official(tmp_path, fixture)
    out = tmp_path / "x.ckpt"
    args = convert_args(ref, meta, out, "lif")
    args[args.index("--patch-size") + 1] = "1"
    assert main(args) == 2
    assert "layer 0 takes 4 input channels" in capsys.readouterr().err
    state = torch.load(ref)
    state["cell_list.0.extra"] = torch.zeros(1)
    torch.save(state, ref)
    assert main(convert_args(ref, meta, out, "lif")) == 2
    assert "unexpected ['cell_list.0.extra']" in capsys.readouterr().err
    del state["cell_list.0.extra"]
    del state["cell_list.1.conv_x.1.bias"]
    torch.save(state, ref)
    assert main(convert_args(ref, meta, out, "lif")) == 2
    assert "missing ['cell_list.1.conv_x.1.bias']" in capsys.readouterr().err
    assert main(["convert-official", str(ref), "--cell", "lif", "-o", str(out)]) == 2
    assert "--dataset NAME" in capsys.readouterr().err
    assert not out.exists()


def test_predict_input_errors_leave_no_output(tmp_path, capsys):
    fixture = load_fixture("model_lif")
    ref = save_official(tmp_path, fixture)
    ckpt = tmp_path / "c.ckpt"
    assert main(convert_args(ref, fixture["meta"], ckpt, "lif")) == 0
    out = tmp_path / "p.npy"
    cases = {
        "expected 5 dimensions": np.zeros((2, 4, 8, 8), np.float32),
        "3 frames per sequence but the model needs 4": np.zeros((2, 3, 1, 8, 8), np.float32),
        "2 channels but the model was trained on 1": np.zeros((2, 4, 2, 8, 8), np.float32),
        "uint8 frames": np.zeros((2, 4, 1, 8, 8), np.uint8),
        "NaN": np.full((2, 4, 1, 8, 8), np.nan, np.float32),
    }
    for message, array in cases.items():
        path = tmp_path / "in.npy"
        np.save(path, array)
        assert main(["predict", str(ckpt), "--input", str(path), "--output", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "none.ckpt"), "--input", str(path), "--output", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".p.npy*"))


def test_a_converted_checkpoint_is_tested_without_an_invented_epoch_or_selection(mmnist_root, tmp_path, capsys):
    """Converted weights carry no epoch and no selection rule of ours: the test says so instead of 'epoch 0, val'."""
    import json

    ref = save_official(tmp_path, load_fixture("model_lif"))
    ckpt = tmp_path / "converted.ckpt"
    assert main(["convert-official", str(ref), "--cell", "lif", "--dataset", "mmnist", "-o", str(ckpt)]) == 0
    out = tmp_path / "tested.json"
    assert main(["test", str(ckpt), "--data-root", str(mmnist_root), "--set", "data.test_samples=2",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "selected on unknown (converted official weights), epoch ?" in printed
    record = json.loads(out.read_text())
    assert record["epochs"] is None and record["scale"] == "official"


def test_predict_reads_a_memory_mapped_input_without_warnings(tmp_path):
    """The input .npy is memory-mapped read-only; each batch is copied, so torch warns of no read-only array."""
    import warnings

    fixture = load_fixture("model_lif")
    ckpt = tmp_path / "converted.ckpt"
    assert main(convert_args(save_official(tmp_path, fixture), fixture["meta"], ckpt, "lif")) == 0
    frames = tmp_path / "frames32.npy"
    context = np.load(context_file(tmp_path, fixture))[:, :int(fixture["meta"]["pre"])]   # the context alone
    np.save(frames, context.astype(np.float32))                      # in the model's dtype: no cast, no copy
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert main(["predict", str(ckpt), "--input", str(frames), "--output", str(tmp_path / "p.npy")]) == 0
