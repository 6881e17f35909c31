import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from stcbench.cli import main
from stcbench.commands import bench
from stcbench.errors import ConfigError
from stcbench.reports.suites import execute, plan_suite
from tests.reports.helpers import video_metrics


@pytest.fixture
def configs(tmp_path):
    root = tmp_path / "configs"
    (root / "quick").mkdir(parents=True)
    for dataset in ("mmnist", "taxibj", "kth"):
        (root / "quick" / f"{dataset}.yaml").write_text(f"data:\n  dataset: {dataset}\n")
    (root / "mmnist").mkdir()
    (root / "mmnist" / "lif.yaml").write_text("data:\n  dataset: mmnist\n")
    return root


class FakeRunner:
    """Writes what the training runner writes for a finished run (metrics.json, checkpoints,
    predictions.npz of `run.predictions_limit` sequences); records the calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, planned):
        self.calls.append((planned.dataset, planned.cell, planned.seed))
        o = planned.overrides
        run_dir = Path(o["run.output_dir"]) / planned.dataset / planned.cell / o["run.name"]
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for name in ("best.ckpt", "last.ckpt"):
            (run_dir / "checkpoints" / name).write_bytes(b"weights")
        rng = np.random.default_rng(len(self.calls))
        frames = {key: rng.random((o["run.predictions_limit"], 4, 1, 8, 8), dtype=np.float32)
                  for key in ("context", "truth", "pred")}
        np.savez_compressed(run_dir / "predictions.npz", **frames)
        metrics = {"dataset": planned.dataset, "cell": planned.cell, "scale": o["run.scale"], "epochs": 1,
                   "selected_on": "val", "best_checkpoint": "checkpoints/best.ckpt",
                   "test": video_metrics(10.0 + len(self.calls), 20.0, 0.5)}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        return run_dir


def args_for(tmp_path, configs, **extra):
    values = dict(suite="quick", cells=["lif", "convlstm"], datasets=["mmnist", "taxibj"], tasks=None, seeds=None,
                  out=tmp_path / "bench", data_root=tmp_path / "data", configs=configs, scale=None, overrides=[],
                  dry_run=False, no_report=True, html=False, tag="", keep_checkpoints=None, reference_loop=False)
    values.update(extra)
    return argparse.Namespace(**values)


def test_plan_matrix_and_overrides(tmp_path, configs):
    planned = plan_suite("quick", cells=["LIF", "conv_lstm"], datasets=["mmnist", "kth"], seeds=[1, 2],
                         out=tmp_path / "b", data_root=tmp_path / "d", configs_root=configs,
                         extra_overrides={"trainer.max_epochs": 1})
    assert [(p.dataset, p.cell, p.seed) for p in planned] == [
        ("mmnist", "lif", 1), ("mmnist", "lif", 2), ("mmnist", "convlstm", 1), ("mmnist", "convlstm", 2),
        ("kth", "lif", 1), ("kth", "lif", 2), ("kth", "convlstm", 1), ("kth", "convlstm", 2)]
    first = planned[0]
    assert first.config_path == configs / "quick" / "mmnist.yaml"
    assert first.overrides["model.cell"] == "lif" and first.overrides["seed"] == 1
    assert first.overrides["data.generate_if_missing"] is True
    assert first.overrides["data.data_root"] == str(tmp_path / "d")
    assert first.overrides["trainer.max_epochs"] == 1
    assert first.overrides["run.name"] == "quick-lif-seed1"
    # a --set that changes the size makes the runs `custom`, as fit labels them (once the configs are resolved);
    # other --set, or a size the suite's config has anyway, keep the suite's label
    from stcbench.reports.suites import check_configs
    from stcbench.training.config import resolve_config

    shipped_epochs = resolve_config(configs / "quick" / "mmnist.yaml").trainer.max_epochs
    assert shipped_epochs != 1
    for extra, label in (({"trainer.max_epochs": 1}, "custom"), ({"optim.lr": 0.01}, "quick"),
                         ({"trainer.max_epochs": shipped_epochs}, "quick"),
                         ({"data.batch_size": 2, "run.scale": "mine"}, "mine"),
                         ({"data.batch_size": 2, "run.scale": "quick"}, "quick")):
        (again,) = plan_suite("quick", cells=["lif"], datasets=["mmnist"], seeds=[1], out=tmp_path / "b",
                              configs_root=configs, extra_overrides=extra)
        check_configs([again])
        assert again.overrides["run.scale"] == label
        assert again.resized == (["trainer.max_epochs"] if label == "custom" else [])


def test_plan_errors(tmp_path, configs):
    with pytest.raises(ConfigError, match="use --datasets kth"):
        plan_suite("quick", cells=["lif"], datasets=["kth40"], configs_root=configs)
    with pytest.raises(ConfigError, match=r"configs.*taxibj.*lif\.yaml.*does not exist"):
        plan_suite("paper", cells=["lif"], datasets=["taxibj"], configs_root=configs)
    with pytest.raises(ConfigError, match="unknown cell"):
        plan_suite("quick", cells=["nosuchcell"], configs_root=configs)


def test_dry_run_prints_plan_and_runs_nothing(tmp_path, configs, capsys):
    fake = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, dry_run=True), fit=fake) == 0
    out = capsys.readouterr().out
    assert "suite quick: 4 runs" in out and out.count("[to run]") == 4
    assert "taxibj  convlstm" in out
    assert fake.calls == [] and not (tmp_path / "bench").exists()


def test_collect_with_no_finished_run_says_so_and_writes_nothing(tmp_path, configs, capsys):
    fake = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, collect=True, no_report=False), fit=fake) == 0
    out = capsys.readouterr().out
    assert "no planned run has finished" in out and "no tables or report written" in out
    assert fake.calls == [] and not (tmp_path / "bench" / "report.md").exists()


def test_a_finished_run_on_other_data_is_refused_not_skipped(tmp_path, configs):
    """A finished run whose record names other data than --data-root holds is not taken for this plan's run."""
    import yaml

    from stcbench.data.checksum import dataset_checksum

    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], overrides=["trainer.max_epochs=1"])
    assert bench.run(args, fit=fake) == 0
    run_dir = next((tmp_path / "bench" / "runs" / "mmnist" / "lif").iterdir())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 1}, "seed": 42}))
    (tmp_path / "data" / "moving_mnist").mkdir(parents=True)
    (tmp_path / "data" / "moving_mnist" / "mnist_test_seq.npy").write_bytes(b"these frames")
    here = dataset_checksum("mmnist", tmp_path / "data")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for recorded, refused in ((here, False), ("sha256:" + "0" * 64, True)):
        (run_dir / "metrics.json").write_text(json.dumps({**metrics, "data": {"checksum": recorded}}))
        if refused:
            with pytest.raises(ConfigError, match=r"was trained on other data \(sha256:000"):
                bench.run(args, fit=fake)
            assert bench.run(argparse.Namespace(**{**vars(args), "collect": True}), fit=fake) == 0   # tables only
        else:
            assert bench.run(args, fit=fake) == 0
    assert len(fake.calls) == 1


