import csv
import json

import numpy as np
import pytest
from PIL import Image

from stcbench.reports.report import markdown_to_html, overall_ranking, write_report
from tests.reports.helpers import make_run, video_metrics


def add_predictions(run_dir, seed):
    rng = np.random.default_rng(seed)
    np.savez(run_dir / "predictions.npz", context=rng.random((2, 4, 1, 8, 8), dtype=np.float32),
             truth=rng.random((2, 4, 1, 8, 8), dtype=np.float32), pred=rng.random((2, 4, 1, 8, 8), dtype=np.float32))


def test_report_from_runs_without_checkpoints(tmp_path):
    root = tmp_path / "runs"
    add_predictions(make_run(root, "mmnist", "lif", "a", test=video_metrics(100.0, 200.0, 0.6)), 0)
    add_predictions(make_run(root, "mmnist", "stclif", "b", test=video_metrics(50.0, 150.0, 0.8)), 1)
    make_run(root, "kth", "lif", "k", test=video_metrics(60.0, 500.0, 0.7), test_long=video_metrics(70, 600, 0.65))
    out = tmp_path / "report"
    report = write_report(root, out, suite="quick", html=True, header="Reduced scale.")
    text = report.read_text()
    assert text.startswith("# stcbench report — suite quick") and "Reduced scale." in text
    assert "| stclif | 1.00 | 1 |" in text               # ranking: stclif best on mmnist
    assert "| 1 | stclif | 50 | 150 | 0.8 |" in text       # summary row, rank 1 by MSE
    assert "![Predictions (first test sequence)](figures/mmnist_predictions.png)" in text
    for name in ("mmnist_per_frame_mse.png", "mmnist_predictions.png", "mmnist_predictions.gif",
                 "kth_per_frame_mse.png"):
        assert (out / "figures" / name).stat().st_size > 0
    assert Image.open(out / "figures" / "mmnist_predictions.gif").n_frames == 8
    assert "### Table 2: Moving MNIST" in text and (out / "tables" / "table_11.tex").exists()
    summary = (out / "tables" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("dataset,rank_mse,cell,mse") and len(summary) == 4
    assert "<table>" in (out / "report.html").read_text()
    assert not (out / "analysis").exists()                # no checkpoints: nothing analysed, nothing invented


def test_cached_analysis_is_used(tmp_path):
    root = tmp_path / "runs"
    run_dir = make_run(root, "mmnist", "lif", "a", test=video_metrics(100.0, 200.0, 0.6))
    out = tmp_path / "report"
    (out / "analysis").mkdir(parents=True)
    (out / "analysis" / "mmnist_lif.json").write_text(json.dumps(
        {"run": str(run_dir), "firing_rates": {"0": 0.25, "1": 0.05}, "energy_uj_per_sequence": 1.5,
         "grad_norm_through_time": [1e-3, 1e-2, 1.0]}))
    text = write_report(root, out).read_text()
    assert "figures/mmnist_firing_rates.png" in text and "figures/mmnist_grad_through_time.png" in text
    assert "| 1 | lif | 100 | 200 | 0.6 | 20 | — | — | 0.15 | 1.5 | 1 | baseline | quick, 2 ep | val |" in text


def test_overall_ranking_prefers_cells_with_more_datasets():
    rows = [{"cell": "a", "rank_mse": 1, "mse": 1.0}, {"cell": "b", "rank_mse": 2, "mse": 2.0},
            {"cell": "b", "rank_mse": 1, "mse": 1.0}]
    assert overall_ranking(rows) == [("b", 1.5, 2), ("a", 1.0, 1)]


def test_markdown_to_html_escapes():
    html = markdown_to_html("# T <x>\n| a | b |\n|---|---|\n| 1 | <2> |\n![c](f.png)\n")
    assert "<h1>T &lt;x&gt;</h1>" in html and "<td>&lt;2&gt;</td>" in html and '<img src="f.png"' in html


def test_training_log_curves(tmp_path):
    root = tmp_path / "runs"
    run_dir = make_run(root, "taxibj", "stclif", "a", test=video_metrics(0.5, 19.0, 0.9))
    log = run_dir / "logs" / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    log.write_text("epoch,step,train/loss_step,val/mse,gates/0/A_mean\n0,0,0.5,,1.0\n0,1,0.25,,1.1\n0,1,,0.3,\n")
    text = write_report(root, tmp_path / "out").read_text()
    assert "figures/taxibj_train_loss.png" in text and "figures/taxibj_stclif_gates_training.png" in text
    assert Image.open(tmp_path / "out" / "figures" / "taxibj_train_loss.png").size == (500, 320)


def test_report_aggregates_seeds(tmp_path):
    root = tmp_path / "runs"
    for seed, (lif, stc) in enumerate(((100.0, 50.0), (110.0, 56.0), (120.0, 59.0))):
        make_run(root, "mmnist", "lif", f"lif-{seed}", test=video_metrics(lif, 200.0, 0.6), seed=seed)
        make_run(root, "mmnist", "stclif", f"stc-{seed}", test=video_metrics(stc, 150.0, 0.8), seed=seed)
    out = tmp_path / "report"
    text = write_report(root, out).read_text()
    half = 4.302653 * 10.0 / np.sqrt(3)
    assert f"| 2 | lif | 110 ± {half:.2g} | 200 ± 0 |" in text
    stc_row = next(line for line in text.splitlines() if line.startswith("| 1 | stclif |"))
    assert "| 3 | -55.00 [" in stc_row and "better" in stc_row
    assert "run directories under `../runs`" in text
    with (out / "tables" / "summary.csv").open(newline="") as handle:
        rows = {row["cell"]: row for row in csv.DictReader(handle)}
    lif = rows["lif"]
    assert float(lif["mse"]) == 110.0 and float(lif["mse_ci95"]) == pytest.approx(half) and lif["n"] == "3"
    assert lif["seeds"] == "0 1 2" and lif["mse_vs_lif_verdict"] == "baseline" and lif["mse_vs_lif"] == ""
    stc = rows["stclif"]                                 # the comparison as numbers in columns of their own
    assert float(stc["mse_vs_lif"]) == -55.0 and float(stc["mse_vs_lif_low"]) < -55.0 < float(stc["mse_vs_lif_high"])
    assert stc["mse_vs_lif_verdict"] == "better"


def test_a_half_width_is_shown_to_the_decimals_of_its_mean():
    """Never `178.6 ± 1.3e+02`: the half-width has the mean's decimals."""
    from stcbench.reports.report import _fmt_interval

    assert _fmt_interval({"mse": 178.61, "mse_ci95": 130.2}, "mse") == "178.6 ± 130.2"
    assert _fmt_interval({"ssim": 0.45648, "ssim_ci95": 0.08359}, "ssim") == "0.4565 ± 0.0836"
    assert _fmt_interval({"mse": 5.0, "mse_ci95": 0.2}, "mse") == "5 ± 0.2"
    assert _fmt_interval({"mse": 178.61, "mse_ci95": 0.004}, "mse") == "178.6 ± 0.004"
    assert _fmt_interval({"mse": 178.61, "mse_ci95": 0.0}, "mse") == "178.6 ± 0.0"
    assert _fmt_interval({"mse": 5.0, "mse_ci95": None}, "mse") == "5"


def test_a_resumed_runs_training_log_draws_each_step_once_in_order(tmp_path):
    """An interrupted attempt logged steps that the resumption trained again: the resumption's rows count; the
    tenth resumption comes after the second."""
    from stcbench.reports.report import load_training_log
    from stcbench.reports.runs import Run

    def log(folder, steps):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.csv").write_text("step,train/loss_step\n" + "".join(f"{s},{tag}\n" for s, tag in steps))

    csv_dir = tmp_path / "logs" / "csv"
    log(csv_dir, [(0, 1.0), (10, 0.9), (20, 0.8)])              # interrupted after step 20; last.ckpt at step 10
    log(csv_dir / "resumed-1", [(10, 0.7), (20, 0.6), (30, 0.5)])
    log(csv_dir / "resumed-2", [(40, 0.4)])
    log(csv_dir / "resumed-10", [(50, 0.3)])
    rows = load_training_log(Run(tmp_path, "mmnist", "lif", {}))
    assert [(float(r["step"]), float(r["train/loss_step"])) for r in rows] == [
        (0, 1.0), (10, 0.7), (20, 0.6), (30, 0.5), (40, 0.4), (50, 0.3)]


def test_a_truncated_predictions_file_leaves_the_report_whole(tmp_path, capsys):
    """A run's predictions.npz cut short (a copy interrupted) or not numpy's: the report is written without that
    run's figure, and says why."""
    root = tmp_path / "runs"
    cut = make_run(root, "mmnist", "lif", "a", test=video_metrics(10.0, 1, 0.5))
    odd = make_run(root, "mmnist", "plif", "b", test=video_metrics(11.0, 1, 0.5))
    (cut / "predictions.npz").write_bytes(b"PK\x03\x04 cut short")
    import zipfile

    with zipfile.ZipFile(odd / "predictions.npz", "w") as archive:
        archive.writestr("truth.npy", b"not numpy")
    text = write_report(root, tmp_path / "out").read_text()
    assert any("| lif |" in line for line in text.splitlines()) and "## Moving MNIST" in text
    err = capsys.readouterr().err
    assert f"{cut / 'predictions.npz'} cannot be read" in err and "not numpy arrays" in err
