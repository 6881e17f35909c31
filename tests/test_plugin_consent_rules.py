"""The plugin-consent rules themselves (stcbench/plugin_consent.py), and the static scan of raw pickles."""
from __future__ import annotations

import argparse
import collections
import fractions
import os
import pickle

from stcbench import plugin_consent
from stcbench.checkpoints import _raw_pickle_global


def test_plugins_named_with_set_in_either_list_spelling(tmp_path):
    args = argparse.Namespace(set_overrides=["plugins=a.py,b.py", "optim.lr=1"], overrides=["plugins=[c.py, d]"])
    assert plugin_consent.plugins_named(args) == ["a.py", "b.py", "c.py", "d"]


def test_a_plugin_string_is_read_as_a_comma_list_and_only_named_ones_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(plugin_consent.PLUGIN_ENV, raising=False)
    assert plugin_consent.unconsented("mycells,other.py", imported={}) == []        # outside the command line
    with plugin_consent.consent_to_plugins(["mycells"]):
        assert plugin_consent.unconsented("mycells,other.py", imported={}) == [str(tmp_path / "other.py")]
        assert plugin_consent.unconsented(["other.py"], imported={str(tmp_path / "other.py"): object()}) == []


class Payload:
    def __reduce__(self):
        return os.system, ("true",)


def test_a_raw_pickle_names_the_first_global_a_safe_load_refuses(tmp_path):
    cases = {"fractions.Fraction": {"allowed": collections.OrderedDict(), "refused": fractions.Fraction(1, 3)},
             "posix.system": {"payload": Payload()}, None: {"plain": collections.OrderedDict(a=1)}}
    for expected, content in cases.items():
        for protocol in (2, 4, 5):
            path = tmp_path / f"p{protocol}"
            path.write_bytes(pickle.dumps(content, protocol=protocol))
            assert _raw_pickle_global(path) == expected, (expected, protocol)