def test_a_finished_run_of_another_setting_is_refused_not_skipped(tmp_path, configs, capsys):
    """A run of the plan's name trained with other settings (here 1 epoch, the plan says 3) is not taken for it."""
    import yaml

    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], overrides=["trainer.max_epochs=1"])
    assert bench.run(args, fit=fake) == 0
    run_dir = next((tmp_path / "bench" / "runs" / "mmnist" / "lif").iterdir())
    seed = int(run_dir.name.rsplit("seed", 1)[1])
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 1}, "seed": seed,
                                                         "run": {"output_dir": "elsewhere"}}))
    assert bench.run(args, fit=fake) == 0              # the same setting: skipped (the run folder aside)
    assert len(fake.calls) == 1
    with pytest.raises(ConfigError, match=r"another setting \(trainer.max_epochs: 1 there, 3 here\).*the flags it "
                                          r"was run with \(--set trainer.max_epochs=1\)"):
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], overrides=["trainer.max_epochs=3"],
                           dry_run=True), fit=fake)
    assert len(fake.calls) == 1


def test_a_run_folder_of_another_seed_is_not_taken_for_the_plans_seed(tmp_path, configs, capsys):
    """A seed's folder copied to the name of another planned seed is refused, not skipped as that seed's run."""
    import shutil

    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], seeds=[0, 1])
    assert bench.run(args, fit=fake) == 0
    folder = tmp_path / "bench" / "runs" / "mmnist" / "lif"
    seed1 = next(p for p in folder.iterdir() if p.name.endswith("seed1"))
    (seed1 / "config.yaml").write_text("seed: 1\n")                # what a run of seed 1 records
    shutil.copytree(seed1, folder / seed1.name.replace("seed1", "seed2"))
    calls = len(fake.calls)
    with pytest.raises(ConfigError, match=r"seed2 holds a run of seed 1, not of the plan's seed 2 .*move that folder "
                                          r"away"):
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], seeds=[0, 1, 2], dry_run=True),
                  fit=fake)
    assert len(fake.calls) == calls


