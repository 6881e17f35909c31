from stcbench.training.config import resolve_config
from stcbench.engine.trainer import build_trainer
from tests.training.helpers import tiny_config


def test_gradient_clipping_reaches_the_trainer(tmp_path):
    config = resolve_config(tiny_config(tmp_path, tmp_path, trainer={"gradient_clip_val": 0.5,
                                                                      "gradient_clip_algorithm": "value"}))
    trainer = build_trainer(config, tmp_path / "run")
    assert trainer.gradient_clip_val == 0.5 and trainer.gradient_clip_algorithm == "value"
    unclipped = build_trainer(resolve_config(tiny_config(tmp_path, tmp_path)), tmp_path / "run2")
    assert unclipped.gradient_clip_val is None
