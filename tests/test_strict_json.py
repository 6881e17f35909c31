"""Every JSON stcbench writes is strict: +inf PSNR is the string "inf", never `Infinity`."""
import json
import math

import numpy as np
import pytest

from stcbench.cli import main
from stcbench.strict_json import dumps, number, restore_non_finite


def strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_strict_loads_refuses_the_python_extensions():
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps({"psnr": math.inf}))
    with pytest.raises(ValueError, match="NaN"):
        strict_loads(json.dumps([math.nan]))


def test_evaluate_writes_an_exact_frame_as_inf(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1, (2, 3, 1, 8, 8)).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.1, true.shape), 0, 1).astype(np.float32)
    pred[1, 2] = true[1, 2]                                   # one frame predicted exactly: PSNR +inf
    np.savez(tmp_path / "both.npz", pred=pred, true=true)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--pred", str(tmp_path / "both.npz"), "--out", str(out)]) == 0
    result = strict_loads(out.read_text())
    assert result["psnr"] == "inf" and result["psnr_inf_frames"] == 1
    assert isinstance(result["psnr_finite"], float) and math.isfinite(result["psnr_finite"])
    assert result["per_frame"]["psnr"][2] == "inf" and isinstance(result["per_frame"]["psnr"][0], float)
    assert number(result["psnr"]) == math.inf


def test_run_records_and_report_readers_round_trip(tmp_path):
    from stcbench.reports.runs import load_run
    from stcbench.engine.io import atomic_write_json

    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "r"
    record = {"dataset": "mmnist", "cell": "lif", "test": {"mse": 1.5, "psnr": math.inf, "ssim": np.float64(0.5),
                                                          "per_frame": {"psnr": [30.0, math.inf]}},
              "val": {"mse": math.nan}}
    atomic_write_json(run_dir / "metrics.json", record)
    stored = strict_loads((run_dir / "metrics.json").read_text())
    assert stored["test"]["psnr"] == "inf" and stored["val"]["mse"] == "nan" and stored["test"]["ssim"] == 0.5
    run = load_run(run_dir / "metrics.json")
    assert run.value("test", "psnr") == math.inf and run.value("test", "psnr", frame=1) == math.inf
    assert run.value("test", "mse") == 1.5 and math.isnan(run.value("val", "mse"))


def test_dumps_refuses_what_it_cannot_make_strict_and_restores_numbers():
    assert strict_loads(dumps({"a": [-math.inf, 1.0]}, indent=None)) == {"a": ["-inf", 1.0]}
    assert restore_non_finite({"a": ["-inf", "x", 2]}) == {"a": [-math.inf, "x", 2]}
    assert number("text") is None and number(True) is None and number(3) == 3.0