def test_an_interrupted_run_of_another_setting_is_refused_not_resumed(tmp_path, configs):
    """An earlier attempt that left last.ckpt and config.yaml is resumed only with the setting it was started with."""
    import yaml

    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], overrides=["optim.lr=0.005"])
    run = plan_suite("quick", cells=["lif"], datasets=["mmnist"], seeds=None, out=tmp_path / "bench",
                           configs_root=configs)[0]
    run_dir = tmp_path / "bench" / "runs" / "mmnist" / "lif" / run.name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"optim": {"lr": 0.005}}))
    fake = FakeRunner()
    with pytest.raises(ConfigError, match=r"the interrupted run .* another setting \(optim.lr: 0.005 there, 0.05 "
                                          r"here\); bench would resume it"):
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], overrides=["optim.lr=0.05"]),
                  fit=fake)
    assert fake.calls == []
    assert bench.run(args, fit=fake) == 0 and len(fake.calls) == 1      # the same setting: resumed


def test_cli_dry_run(tmp_path, configs, capsys):
    assert main(["bench", "--suite", "paper", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
                 "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert "configs/mmnist/lif.yaml" in capsys.readouterr().out
    assert main(["bench", "--suite", "quick", "--datasets", "kth40", "--configs", str(configs), "--dry-run"]) == 2


def test_cli_lists_take_commas_or_spaces(tmp_path, configs, capsys):
    """`--cells lif,stclif` (as `demo --cells` takes them) is the same as `--cells lif stclif`."""
    outputs = []
    for cells in (["lif,stclif"], ["lif", "stclif"], ["lif,", "stclif"]):
        assert main(["bench", "--suite", "quick", "--cells", *cells, "--datasets", "mmnist", "--seeds", "1,2",
                     "--configs", str(configs), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].count("[to run]") == 4 and "stclif" in outputs[0] and "seed 2" in outputs[0]


def test_finished_runs_are_skipped(tmp_path, configs, capsys):
    fake = FakeRunner()
    assert bench.run(args_for(tmp_path, configs), fit=fake) == 0
    assert len(fake.calls) == 4
    # an interrupted run (no metrics.json) is run again; finished ones are not
    unfinished = tmp_path / "bench" / "runs" / "taxibj" / "convlstm" / "quick-convlstm-seed42"
    (unfinished / "metrics.json").unlink()
    (unfinished / "metrics.json").with_name("checkpoints").mkdir(exist_ok=True)
    again = FakeRunner()
    assert bench.run(args_for(tmp_path, configs), fit=again) == 0
    assert again.calls == [("taxibj", "convlstm", 42)]
    assert capsys.readouterr().out.count(": finished") == 3
    planned = plan_suite("quick", cells=["lif", "convlstm"], datasets=["mmnist", "taxibj"],
                         out=tmp_path / "bench", configs_root=configs)
    assert all(p.done for p in planned)
    assert execute(planned, fit=again, log=lambda _: None)["skipped"] == planned


def memory_record(run, loss: float) -> Path:
    """What a finished memory run leaves: its metrics.json (a fake fit for the suite's plan)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "metrics.json").write_text(json.dumps({
        "task": "memory", "memory_task": run.dataset, "seq_len": 100, "cell": run.cell, "recurrent": False,
        "seed": run.seed, "scale": "quick", "baseline": 0.5, "test": {"loss": loss}, "params": 10, "epochs": 6,
        "gradient_norm": [1.0, 2.0], "gradient_share": [0.25, 0.75], "history": [{"step": 10, "val/loss": 0.4}]}))
    return run.run_dir


def test_memory_suite_plans_each_tasks_shipped_config_over_cells_and_seeds(tmp_path, configs):
    calls = []

    def fit(run):
        calls.append((run.config_path.name, run.cell, run.seed, run.run_dir.relative_to(tmp_path / "bench" / "runs")))
        return memory_record(run, 0.1)

    args = args_for(tmp_path, configs, suite="memory", datasets=None, tasks=["adding", "copy"], cells=["lif", "celif"])
    assert bench.run(args, fit=fit) == 0
    assert [(name, cell, seed, str(path)) for name, cell, seed, path in calls] == [
        ("quick_adding.yaml", "lif", 42, "memory/adding_T100/lif/seed42"),
        ("quick_adding.yaml", "celif", 42, "memory/adding_T100/celif/seed42"),
        ("quick_copy.yaml", "lif", 42, "memory/copy_T100/lif/seed42"),
        ("quick_copy.yaml", "celif", 42, "memory/copy_T100/celif/seed42")]
    from stcbench.memory.suite import cell_overrides

    assert cell_overrides("celif", "copy", 100) == {"model.cell_options.beta": 0.99}      # CE-LIF Table 5
    assert cell_overrides("celif", "adding", 100) == cell_overrides("lif", "copy", 100) == {}
    with pytest.raises(ConfigError, match="--tasks"):
        bench.run(args_for(tmp_path, configs, tasks=["adding"]))


def test_memory_suite_writes_the_summary_over_seeds(tmp_path, configs, capsys):
    args = args_for(tmp_path, configs, suite="memory", datasets=None, tasks=["adding"], cells=["celif"],
                    seeds=[0, 1], baseline="lif", no_report=False)
    assert bench.run(args, fit=lambda run: memory_record(run, (0.10, 0.12)[run.seed])) == 0
    plan = capsys.readouterr().out                   # the plan comes first, also when training
    assert plan.startswith("suite memory, scale quick: 2 runs") and "[to run] adding celif seed 1" in plan
    summary = (tmp_path / "bench" / "memory_summary.md").read_text()
    assert "| adding T=100 | quick, 6 ep | celif | 2 | 0.220 ± 0.254 | below the baseline |" in summary
    figures = sorted(p.name for p in (tmp_path / "bench").glob("*.png"))
    assert figures == ["gradient_through_time_adding.png", "learning_curves.png", "memory_curves.png"]
    stale = tmp_path / "bench" / "gradient_through_time_copy.png"      # of an earlier call with the copy task
    stale.write_bytes(b"old")
    # the summary covers what the suite call tabled (memory_results.json), not every run in the folder
    (tmp_path / "bench" / "memory_results.json").write_text(json.dumps(
        {"runs": [{"run_dir": "memory/adding_T100/celif/seed0"}]}))
    from stcbench.commands.bench import write_memory_summary

    write_memory_summary(tmp_path / "bench", "lif")
    assert "| adding T=100 | quick, 6 ep | celif | 1 | 0.200 |" in (tmp_path / "bench" / "memory_summary.md").read_text()
    assert not stale.exists()          # every figure left in the folder shows the runs of the table
    with pytest.raises(ConfigError, match="--baseline 'nosuchcell' is no registered cell"):
        bench.run(args_for(tmp_path / "b2", configs, suite="memory", datasets=None, baseline="nosuchcell"),
                  fit=lambda run: pytest.fail("trained despite a bad --baseline"))


def test_paper_suite_defaults_to_cells_with_a_paper_config(tmp_path, configs):
    planned = plan_suite("paper", datasets=["mmnist", "taxibj"], out=tmp_path / "b", configs_root=configs)
    assert [(p.dataset, p.cell, p.config_path.name) for p in planned] == [("mmnist", "lif", "lif.yaml")]
    assert planned[0].overrides["run.scale"] == "paper" and "data.generate_if_missing" not in planned[0].overrides


def test_tagged_variant_does_not_collide_with_the_default_run(tmp_path, configs):
    fake = FakeRunner()
    bench.run(args_for(tmp_path, configs, cells=["stclif"], datasets=["mmnist"]), fit=fake)
    variant = args_for(tmp_path, configs, cells=["stclif"], datasets=["mmnist"], tag="groups1",
                       overrides=["model.cell_options.circuit_groups=1"])
    bench.run(variant, fit=fake)
    assert len(fake.calls) == 2
    names = sorted(p.name for p in (tmp_path / "bench" / "runs" / "mmnist" / "stclif").iterdir())
    assert names == ["quick-stclif-seed42", "quick-stclif-seed42-groups1"]
    with pytest.raises(ConfigError, match="--tag"):
        plan_suite("quick", cells=["lif"], datasets=["mmnist"], configs_root=configs, tag="a b")


def run_dirs(tmp_path):
    return sorted(p.parent for p in (tmp_path / "bench" / "runs").rglob("metrics.json"))


def test_report_run_leaves_a_committable_folder_and_finished_runs_stay_skipped(tmp_path, configs, capsys):
    fake = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, no_report=False), fit=fake) == 0
    assert len(fake.calls) == 4
    assert "removed the checkpoints of 4 runs" in capsys.readouterr().out
    out = tmp_path / "bench"
    assert "figures/mmnist_predictions.png" in (out / "report.md").read_text()
    for run_dir in run_dirs(tmp_path):
        assert not (run_dir / "checkpoints").exists()
        with np.load(run_dir / "predictions.npz") as data:           # the one sequence the report shows
            assert {data[k].shape[0] for k in ("context", "truth", "pred")} == {1}
        assert json.loads((run_dir / "metrics.json").read_text())["test"]["mse"] > 0
    first = json.loads((run_dirs(tmp_path)[0] / "metrics.json").read_text())
    # without checkpoints the runs still count as finished; the report is rewritten from them
    again = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, no_report=False), fit=again) == 0
    assert again.calls == []
    assert "figures/mmnist_predictions.png" in (out / "report.md").read_text()
    # a metrics.json without test results is not a finished run
    unfinished = run_dirs(tmp_path)[0]
    (unfinished / "metrics.json").write_text(json.dumps({k: v for k, v in first.items() if k != "test"}))
    assert bench.run(args_for(tmp_path, configs), fit=again) == 0
    assert len(again.calls) == 1 and again.calls[0][:2] == (unfinished.parent.parent.name, unfinished.parent.name)


def test_keep_checkpoints_and_no_report_keep_everything(tmp_path, configs, capsys):
    assert bench.run(args_for(tmp_path, configs, no_report=False, keep_checkpoints=True), fit=FakeRunner()) == 0
    assert "removed the checkpoints" not in capsys.readouterr().out
    for run_dir in run_dirs(tmp_path):
        assert (run_dir / "checkpoints" / "best.ckpt").is_file()
        with np.load(run_dir / "predictions.npz") as data:
            assert data["pred"].shape[0] == 4                        # run.predictions_limit of the suite
    other = tmp_path / "other"
    assert bench.run(args_for(other, configs), fit=FakeRunner()) == 0           # --no-report: the analysis needs them
    assert all((d / "checkpoints").is_dir() for d in run_dirs(other))


def test_keep_checkpoints_flag_parses(tmp_path, configs, capsys):
    common = ["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
              "--out", str(tmp_path / "o"), "--dry-run"]
    assert main(common + ["--keep-checkpoints"]) == 0 and main(common + ["--no-keep-checkpoints"]) == 0


def test_reference_loop_flag_is_deprecated_and_changes_nothing(tmp_path, configs, capsys):
    fake = FakeRunner()
    assert bench.run(args_for(tmp_path, configs, reference_loop=True), fit=fake) == 0
    assert "--reference-loop is deprecated" in capsys.readouterr().err
    assert len(fake.calls) == 4
    import stcbench.reports.suites as suites

    assert not hasattr(suites, "reference_loop_predictors")


def test_memory_dry_run_lists_each_planned_run_and_trains_nothing(tmp_path, configs, capsys):
    args = args_for(tmp_path, configs, suite="memory", datasets=None, tasks=["adding"], cells=["LIF", "CE-LIF"],
                    seeds=[0, 1], dry_run=True, baseline="lif")
    assert bench.run(args, fit=lambda run: pytest.fail("a dry run trained")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("suite memory, scale quick: 4 runs")
    assert [line.split("  ")[1] for line in lines[1:]] == [
        "[to run] adding lif seed 0", "[to run] adding lif seed 1", "[to run] adding celif seed 0",
        "[to run] adding celif seed 1"]
    assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("extra", [["--set", "optim.lrr=1"], ["--set", "trainer.max_epochs=-1"], ["--seeds", "-1"]],
                         ids=["unknown key", "bad value", "bad seed"])
def test_bad_set_or_seeds_are_refused_before_any_run(tmp_path, configs, capsys, extra):
    """One line, exit 2, nothing created: not a failure record for every planned run."""
    for dry_run in ([], ["--dry-run"]):
        assert main(["bench", "--suite", "quick", "--cells", "lif", "--datasets", "mmnist", "--configs", str(configs),
                     "--out", str(tmp_path / "o"), *extra, *dry_run]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "planned run mmnist/lif" in err[0] and "check --set and --seeds" in err[0]
        assert not (tmp_path / "o").exists()


def test_a_suite_defaults_to_the_datasets_it_ships_configs_for(tmp_path, configs):
    (configs / "small").mkdir()
    for dataset in ("mmnist", "taxibj"):
        (configs / "small" / f"{dataset}.yaml").write_text(f"data:\n  dataset: {dataset}\n")
    planned = plan_suite("small", cells=["lif"], out=tmp_path / "b", configs_root=configs)
    assert [p.dataset for p in planned] == ["mmnist", "taxibj"]
    with pytest.raises(ConfigError, match="the small suite has configs for mmnist, taxibj: choose --datasets"):
        plan_suite("small", cells=["lif"], datasets=["kth"], configs_root=configs)


def test_a_repeated_seed_is_planned_once_as_a_repeated_dataset_is(tmp_path, configs):
    planned = plan_suite("quick", cells=["lif"], datasets=["mmnist", "mmnist"], seeds=[0, 0, 1], out=tmp_path / "b",
                         configs_root=configs)
    assert [(p.dataset, p.seed) for p in planned] == [("mmnist", 0), ("mmnist", 1)]


def test_memory_suite_plans_a_repeated_task_cell_or_seed_once(tmp_path, configs, capsys):
    args = args_for(tmp_path, configs, suite="memory", datasets=None, tasks=["adding", "adding"],
                    cells=["lif", "lif"], seeds=[0, 0], dry_run=True)
    assert bench.run(args) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith("  [to run] adding lif seed 0")


@pytest.mark.parametrize("option", ["--cells", "--datasets", "--seeds"])
def test_a_list_option_with_no_value_is_refused_not_taken_for_the_default(tmp_path, configs, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--suite", "quick", option, ",", "--configs", str(configs), "--out", str(tmp_path / "o"),
              "--dry-run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no {option[2:]} given" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_configs_folder_that_does_not_exist_is_named(tmp_path, capsys):
    assert main(["bench", "--suite", "quick", "--configs", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--configs {tmp_path / 'nope'} does not exist" in err[0]


def test_counts_of_one_run_are_singular(tmp_path, configs, capsys):
    assert bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], dry_run=True)) == 0
    assert "suite quick: 1 run -> " in capsys.readouterr().out


def test_collect_reports_only_the_checkpoints_it_removed(tmp_path, configs, capsys):
    assert bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], no_report=False),
                     fit=FakeRunner()) == 0
    assert "removed the checkpoints of 1 run and" in capsys.readouterr().out
    assert bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], no_report=False, collect=True),
                     fit=FakeRunner()) == 0
    assert "removed the checkpoints" not in capsys.readouterr().out


def test_kept_checkpoints_stay_unless_told_otherwise(tmp_path, configs, capsys):
    """--collect runs nothing and removes nothing: runs trained with --keep-checkpoints keep them, unless the
    collect call says --no-keep-checkpoints."""
    one = dict(cells=["lif"], datasets=["mmnist"], no_report=False)
    assert bench.run(args_for(tmp_path, configs, keep_checkpoints=True, **one), fit=FakeRunner()) == 0
    (run_dir,) = run_dirs(tmp_path)
    capsys.readouterr()
    assert bench.run(args_for(tmp_path, configs, collect=True, **one), fit=FakeRunner()) == 0
    assert "kept the checkpoints of 1 run (--collect removes nothing" in capsys.readouterr().out
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert bench.run(args_for(tmp_path, configs, **one), fit=FakeRunner()) == 0      # a plain rerun keeps them too
    assert "removed the checkpoints" not in capsys.readouterr().out
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert bench.run(args_for(tmp_path, configs, collect=True, keep_checkpoints=False, **one), fit=FakeRunner()) == 0
    assert "removed the checkpoints of 1 run" in capsys.readouterr().out
    assert not (run_dir / "checkpoints").exists()


def test_a_shard_dry_run_announces_no_report(tmp_path, configs, capsys):
    assert bench.run(args_for(tmp_path, configs, dry_run=True, shard="1/2", no_report=False)) == 0
    out = capsys.readouterr().out
    assert "(shard 1/2)" in out and "report ->" not in out
    assert bench.run(args_for(tmp_path, configs, dry_run=True, no_report=False)) == 0
    assert "report ->" in capsys.readouterr().out


def test_dry_run_shows_an_interrupted_run_as_resumed(tmp_path, configs, capsys):
    run_dir = tmp_path / "bench" / "runs" / "mmnist" / "lif" / "quick-lif-seed42"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    assert bench.run(args_for(tmp_path, configs, dry_run=True)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "[to resume]" in line] == [
        next(line for line in lines if "mmnist  lif" in line)]
    assert "seed 42 (from its last.ckpt)" in next(line for line in lines if "mmnist  lif" in line)
    assert sum("[to run]" in line for line in lines) == 3


def test_a_run_stopped_by_sigterm_says_the_bench_command_resumes_it(tmp_path, configs, capsys):
    def stopped(planned):
        raise SystemExit(143)

    with pytest.raises(SystemExit) as stop:
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"]), fit=stopped)
    assert stop.value.code == 143
    assert "run the same stcbench bench command again" in capsys.readouterr().err


def test_the_exit_statuses_bench_recognises_are_the_engines():
    from stcbench.engine import callbacks
    from stcbench.reports import suites

    assert (suites.SIGTERM_EXIT_STATUS, suites.CTRL_C_EXIT_STATUS) == (callbacks.SIGTERM_EXIT_CODE,
                                                                      callbacks.INTERRUPT_EXIT_CODE)


def test_an_unknown_memory_task_is_refused_before_the_plan(tmp_path, configs, capsys):
    for dry_run in (True, False):
        args = args_for(tmp_path, configs, suite="memory", datasets=None, tasks=["adding", "foo"], dry_run=dry_run)
        with pytest.raises(ConfigError, match=r"^--tasks foo: no such memory task; choose among adding, copy"):
            bench.run(args, fit=lambda run: pytest.fail("trained with an unknown task"))
        assert capsys.readouterr().out == ""
    assert not (tmp_path / "bench").exists()


def test_a_plugin_named_only_in_a_suite_config_is_refused_before_any_run(tmp_path, configs):
    """The consent rule holds for bench too, checked once before any run (or SLURM job) starts."""
    from stcbench.plugin_consent import consent_to_plugins

    marker = tmp_path / "IMPORTED"
    plugin = tmp_path / "evil.py"
    plugin.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    (configs / "quick" / "mmnist.yaml").write_text(f"data:\n  dataset: mmnist\nplugins: [{plugin}]\n")
    fake = FakeRunner()
    with consent_to_plugins([]), pytest.raises(ConfigError, match="names the plugin"):
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"]), fit=fake)
    assert fake.calls == [] and not marker.exists()
    with consent_to_plugins([str(plugin)]):                 # named by the user: planned and run
        assert bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"]), fit=fake) == 0
    assert len(fake.calls) == 1


def test_the_flags_of_another_setting_are_spelled_for_the_shell():
    from stcbench.reports.suites import _cli_value

    assert [_cli_value(v) for v in (None, True, 2, [64, 64], "a b")] == ["null", "true", "2", "'[64, 64]'", "'a b'"]


def test_a_plugin_cell_given_with_set_plugins_can_be_named_in_cells(tmp_path, configs, capsys, isolated_registry):
    template = Path(__file__).resolve().parents[2] / "examples" / "my_cell.py"
    assert main(["bench", "--suite", "quick", "--cells", "my_lif", "--datasets", "mmnist", "--configs", str(configs),
                 "--out", str(tmp_path / "b"), "--dry-run", "--set", f"plugins=[{template}]"]) == 0
    assert "mylif" in capsys.readouterr().out


def test_a_cell_option_set_only_now_is_another_setting(tmp_path, configs):
    """Runs trained with the cell's default are not taken for a plan that sets the option (they were pooled)."""
    import yaml

    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"])
    assert bench.run(args, fit=fake) == 0
    run_dir = next((tmp_path / "bench" / "runs" / "mmnist" / "lif").iterdir())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"cell": "lif", "cell_options": {}}}))
    with pytest.raises(ConfigError, match=r"another setting \(model.cell_options.tau_m: unset there, 3.0 here\).*"
                                          r"\(without --set model.cell_options.tau_m\)"):
        bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"],
                           overrides=["model.cell_options.tau_m=3.0"]), fit=fake)
    assert len(fake.calls) == 1


