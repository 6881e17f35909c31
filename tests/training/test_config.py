"""Config loading, inheritance, precedence and validation errors; every shipped config validates."""
from pathlib import Path

import pytest
import yaml

from stcbench.errors import ConfigError
from stcbench.engine.schema import load_config_dict, parse_override
from stcbench.training.config import Config, config_from_dict, config_reference, resolve_config

CONFIGS = Path(__file__).resolve().parents[2] / "stcbench" / "configs"


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_are_the_paper_protocol():
    c = Config()
    assert (c.optim.optimizer, c.optim.lr, c.optim.weight_decay, c.optim.min_lr) == ("adam", 1e-3, 0.0, 1e-5)
    assert (c.optim.warmup_epochs, c.optim.warmup_lr, c.optim.schedule) == (10, 1e-5, "cosine")
    assert (c.sampling.start_value, c.sampling.rate, c.sampling.stop_iter) == (1.0, 2e-5, 50000)
    assert (c.data.batch_size, c.seed, c.data.selection) == (16, 42, "val")
    assert (c.model.num_hidden, c.model.filter_size) == ([256, 256, 256], 5)


def test_base_inheritance_and_precedence(tmp_path):
    write(tmp_path / "base.yaml", {"seed": 1, "optim": {"lr": 0.01, "min_lr": 0.001}, "model": {"cell": "lif"}})
    child = write(tmp_path / "child.yaml", "base: base.yaml\noptim:\n  lr: 1e-3\n")
    cfg = resolve_config(child, {"seed": 5})
    assert cfg.optim.lr == 1e-3              # file beats base (and YAML's '1e-3' string is a number)
    assert cfg.optim.min_lr == 0.001         # inherited
    assert cfg.model.cell == "lif"
    assert cfg.seed == 5                     # explicit override beats the file
    assert cfg.trainer.max_epochs == 500     # default where nobody set it


def test_an_empty_section_keeps_what_it_inherits(tmp_path):
    """`data:` with nothing under it (its keys commented out) reads as null: it changes nothing, as `data: {}`."""
    write(tmp_path / "base.yaml", {"data": {"dataset": "kth", "batch_size": 2}})
    for body in ("data:\n  # batch_size: 4\n", "data: {}\n"):
        cfg = resolve_config(write(tmp_path / "child.yaml", f"base: base.yaml\n{body}"))
        assert cfg.data.dataset == "kth" and cfg.data.batch_size == 2


def test_a_null_inside_a_section_still_clears_what_it_inherits(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"cell": "convlstm", "cell_options": {"layer_norm": True}}})
    cfg = resolve_config(write(tmp_path / "child.yaml", "base: base.yaml\nmodel:\n  cell_options: null\n"))
    assert cfg.model.cell == "convlstm" and cfg.model.cell_options == {}


def typed(*texts):
    """Resolve command-line overrides against the declared field types."""
    return resolve_config({}, dict(parse_override(t) for t in texts))


def test_override_values_are_read_as_the_declared_type():
    cfg = typed("optim.lr=1e-4", "model.num_hidden=[16, 16]", "run.name=007", "data.test_long=false",
                "trainer.max_epochs=1e3", "trainer.devices=2", "model.gradient_detach=null")
    assert cfg.optim.lr == 1e-4 and cfg.model.num_hidden == [16, 16]
    assert cfg.run.name == "007"                      # a string field keeps the text as typed
    assert cfg.data.test_long is False and cfg.trainer.max_epochs == 1000 and cfg.trainer.devices == 2
    assert cfg.model.gradient_detach is None
    assert typed("optim.lr=1e3").optim.lr == 1000.0 and typed("run.scale=1e3").run.scale == "1e3"
    assert typed("model.num_hidden=64,32").model.num_hidden == [64, 32]
    assert typed("trainer.devices=[0, 1]").trainer.devices == [0, 1] and typed("trainer.devices=auto").trainer.devices == "auto"
    assert typed("model.cell_options.temporal_circuit=false").model.cell_options == {"temporal_circuit": False}
    assert typed("logging.progress_bar=none").logging.progress_bar == "none"
    limits = typed("trainer.limit_train_batches=1", "trainer.limit_val_batches=0.5", "trainer.limit_test_batches=10")
    assert (limits.trainer.limit_train_batches, limits.trainer.limit_val_batches) == (1, 0.5)   # 1 batch, not all
    assert type(limits.trainer.limit_train_batches) is int and limits.trainer.limit_test_batches == 10
    assert typed("sampling.seed=010").sampling.seed == 10                  # Python's reading, not YAML's octal
    assert typed("run.name=none").run.name == "none" and typed("run.name=null").run.name is None
    assert typed("plugins=[007]").plugins == ["007"] and typed("trainer.devices=0,1").trainer.devices == [0, 1]


