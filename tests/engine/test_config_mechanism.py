"""The one config mechanism (stcbench.engine.schema): --print-config, the docs tables, both tasks' configs."""
from pathlib import Path

import pytest
import yaml

from stcbench.cli import main
from stcbench.engine.schema import parse_override
from stcbench.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configs.md"


def test_print_config_shows_the_resolved_config_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--config", "quick/mmnist", "--run-name", "007", "--set", "optim.lr=1e3",
                 "--set", "model.num_hidden=32,32", "--print-config"])
    assert code == 0 and list(tmp_path.iterdir()) == []
    text = capsys.readouterr().out
    printed = yaml.safe_load(text)
    assert printed["run"]["name"] == "007" and printed["optim"]["lr"] == 1000.0
    assert printed["model"]["num_hidden"] == [32, 32] and printed["run"]["scale"] == "custom"   # resized: not quick
    # one key a line in every section (none on one line as {...}); flat lists stay on one line
    lines = text.splitlines()
    for section in ("data", "model", "optim", "sampling", "trainer", "logging", "run"):
        assert f"{section}:" in lines, section
    assert "{" not in text.replace("{}", "") and "  num_hidden: [32, 32]" in lines


def test_print_config_of_a_memory_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "memory/quick_copy", "--set", "run.name=007", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"] == "memory" and printed["run"]["name"] == "007"
    assert printed["model"]["readout"] == "per_step"           # `auto` resolved for the copy task
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["config keys", "memory config keys"])
def test_docs_tables_are_generated_from_the_declarations(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", DOCS.parents[1] / "tools" / "gen_config_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = DOCS.read_text()
    begin, end = f"<!-- BEGIN GENERATED: {name} -->\n", f"<!-- END GENERATED: {name} -->"
    assert text[text.index(begin) + len(begin):text.index(end)] == gen.tables()[name], \
        "docs/configs.md is stale; run python tools/gen_config_docs.py"


def test_memory_overrides_are_typed_like_video_ones():
    from stcbench.memory.config import resolve

    config = resolve({}, dict(parse_override(t) for t in ("run.name=007", "data.seq_len=1e2", "optim.lr=1e-2",
                                                            "model.hidden=[32, 32]")))
    assert (config.run.name, config.data.seq_len, config.optim.lr, config.model.hidden) == ("007", 100, 0.01, [32, 32])
    assert resolve({}, dict([parse_override("model.synapse_norm=none")])).model.synapse_norm == "none"
    with pytest.raises(ConfigError, match="data.batch_size must be an integer, got 'many'"):
        resolve({}, dict([parse_override("data.batch_size=many")]))
    with pytest.raises(ConfigError, match="data.batch_size must be a finite number >= 1, got 0"):
        resolve({"data": {"batch_size": 0}})
    with pytest.raises(ConfigError, match="optim.weight_decay must be a finite number >= 0, got inf"):
        resolve({}, dict([parse_override("optim.weight_decay=inf")]))
    assert resolve({}, dict([parse_override("data.batch_size=" + "1" + "0" * 400)])).data.batch_size == 10 ** 400
    with pytest.raises(ConfigError, match="optim.lr must be a positive number"):
        resolve({}, dict([parse_override("optim.lr=nan")]))


def test_every_field_declares_its_help():
    from stcbench.engine.schema import field_rows
    from stcbench.memory.config import MemoryConfig
    from stcbench.training.config import Config

    for cls in (Config, MemoryConfig):
        missing = [key for key, _, _, help_text in field_rows(cls) if not help_text.strip()]
        assert not missing, missing


def test_a_tested_model_refuses_model_overrides_except_the_allowed_ones():
    from stcbench.engine.task import refuse_model_overrides

    refuse_model_overrides({"data.batch_size": 2, "model.fast": True}, allowed=("fast",))
    with pytest.raises(ConfigError, match="no model key may change at test time"):
        refuse_model_overrides({"model.hidden": [32]})
    with pytest.raises(ConfigError, match=r"^model\.cell_options\.beta \(from --set"):
        refuse_model_overrides({"model.cell_options.beta": 0.5}, allowed=("fast",))


@pytest.mark.parametrize("flags, scale", [(["--max-epochs", "1"], "custom"), (["--set", "data.train_samples=16"], "custom"),
                                          (["--set", "optim.lr=1e-3", "--cell", "plif"], "quick"),
                                          (["--max-epochs", "1", "--scale", "quick"], "quick"),
                                          (["--set", "trainer.max_epochs=5"], "quick")])       # quick's own value
def test_a_named_scale_resized_on_the_command_line_is_labelled_custom(flags, scale, tmp_path, capsys, monkeypatch):
    """Tables rank and show runs by their scale label: a quick (or paper) config made smaller or larger on the
    command line is not that scale any more, unless the user names the label."""
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "quick/mmnist", *flags, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["run"]["scale"] == scale
    assert ("scale label: custom, not quick" in captured.err) == (scale == "custom")


@pytest.mark.parametrize("flags, scale", [(["--max-epochs", "3"], "custom"), (["--set", "data.seq_len=40"], "custom"),
                                          (["--set", "model.hidden=[32,32]"], "custom"),
                                          (["--set", "optim.lr=1e-3"], "quick")])
def test_a_memory_run_of_a_named_scale_resized_is_labelled_custom_too(flags, scale, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "memory/quick_adding", *flags, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["run"]["scale"] == scale
    assert ("scale label: custom, not quick" in captured.err) == (scale == "custom")


def test_a_task_names_keys_of_its_own_that_resize_a_named_scale(monkeypatch):
    """Task.size_keys extends the engine's: a key that only a task knows (here optim.lr, for the test's sake)
    relabels the run, and the engine's own keys still do."""
    from stcbench.engine.run import label_resized
    from stcbench.engine.scales import SIZE_KEYS
    from stcbench.memory.task import MemoryTask

    class LrSizedTask(MemoryTask):
        size_keys = (*SIZE_KEYS, "optim.lr")

    for task, overrides, label in [(MemoryTask(), {"optim.lr": 1e-3}, "quick"),
                                   (LrSizedTask(), {"optim.lr": 1e-3}, "custom"),
                                   (LrSizedTask(), {"trainer.max_epochs": 3}, "custom")]:
        config = task.resolve_config("memory/quick_adding", overrides)
        note = label_resized(task, config, "memory/quick_adding", overrides)
        assert config.run.scale == label and (note is not None) == (label == "custom")