def test_runs_of_an_edited_plugin_are_neither_taken_nor_pooled(tmp_path, configs, isolated_registry):
    """After the neuron's file changed, bench refuses the earlier run of that neuron for its plan (not the baseline
    runs of the same call), and tables do not pool seeds of the two versions, wherever the file was."""
    import shutil

    import yaml

    from stcbench.engine import plugin_code
    from stcbench.reports.runs import discover_runs, select_group

    plugin = tmp_path / "my_cell.py"
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "my_cell.py", plugin)
    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["my_lif", "lif"], datasets=["mmnist"], seeds=[0, 1],
                    overrides=[f"plugins=[{plugin}]"])
    assert bench.run(args, fit=fake) == 0
    for cell in ("mylif", "lif"):
        for run_dir in (tmp_path / "bench" / "runs" / "mmnist" / cell).iterdir():
            (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"cell": cell}}))
            plugin_code.record(run_dir, cell)
    first, second = sorted((tmp_path / "bench" / "runs" / "mmnist" / "mylif").iterdir())
    assert not any((tmp_path / "bench" / "runs" / "mmnist" / "lif").glob("*/plugin_code.json"))   # built-in
    runs = discover_runs(tmp_path / "bench" / "runs")
    assert select_group(runs, "mmnist", "mylif").n == 2            # one version: two seeds
    plugin.write_text(plugin.read_text() + "\n# the neuron, edited\n")
    with pytest.raises(ConfigError, match=r"plugin file my_cell.py defining cell mylif has changed since the run "
                                          r".*mylif.* bench would take it"):
        bench.run(args, fit=fake)
    bench.run(args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"], seeds=[0, 1],
                       overrides=[f"plugins=[{plugin}]"]), fit=fake)          # the baseline's runs stand
    assert len(fake.calls) == 4
    plugin_code.record(second, "my_lif")            # seed 1 trained again with the edited neuron
    runs = discover_runs(tmp_path / "bench" / "runs")
    assert select_group(runs, "mmnist", "mylif").n == 1
    moved = json.loads((second / "plugin_code.json").read_text())
    (first / "plugin_code.json").write_text(json.dumps({"elsewhere_" + name: digest for name, digest in moved.items()}))
    assert select_group(discover_runs(tmp_path / "bench" / "runs"), "mmnist", "mylif").n == 2   # same code: pooled


