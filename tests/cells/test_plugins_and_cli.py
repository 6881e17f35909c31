"""Plugins (STCBENCH_PLUGINS, load_plugins), the template cell and `stcbench cells`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stcbench import cli
from stcbench.cells import create_cell, get_cell_info, list_cells, load_plugins
from stcbench.errors import ConfigError
from tests.cells import test_contract as contract

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "my_cell.py"


def test_template_registers_and_passes_the_contract(isolated_registry):
    assert "mylif" not in {i.name for i in list_cells()}
    modules = load_plugins([str(TEMPLATE)])
    assert load_plugins(str(TEMPLATE)) == modules                    # idempotent, string form too
    info = get_cell_info("my-lif")
    assert info.name == "mylif" and "leak_init" in info.parameters()
    for synapse in ("conv", "linear"):
        contract.test_shapes_states_and_multi_step("my_lif", "reference", synapse)
        contract.test_gradients_reach_every_learning_parameter("my_lif", "reference", synapse)
        contract.test_gradients_reach_every_learning_parameter("stc_my_lif", "reference", synapse)
    contract.test_deterministic_construction_and_forward("my_lif")
    contract.test_channels_not_multiple_of_16_raise("my_lif")
    contract.test_unknown_option_and_variant_raise("stc_my_lif")
    contract.test_circuit_at_init_is_the_identity_on_the_first_step("mylif")
    with pytest.raises(ConfigError, match="leak_init"):
        create_cell("my_lif", 2, 16, leak_init=1.5)


def test_bad_plugins_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_plugins(["/nonexistent/cell_file.py"])
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_plugins(["no_such_plugin_module_xyz"])
    broken = tmp_path / "broken_cell.py"
    broken.write_text("x = 1\ndef f(:\n    pass\n")
    with pytest.raises(ConfigError, match=f"SyntaxError: .* \\(at {broken}:2\\)"):    # the user's file, not ours
        load_plugins([str(broken)])


PLUGIN_HEAD = """from stcbench.cells import SpikingCell, register_cell

@register_cell({name!r}, description="probe")
class Probe(SpikingCell):
    state_names = ("spike", "mem")

    def __init__(self, in_channels, hidden_channels, *, {options}, **kwargs):
        super().__init__(in_channels, hidden_channels, **kwargs)
        self.leak = leak

    def neuron_step(self, current, state, t, history_gate=None):
        mem = self.leak * state[1] + current
        spike = self.fire(mem)
        return spike, mem - spike * self.threshold
"""


@pytest.mark.parametrize("name, options, problem", [
    ("stc_tclif", "leak=0.5", "is the name of a derived cell"),          # would shadow the circuit around TC-LIF
    ("probe_required", "leak", "keyword option 'leak' has no default"),   # `stcbench cells` could not list it
])
def test_a_plugin_that_could_not_be_used_as_registered_is_refused(tmp_path, isolated_registry, name, options,
                                                                  problem):
    plugin = tmp_path / "probe.py"
    plugin.write_text(PLUGIN_HEAD.format(name=name, options=options))
    with pytest.raises(ConfigError, match=f"cannot be imported: ValueError: cell '{name}'.*{problem}"):
        load_plugins([str(plugin)])
    assert get_cell_info("stc_tclif").description.startswith("spatio-temporal circuit")


def test_an_unannotated_option_takes_the_type_of_its_default(tmp_path, isolated_registry):
    plugin = tmp_path / "probe.py"
    plugin.write_text(PLUGIN_HEAD.format(name="probe_typed", options="leak=0.5"))
    load_plugins([str(plugin)])
    assert create_cell("probe_typed", 1, 16, leak=1).leak == 1                # an int is a number
    for wrong in ("abc", "0.9", True):
        with pytest.raises(ConfigError, match=f"option leak must be float, got {wrong!r}"):
            create_cell("probe_typed", 1, 16, leak=wrong)


def test_env_var_plugin_appears_in_stcbench_cells(tmp_path):
    env = dict(os.environ, STCBENCH_PLUGINS=f" {TEMPLATE} ,")
    out = subprocess.run([sys.executable, "-m", "stcbench", "cells", "--format", "json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    names = [c["name"] for c in data["cells"]]
    assert "mylif" in names and "mylif" in data["stc_wrappable"]
    record = next(c for c in data["cells"] if c["name"] == "mylif")
    assert record["options"]["leak_init"] == 0.5 and record["source"] == "docs/new_cell.md template"


def test_cells_lists_every_registered_cell(capsys):
    assert cli.main(["cells"]) == 0
    text = capsys.readouterr().out
    for info in list_cells():
        assert info.name in text
        assert info.description in text
    assert cli.main(["cells", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["cells"]] == [i.name for i in list_cells()]
    by_name = {c["name"]: c for c in data["cells"]}
    assert by_name["stclif"]["official_class"] == "STCLIFCell"
    assert by_name["glif"]["variants"] == ["reference", "original"]
    assert "gradient_detach" in by_name["stcplif"]["options"]
    assert "tclif" in data["stc_wrappable"] and "stclif" not in data["stc_wrappable"]
    assert cli.main(["cells", "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| cell |") and "`stc_tclif`" in md


def test_cells_detail(capsys):
    assert cli.main(["cells", "STC-LM-H"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("stclmh") and "stc_lmh_reset_detach = True" in text
    assert "t_m [1]  (no gradient by design)" in text and "conv_h.0.weight [16, 1, 5, 5]" in text
    assert cli.main(["cells", "glif", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["parameters"]["reference"]["without_grad"] == ["glif.alpha", "glif.beta", "glif.gamma"]
    assert record["parameters"]["original"]["without_grad"] == []
    assert record["parameters"]["reference"]["shapes"]["glif.conduct"] == [1, 16]


def test_cells_unknown_name_is_a_clear_error(capsys):
    assert cli.main(["cells", "nosuchcell"]) == 2
    err = capsys.readouterr().err
    assert "unknown cell 'nosuchcell'" in err and "stcbench cells" in err


def test_generated_cell_docs_are_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cell_docs", ROOT / "tools" / "gen_cell_docs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--check"]) == 0, "docs/cells.md is out of date: run python tools/gen_cell_docs.py"


def test_no_alias_or_later_cell_can_take_the_name_of_a_circuit_wrapper(isolated_registry):
    from stcbench.cells import SpikingCell, register_cell

    class Probe(SpikingCell):
        def neuron_step(self, current, state, t, history_gate=None):
            return state

    with pytest.raises(ValueError, match="'stc_tclif' is the name of a derived cell"):
        register_cell("probe_alias", aliases=("stc_tclif",))(Probe)
    register_cell("stc_probe_first")(Probe)         # no cell probe_first yet: a name like any other
    with pytest.raises(ValueError, match="the name stc_probe_first of the circuit around it is already taken"):
        register_cell("probe_first")(Probe)
    assert get_cell_info("stc_tclif").description.startswith("spatio-temporal circuit")


def test_an_unknown_cell_names_the_closest_registered_one():
    from stcbench.cells import get_cell_info

    with pytest.raises(ConfigError, match="unknown cell 'stclfi'; did you mean 'stclif'"):
        get_cell_info("stclfi")
    with pytest.raises(ConfigError, match=r"unknown cell 'zzz'; available"):
        get_cell_info("zzz")
