"""Checkpoints record their cell variant; convlstm checkpoints written before they did (trained with the
forget-gate bias of 1, now variant original) load as that variant, not as the new default."""
import warnings

import pytest
import torch

from stcbench.training.cell_variants import warn_on_resume
from stcbench.training.module import VideoPredictionModule, load_module
from tests.training.helpers import tiny_config


def convlstm_module(tmp_path, **cell_options):
    config = tiny_config(tmp_path, tmp_path, data={"dataset": "taxibj"},
                         model={"cell": "convlstm", "num_hidden": [16], "filter_size": 3, "cell_options": cell_options})
    return VideoPredictionModule(config)


def save(tmp_path, module, stcbench_state, name="m.ckpt"):
    path = tmp_path / name
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"config": module.config.to_dict()},
                "stcbench": stcbench_state}, path)
    return path


def variants(module):
    return {cell.variant for cell in module.net.cell_list}


def predictions(module, frames):
    return module.double().predict_future(frames, 4)


def test_checkpoints_record_the_cell_variant(tmp_path):
    for variant in ("reference", "original"):
        checkpoint = {}
        convlstm_module(tmp_path, variant=variant).on_save_checkpoint(checkpoint)
        assert checkpoint["stcbench"]["cell_variant"] == variant


def test_unrecorded_convlstm_checkpoint_loads_as_the_variant_it_was_trained_with(tmp_path):
    trained = convlstm_module(tmp_path, variant="original")
    legacy = convlstm_module(tmp_path)                 # what such a checkpoint's config says: no variant
    legacy.load_state_dict(trained.state_dict())
    path = save(tmp_path, legacy, {"format": 1})
    with pytest.warns(UserWarning, match="trained as variant 'original'"):
        loaded = load_module(path, legacy.config)
    assert variants(loaded) == {"original"}
    frames = torch.rand(2, 8, 2, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(predictions(loaded, frames), predictions(trained, frames), rtol=0, atol=0)


@pytest.mark.parametrize("state, options, expected", [
    ({"format": 1, "cell_variant": "reference"}, {}, "reference"),     # written since: recorded
    (None, {}, "reference"),                                           # converted official checkpoint
    ({"format": 1}, {"variant": "reference"}, "reference"),            # the config names the variant
])
def test_recorded_converted_or_named_variants_load_unchanged(tmp_path, state, options, expected):
    module = convlstm_module(tmp_path, **options)
    path = save(tmp_path, module, state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert variants(load_module(path, module.config)) == {expected}


def test_other_cells_are_not_affected(tmp_path):
    config = tiny_config(tmp_path, tmp_path, data={"dataset": "taxibj"}, model={"cell": "plif", "num_hidden": [16]})
    module = VideoPredictionModule(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert variants(load_module(save(tmp_path, module, {"format": 1}), module.config)) == {"reference"}


def test_resuming_an_unrecorded_checkpoint_says_how_to_keep_its_variant(tmp_path):
    config = convlstm_module(tmp_path).config
    with pytest.warns(UserWarning, match="--set model.cell_options.variant=original"):
        warn_on_resume({"stcbench": {"format": 1}}, config)
