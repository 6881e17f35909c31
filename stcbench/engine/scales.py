"""Scale labels: a run of a named scale (paper, small, quick, demo) that is made larger or smaller is labelled
`custom`, so that tables never show it as the named one (stcbench.engine.run.label_resized, and bench)."""
from __future__ import annotations

from stcbench.engine import schema

NAMED_SCALES = ("paper", "small", "quick", "demo")
# Keys that change a run's size: a named scale with any of them changed is no longer that scale (run.scale custom);
# the default of Task.size_keys, which a task extends with keys of its own
SIZE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.limit_train_batches", "trainer.accumulate_grad_batches",
             "data.train_samples", "data.val_samples", "data.test_samples", "data.batch_size", "data.seq_len",
             "model.num_hidden", "model.hidden", "model.patch_size", "model.filter_size")


def without_size(overrides: dict, size_keys: tuple[str, ...] = SIZE_KEYS) -> dict:
    """`overrides` less the keys that change a run's size."""
    return {key: value for key, value in overrides.items() if key not in size_keys}


def size_changes(as_shipped, config, size_keys: tuple[str, ...] = SIZE_KEYS) -> list[str]:
    """The `size_keys` in which `config` differs from `as_shipped` (the same config resolved `without_size`)."""
    from stcbench.engine.resume import differences

    return [key for key, _, _ in differences(schema.to_dict(as_shipped), schema.to_dict(config)) if key in size_keys]


def scale_reference(source):
    """What a run of `source` is compared with to tell whether it is still of its named scale: the shipped config
    that a config file of one's own descends from through `base:` (so that a file changing the epochs of
    quick/mmnist is `custom`, as `--set` would make it), unless the file names `run.scale` itself; else `source`."""
    from pathlib import Path

    from stcbench.config_files import PACKAGED_CONFIGS, find_config

    if not isinstance(source, (str, Path)):
        return source
    top = find_config(source).resolve()
    shipped = PACKAGED_CONFIGS.resolve()
    queue, seen = [top], set()
    while queue:
        path = queue.pop(0)
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        data = schema.read_yaml(path)
        if shipped in path.parents or _names_scale(data):      # a shipped config, or one's own that names it
            return source if path == top else path
        queue += [base.resolve() for _, base in schema.base_paths(data, path)]
    return source


def _names_scale(data: dict) -> bool:
    run = data.get("run")
    return isinstance(run, dict) and "scale" in run
