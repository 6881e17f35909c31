"""`stcbench evaluate` end to end: .npy pair, .npz, JSON output and every error path (exit 2, no JSON)."""
import json

import numpy as np
import pytest

from stcbench.cli import main
from tests.metrics.helpers import mnist_like, reference_metrics


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    true = mnist_like(rng, (3, 4, 1, 16, 16))
    pred = np.clip(true + rng.normal(0, 0.2, true.shape), -0.2, 1.2).astype(np.float32)
    np.save(tmp_path / "pred.npy", pred)
    np.save(tmp_path / "true.npy", true)
    return pred, true


def _evaluate(tmp_path, *args):
    return main(["evaluate", *map(str, args)])


def test_npy_pair_writes_json_matching_the_reference(tmp_path, arrays, capsys):
    out = tmp_path / "out" / "metrics.json"
    code = _evaluate(tmp_path, "--pred", tmp_path / "pred.npy", "--true", tmp_path / "true.npy",
                     "--out", out, "--batch-size", "2")
    assert code == 0
    printed = capsys.readouterr().out
    assert "per output frame" in printed and "ssim" in printed
    result = json.loads(out.read_text())
    ref = reference_metrics(*arrays)
    assert result["mse"] == pytest.approx(ref["mse"], rel=1e-12)
    assert abs(result["ssim"] - ref["ssim"]) < 1e-6 and abs(result["psnr"] - ref["psnr"]) < 1e-6
    assert len(result["per_frame"]["ssim"]) == 4 and "ssim_dr1" not in result
    assert result["inputs"]["shape"] == [3, 4, 1, 16, 16]
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]


def test_predictions_on_another_scale_are_warned_about(tmp_path, arrays, capsys):
    pred, _ = arrays
    assert _evaluate(tmp_path, "--pred", tmp_path / "pred.npy", "--true", tmp_path / "true.npy") == 0
    assert "warning" not in capsys.readouterr().err
    np.save(tmp_path / "pred255.npy", pred * 255)
    assert _evaluate(tmp_path, "--pred", tmp_path / "pred255.npy", "--true", tmp_path / "true.npy") == 0
    assert "divide them by 255" in capsys.readouterr().err


def test_npz_and_ssim_data_range_one(tmp_path, arrays):
    pred, true = arrays
    np.savez(tmp_path / "both.npz", pred=pred, true=true)
    out = tmp_path / "m.json"
    assert _evaluate(tmp_path, "--pred", tmp_path / "both.npz", "--out", out, "--ssim-data-range", "1.0") == 0
    result = json.loads(out.read_text())
    assert abs(result["ssim_dr1"] - reference_metrics(pred, true, 1.0)["ssim"]) < 1e-6
    assert abs(result["ssim"] - reference_metrics(pred, true, 2.0)["ssim"]) < 1e-6


def test_a_runs_predictions_npz_is_read_as_saved(tmp_path, arrays):
    """A run's predictions.npz holds context, pred and truth: evaluate reads it as it is."""
    pred, true = arrays
    np.savez(tmp_path / "predictions.npz", context=true, pred=pred, truth=true)
    np.savez(tmp_path / "both.npz", pred=pred, true=true)
    out_run, out_pair = tmp_path / "run.json", tmp_path / "pair.json"
    assert _evaluate(tmp_path, "--pred", tmp_path / "predictions.npz", "--out", out_run) == 0
    assert _evaluate(tmp_path, "--pred", tmp_path / "both.npz", "--out", out_pair) == 0
    run, pair = json.loads(out_run.read_text()), json.loads(out_pair.read_text())
    assert run["mse"] == pair["mse"] and run["ssim"] == pair["ssim"]
    assert run["inputs"]["true"].endswith("predictions.npz:truth")


def _bad_cases(tmp_path, pred, true):
    """(name, argv extras, expected message fragment) after writing each broken input."""
    def save(name, array):
        np.save(tmp_path / name, array)
        return tmp_path / name

    good_true = tmp_path / "true.npy"
    nan_pred = pred.copy()
    nan_pred[2, 1, 0, 3, 3] = np.nan
    np.savez(tmp_path / "nokey.npz", prediction=pred, true=true)
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    return [
        ("missing pred", ["--pred", tmp_path / "nope.npy", "--true", good_true], "does not exist"),
        ("missing true", ["--pred", tmp_path / "pred.npy", "--true", tmp_path / "nope.npy"], "does not exist"),
        ("no --true", ["--pred", tmp_path / "pred.npy"], "--true is missing"),
        ("4-D", ["--pred", save("p4.npy", pred[:, :, 0]), "--true", save("t4.npy", true[:, :, 0])], "5-D"),
        ("mismatch", ["--pred", save("short.npy", pred[:, :3]), "--true", good_true], "differs"),
        ("nan", ["--pred", save("nan.npy", nan_pred), "--true", good_true], "sequence 2"),
        ("uint8", ["--pred", save("u8.npy", (pred.clip(0, 1) * 255).astype(np.uint8)), "--true", good_true],
         "dtype uint8"),
        ("range", ["--pred", tmp_path / "pred.npy", "--true", save("t255.npy", true * 255)], "[0, 1]"),
        ("tiny frames", ["--pred", save("p5.npy", pred[..., :5, :5]), "--true", save("t5.npy", true[..., :5, :5])],
         "7x7"),
        ("npz keys", ["--pred", tmp_path / "nokey.npz"], "lacks ['pred']"),
        ("npz plus true", ["--pred", tmp_path / "nokey.npz", "--true", good_true], "drop --true"),
        ("not npy", ["--pred", tmp_path / "garbage.npy", "--true", good_true], "not a readable .npy"),
        ("batch size", ["--pred", tmp_path / "pred.npy", "--true", good_true, "--batch-size", "0"], "--batch-size"),
    ]


def test_every_error_exits_2_with_one_message_and_no_json(tmp_path, arrays, capsys):
    for name, argv, fragment in _bad_cases(tmp_path, *arrays):
        out = tmp_path / f"{name.replace(' ', '_')}.json"
        code = _evaluate(tmp_path, *argv, "--out", out)
        err = capsys.readouterr().err
        assert code == 2, name
        assert fragment in err, (name, err)
        assert err.count("error:") == 1 and "Traceback" not in err, name
        assert not out.exists(), name
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_bad_ssim_data_range_is_rejected_by_the_parser(tmp_path, arrays):
    with pytest.raises(SystemExit) as exc:
        _evaluate(tmp_path, "--pred", tmp_path / "pred.npy", "--true", tmp_path / "true.npy",
                  "--ssim-data-range", "0.5")
    assert exc.value.code == 2