def test_the_report_names_the_runs_it_lacks_and_a_baseline_without_runs(tmp_path, configs):
    class FailsForConvLSTM(FakeRunner):
        def __call__(self, planned):
            if planned.cell == "convlstm":
                raise RuntimeError("the neuron diverged")
            return super().__call__(planned)

    args = args_for(tmp_path, configs, cells=["plif", "convlstm"], datasets=["mmnist"], no_report=False)
    # (args without --baseline: the default, lif, which no run has: a note in the report, not a refusal)
    assert bench.run(args, fit=FailsForConvLSTM()) == 1
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "## Planned runs missing from this report" in report
    missing = [line for line in report.splitlines() if line.startswith("* mmnist/convlstm seed")]
    assert len(missing) == 1 and "failed:" in missing[0] and "the neuron diverged" in missing[0]
    assert "failures/mmnist-" in missing[0]
    assert "**No run of the baseline `lif`**" in report


def test_a_refusal_names_every_difference_beyond_the_four_it_spells(tmp_path, configs):
    import yaml

    fake = FakeRunner()
    args = args_for(tmp_path, configs, cells=["lif"], datasets=["mmnist"])
    assert bench.run(args, fit=fake) == 0
    run_dir = next((tmp_path / "bench" / "runs" / "mmnist" / "lif").iterdir())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"optim": {"lr": 0.5, "min_lr": 0.1, "eps": 0.1},
                                                         "trainer": {"max_epochs": 1, "gradient_clip_val": 3.0},
                                                         "data": {"batch_size": 3}}))
    with pytest.raises(ConfigError, match=r"and 2 more: \w+\.\w+, \w+\.\w+\); bench would take it"):
        bench.run(args, fit=fake)