@pytest.mark.parametrize("text, message", [
    ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer, got 'abc'"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs must be an integer"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("data.test_long=maybe", "data.test_long must be true/false or null"),
    ("data.selection=best", r"data.selection must be one of \['val', 'openstl_test'\]"),
    ("model.num_hidden=[a, b]", r"model.num_hidden\[0\] must be an integer"),
    ("optim=1", "optim is a section"),
])
def test_bad_override_values_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        typed(text)
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("optim.lr")


@pytest.mark.parametrize("data, message", [
    ({"optim": {"learning_rate": 1}}, r"unknown config key.*optim.learning_rate.*allowed: \['optimizer', 'lr'"),
    ({"bogus": 1}, r"unknown config key.*'bogus'.*allowed"),
    ({"optim": {"lr": "fast"}}, r"optim.lr must be a number"),
    ({"optim": {"lr": -1}}, r"optim.lr must be a positive number"),
    ({"data": {"selection": "test"}}, r"data.selection must be one of \['val', 'openstl_test'\]"),
    ({"trainer": {"precision": "8"}}, r"trainer.precision must be one of"),
    ({"model": {"num_hidden": 256}}, r"model.num_hidden must be a list"),
    ({"model": {"filter_size": 4}}, r"positive odd"),
    ({"sampling": {"start_value": 2}}, r"sampling.start_value must be in \[0, 1\]"),
    ({"logging": {"loggers": ["mlflow"]}}, r"unknown logger.*mlflow.*choose from"),
    ({"trainer": {"max_epochs": True}}, r"must be an integer"),
    ({"data": "mmnist"}, r"data must be a section"),
    ({"trainer": {"strategy": "ddp_spawn"}}, r"use 'ddp'"),
    ({"trainer": {"strategy": "ddp_spawn_find_unused_parameters_true"}}, r"use 'ddp'"),
    ({"sampling": {"seed": 99999999999999999999}}, r"sampling.seed must be in \[0, 4294967295\] or null"),
    ({"sampling": {"seed": -1}}, r"sampling.seed must be in"),
    ({"model": {"cell_options": {1: 2}}}, r"model.cell_options keys are option names, and 1 is none"),
    ({"data": {"options": {"not a name": 2}}}, r"data.options keys are option names"),
    ({"data": {"options": {"batch_size": 3}}}, r"data.options.batch_size sets what the config key data.batch_size "
                                                r"sets.*set data.batch_size instead"),
    ({"data": {"options": {"seed": 3}}}, r"data.options.seed sets what the config key seed sets"),
    ({"data": {"options": {"val_batch_size": 3}}}, r"set data.eval_batch_size instead"),
])
def test_bad_values_name_key_and_allowed(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_int_and_float_limits_keep_their_meaning():
    cfg = config_from_dict({"trainer": {"limit_train_batches": 2, "limit_val_batches": 0.5}})
    assert cfg.trainer.limit_train_batches == 2 and isinstance(cfg.trainer.limit_train_batches, int)
    assert cfg.trainer.limit_val_batches == 0.5


def test_missing_file_and_base_loop(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_dict(tmp_path / "none.yaml")
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config_dict(tmp_path / "a.yaml")
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_dict(tmp_path / "list.yaml")


def test_bases_that_name_the_same_files_again_and_again_are_refused_before_they_multiply(tmp_path):
    """Each file naming the next one twice reads 2^n files: refused once the chain has read MAX_BASE_READS."""
    from stcbench.engine.schema import MAX_BASE_READS

    for i in range(30):
        write(tmp_path / f"e{i}.yaml", f"base: [e{i + 1}.yaml, e{i + 1}.yaml]\n")
    write(tmp_path / "e30.yaml", "seed: 7\n")
    with pytest.raises(ConfigError, match=f"read more than {MAX_BASE_READS} files.*name each base once"):
        load_config_dict(tmp_path / "e0.yaml")
    write(tmp_path / "twice.yaml", "base: [e29.yaml, e29.yaml]\n")       # a few repeats stay allowed
    assert load_config_dict(tmp_path / "twice.yaml") == {"seed": 7}


def test_reference_lists_every_key():
    keys = {k for k, _, _ in config_reference()}
    assert {"optim.lr", "sampling.stop_iter", "trainer.precision", "run.scale", "plugins", "seed"} <= keys


def all_config_files():
    return sorted(p for p in CONFIGS.rglob("*.yaml") if p.parts[-2] != "memory")


def test_every_shipped_config_validates():
    files = all_config_files()
    assert len(files) >= 3 * 8 + 4
    for path in files:
        config_from_dict(load_config_dict(path))


@pytest.mark.parametrize("dataset, epochs, detach", [("mmnist", 500, 0), ("taxibj", 200, 1), ("kth", 200, 1)])
def test_paper_configs_match_table_8(dataset, epochs, detach):
    for cell in ("lif", "plif", "glif", "tclif", "lmh", "stclif", "stcplif", "stclmh"):
        cfg = resolve_config(CONFIGS / dataset / f"{cell}.yaml")
        assert cfg.data.dataset == dataset and cfg.model.cell == cell
        assert cfg.trainer.max_epochs == epochs and cfg.data.batch_size == 16
        assert cfg.model.num_hidden == [256, 256, 256] and cfg.optim.min_lr == 1e-5
        assert cfg.run.scale == "paper"
        assert cfg.model.gradient_detach == (detach if cell.startswith("stc") else None)
    assert resolve_config(CONFIGS / "kth" / "lif.yaml").data.test_long is True


def test_docs_list_every_key():
    from stcbench.training.config import reference_markdown

    docs = (CONFIGS.parents[1] / "docs" / "configs.md").read_text()
    begin, end = "<!-- BEGIN GENERATED: config keys -->\n", "<!-- END GENERATED: config keys -->"
    generated = docs[docs.index(begin) + len(begin):docs.index(end)]
    assert generated == reference_markdown(), "docs/configs.md is stale; regenerate the key table"


@pytest.mark.parametrize("name", ["quick/mmnist", "quick/mmnist.yaml", "mmnist/stclif", "configs/mmnist/stclif.yaml",
                                  "memory/adding"])
def test_shipped_configs_are_addressable_by_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                        # nothing of the source tree is reachable from here
    data = load_config_dict(name)
    stem = name.removeprefix("configs/").removesuffix(".yaml")
    assert data == load_config_dict(CONFIGS / f"{stem}.yaml")
    if stem == "mmnist/stclif":                        # its base: chain reaches paper.yaml
        assert data["model"]["cell"] == "stclif" and data["optim"]["lr"] == 1e-3


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "mmnist.yaml").write_text("seed: 7\n")
    assert load_config_dict("quick/mmnist.yaml") == {"seed": 7}
    assert load_config_dict("quick/mmnist")["seed"] != 7  # no such path: the shipped config


def test_unknown_config_name_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("quick/nosuch", "../mmnist/stclif", "/nonexistent/x.yaml"):
        with pytest.raises(ConfigError, match="does not exist.*shipped config"):
            load_config_dict(name)


def test_shipped_config_names_are_listed():
    from stcbench.config_files import packaged_config_names

    names = packaged_config_names()
    assert {"quick/mmnist", "mmnist/stclif", "paper", "memory/adding"} <= set(names)
    assert not any(n.endswith("_base") for n in names)


def test_shipped_configs_leave_the_data_root_to_the_environment():
    """data_root "" means $STCBENCH_DATA_ROOT, else datasets/: a shipped config that named a folder would
    silently ignore the variable (datasets/README.md)."""
    from stcbench.config_files import packaged_config_names

    for name in packaged_config_names():
        assert load_config_dict(name).get("data", {}).get("data_root", "") == "", name
    assert Config().data.data_root == ""


@pytest.mark.parametrize("dataset, patch, lr, schedule, epochs", [("mmnist", 4, 5e-4, "onecycle", 200),
                                                                  ("taxibj", 2, 5e-4, "cosine", 50),
                                                                  ("kth", 2, 1e-3, "onecycle", 100)])
def test_convlstm_configs_are_openstl_convlstm_s(dataset, patch, lr, schedule, epochs):
    """OpenSTL's configs/<dataset>/ConvLSTM.py with its defaults: 4 x 128, filter 5, batch 16, its scheduled
    sampling; the network has OpenSTL's published size once its unused conv_o / conv_last are counted."""
    from stcbench.models import count_parameters
    from stcbench.reports.published import anchors_for
    from stcbench.training.network import build_network

    cfg = resolve_config(CONFIGS / dataset / "convlstm.yaml")
    assert cfg.model.cell == "convlstm" and cfg.model.cell_options == {"variant": "reference", "layer_norm": False}
    assert (cfg.model.num_hidden, cfg.model.filter_size, cfg.model.patch_size) == ([128] * 4, 5, patch)
    assert (cfg.data.batch_size, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay) == (16, "adam", lr, 0.0)
    assert (cfg.optim.schedule, cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val) == (schedule, epochs, None)
    assert (cfg.sampling.enabled, cfg.sampling.start_value, cfg.sampling.rate, cfg.sampling.stop_iter) == (
        True, 1.0, 2e-5, 50000)
    if schedule == "onecycle":
        assert (cfg.optim.onecycle_pct_start, cfg.optim.onecycle_div_factor, cfg.optim.onecycle_final_div_factor,
                cfg.optim.onecycle_cycle_momentum) == (0.3, 25.0, 1e4, True)
    else:
        assert (cfg.optim.warmup_epochs, cfg.optim.warmup_lr, cfg.optim.min_lr) == (5, 1e-5, 1e-6)
    net, _ = build_network(cfg)
    unused_in_openstl = sum(c * 2 * c * 5 * 5 + c * 2 * c for c in cfg.model.num_hidden)   # conv_o, conv_last
    for anchor in anchors_for(dataset, "convlstm"):     # published 15.0M / 14.98M / 14.9M, printed truncated
        assert 0 <= (count_parameters(net) + unused_in_openstl) / 1e6 - anchor.params_m < 0.1


def test_paper_suite_runs_the_openstl_convlstm_configs(tmp_path):
    from stcbench.reports.suites import plan_suite

    planned = [p for p in plan_suite("paper", out=tmp_path) if p.cell == "convlstm"]
    assert [(p.dataset, p.config_path) for p in planned] == [(d, CONFIGS / d / "convlstm.yaml")
                                                             for d in ("mmnist", "taxibj", "kth")]


def test_the_logger_flag_takes_none_and_names_each_logger_once():
    import argparse

    from stcbench.engine.cli_args import overrides_from_args

    for given, loggers in (("csv,csv,tensorboard", ["csv", "tensorboard"]), ("", []), ("none", [])):
        args = argparse.Namespace(logger=given, set_overrides=[])
        assert overrides_from_args(args)["logging.loggers"] == loggers