def test_a_plugin_cell_joins_the_memory_suite_with_set_plugins(tmp_path, capsys, isolated_registry):
    from stcbench.cli import main

    plugin = Path(__file__).resolve().parents[2] / "examples" / "my_cell.py"
    assert main(["bench", "--suite", "memory", "--cells", "lif,my_lif", "--tasks", "adding", "--out",
                 str(tmp_path / "m"), "--dry-run", "--set", f"plugins=[{plugin}]"]) == 0
    assert "[to run] adding mylif seed 42" in capsys.readouterr().out and not (tmp_path / "m").exists()


@pytest.mark.parametrize("key, flag", [("run.output_dir=/elsewhere", "--out"), ("seed=5", "--seeds"),
                                       ("model.cell=lif", "--cells"), ("run.name=x", "--tag"),
                                       ("data.data_root=/d", "--data-root")])
def test_set_may_not_change_what_the_plan_sets_for_each_run(tmp_path, configs, capsys, key, flag):
    """A run folder outside --out (written over there), or a run named for one seed or cell that trained another,
    would be taken for another run: --set of the plan's own keys is refused, naming the flag to use."""
    from stcbench.cli import main

    assert main(["bench", "--suite", "quick", "--cells", "stclif", "--datasets", "mmnist", "--configs", str(configs),
                 "--out", str(tmp_path / "o"), "--set", key, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"--set {key.partition('=')[0]}" in err and flag in err and not (tmp_path / "o").exists()


def test_a_run_that_a_process_trains_on_is_not_stripped(tmp_path, capsys):
    """bench --no-keep-checkpoints removes a finished run's checkpoints; one that a resume is training keeps them."""
    from stcbench.commands.bench import strip_if_idle
    from stcbench.engine.run_folder import training_lock

    run_dir = tmp_path / "runs" / "mmnist" / "lif" / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    with training_lock(run_dir):
        assert strip_if_idle(run_dir) is False
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and "is being trained by" in capsys.readouterr().out
    assert strip_if_idle(run_dir) is True and not (run_dir / "checkpoints").exists()
    assert not (run_dir / ".lock").exists()


def test_a_named_baseline_that_no_run_will_have_is_refused_before_anything_runs(tmp_path, capsys):
    from stcbench.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--suite", "quick", "--cells", "lif,stclif", "--datasets", "mmnist", "--out", str(out),
                 "--baseline", "plif", "--dry-run"]) == 2
    assert "--baseline plif: the plan does not train it" in capsys.readouterr().err and not out.exists()
    assert main(["bench", "--suite", "quick", "--cells", "lif,plif", "--datasets", "mmnist", "--out", str(out),
                 "--baseline", "plif", "--dry-run"]) == 0


def test_a_cell_option_one_planned_cell_does_not_take_is_refused_before_any_run(tmp_path, capsys):
    """--set model.cell_options.* applies to every cell of --cells: one that does not take it stops the plan at
    once (it used to fail when its own run started, after the other cells had trained)."""
    from stcbench.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--suite", "quick", "--cells", "stclif,lif", "--datasets", "mmnist", "--out", str(out),
                 "--set", "model.cell_options.temporal_circuit=false", "--dry-run"]) == 2
    assert "cell 'lif' does not take ['temporal_circuit']" in capsys.readouterr().err and not out.exists()


def test_the_flag_a_refusal_suggests_stays_on_one_line_and_gives_the_value_back():
    import shlex

    import yaml

    from stcbench.reports.suites import _cli_value

    for value in ("lif", "li\nf", [16, 16], {"beta": 0.5}, None, True):
        text = _cli_value(value)
        assert "\n" not in text and yaml.safe_load(shlex.split(text)[0]) == value
