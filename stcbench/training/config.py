"""The video task's config: typed sections declared with the engine's one config mechanism
(stcbench.engine.schema): each field's type, default, help and check sit beside it.

Precedence (network-and-training.md §3 pitfall 2):
    dataclass defaults < config file (with `base:` inheritance) < explicit CLI overrides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stcbench.engine import schema
from stcbench.engine.schema import at_least, keyword_names, option, positive_finite, positive_list, within
from stcbench.engine.settings import (MAX_SEED, LoggingConfig, RunConfig, TrainerConfig, check_trainer,
                                      plugins_option, run_name_check, scale_label_check, seed_option)
from stcbench.errors import ConfigError


@dataclass
class DataConfig:
    """Dataset and loader settings."""

    dataset: str = option("mmnist", help="mmnist, taxibj, kth (also tests 10->40) or kth40")
    data_root: str = option("", help="folder holding the dataset files (\"\": $STCBENCH_DATA_ROOT, else datasets/)")
    batch_size: int = option(16, help="per-process batch for training", check=at_least(1))
    eval_batch_size: int | None = option(None, help="validation/test batch (default: batch_size)",
                                         check=at_least(1, allow_none=True))
    num_workers: int = option(0, help="DataLoader worker processes", check=at_least(0))
    selection: Literal["val", "openstl_test"] = option("val", help="model selection split (pitfall 1)")
    train_samples: int | None = option(None, help="cap on training samples per epoch (None = all)",
                                       check=at_least(1, allow_none=True, none_means="all"))
    val_samples: int | None = option(None, help="cap on validation samples",
                                     check=at_least(1, allow_none=True, none_means="all"))
    test_samples: int | None = option(None, help="cap on test samples",
                                      check=at_least(1, allow_none=True, none_means="all"))
    generate_if_missing: bool = option(False, help="write the small embedded default dataset when the folder "
                                                   "is absent")
    test_long: bool | None = option(None, help="also test 10->40 (None = automatically for kth)")
    options: dict = option(help="extra keyword arguments for the DataModule (not the ones the keys above set)",
                           factory=dict, check=keyword_names)

    def validate(self) -> None:
        for key in self.options:
            if key in CONFIG_SET_DATA_KEYS:
                own = CONFIG_SET_DATA_KEYS[key]
                raise ConfigError(f"data.options.{key} sets what the config key {own} sets (checked and recorded "
                                  f"there): set {own} instead and drop data.options.{key}")
        if self.train_samples is not None and self.train_samples < self.batch_size:
            raise ConfigError(f"data.train_samples {self.train_samples} is fewer than data.batch_size "
                              f"{self.batch_size}: batches drop the remainder, so nothing would train; lower "
                              f"data.batch_size or raise data.train_samples")


CONFIG_SET_DATA_KEYS = {**{key: f"data.{key}" for key in ("dataset", "data_root", "batch_size", "num_workers",
                                                            "selection", "train_samples", "val_samples",
                                                            "test_samples", "generate_if_missing")},
                        "val_batch_size": "data.eval_batch_size", "seed": "seed"}


def _odd_positive(value: int) -> str | None:
    return None if value >= 1 and value % 2 == 1 else "must be a positive odd number"


def _image_size(value) -> str | None:
    return None if value is None or (len(value) == 2 and min(value) >= 1) else "must be [height, width] or null"


@dataclass
class ModelConfig:
    """Recurrent predictor: patching, stacked cells, 1x1 readout."""

    cell: str = option("stclif", help="any registered cell (`stcbench cells`)")
    num_hidden: list[int] = option(help="channels per layer (multiples of 16)", factory=lambda: [256, 256, 256],
                                   check=positive_list)
    filter_size: int = option(5, help="conv kernel of every synapse", check=_odd_positive)
    patch_size: int | None = option(None, help="None = the dataset's patch size",
                                    check=at_least(1, allow_none=True, none_means="dataset default"))
    gradient_detach: int | None = option(None, help="STC cells: 0 full BPTT through the circuit, 1 detached",
                                         check=lambda v: None if v in (None, 0, 1) else "must be 0, 1 or null")
    cell_options: dict = option(help="extra keyword arguments for the cell; the data-derived ones (te_steps, "
                                     "time_steps, *_spatial) are filled in unless given", factory=dict,
                                check=keyword_names)
    in_frames: int | None = option(None, help="context frames (null: the dataset's)",
                                   check=at_least(1, allow_none=True, none_means="dataset default"))
    out_frames: int | None = option(None, help="predicted frames (null: the dataset's)",
                                    check=at_least(1, allow_none=True, none_means="dataset default"))
    channels: int | None = option(None, help="image channels (null: the dataset's)",
                                  check=at_least(1, allow_none=True, none_means="dataset default"))
    image_size: list[int] | None = option(None, help="[H, W] of converted checkpoints and arrays; a run on a "
                                                     "dataset needs its frame size (frames are not resized); "
                                                     "null: the dataset's", check=_image_size)
    fast: bool = option(False, help="fused/multi-step execution path (same numbers up to round-off, ~0.5x memory)")
    recompute: bool | None = option(None, help="fast path: recompute the element-wise neuron dynamics in backward "
                                               "(less memory, slower); null = on the CPU for circuit (STC) cells "
                                               "only; STC-LIF, STC-PLIF and STC-LM-H on the CPU use their fused "
                                               "step either way")
    conv_algorithm: Literal["auto", "direct", "winograd"] = option(
        "auto", help="fast path on CPU: auto = Winograd F(4x4,5x5) for 5x5 synapse convs with >= 32 channels in "
                     "and out and in x out >= 2048; winograd = every 5x5 synapse conv; direct = never")
    channels_last: bool | None = option(None, help="fast path: feature maps in channels-last memory order; null = "
                                                   "on the CPU only (slower convolutions on GPUs)")
    compile: bool = option(False, help="fast path: torch.compile each layer's step after its input convolution "
                                       "(GPUs; not used by the fused STC-LIF/STC-PLIF/STC-LM-H CPU step)")


@dataclass
class OptimConfig:
    """Optimizer and the learning-rate schedule (per-epoch warm-up / cosine, or OpenSTL's per-step one-cycle)."""

    optimizer: Literal["adam", "adamw", "sgd"] = option(
        "adam", help="groups per cell hints (GLIF original: gates lr/10)")
    lr: float = option(1e-3, help="peak learning rate", check=positive_finite)
    weight_decay: float = option(0.0, help="0 in the paper", check=at_least(0))
    betas: list[float] = option(help="Adam betas", factory=lambda: [0.9, 0.999],
                                check=lambda v: None if len(v) == 2 and all(0 <= b < 1 for b in v)
                                else "must be two numbers in [0, 1)")
    eps: float = option(1e-8, help="Adam epsilon", check=positive_finite)
    momentum: float = option(0.9, help="sgd only", check=at_least(0))
    schedule: Literal["cosine", "constant", "onecycle"] = option(
        "cosine", help="cosine: warm-up then cosine, set per epoch; onecycle: OpenSTL's default (torch OneCycleLR "
                       "over all max_epochs), set per optimizer step")
    warmup_epochs: int = option(10, help="linear warm-up epochs", check=at_least(0))
    warmup_lr: float = option(1e-5, help="learning rate of the first epoch (warm-up from it)", check=at_least(0))
    min_lr: float = option(1e-5, help="paper Table 9 (pitfall 3: official TaxiBJ/KTH runs used 1e-4)",
                           check=at_least(0))
    onecycle_pct_start: float = option(0.3, help="onecycle: share of the steps spent rising to lr",
                                       check=within(0, 1, open_lower=True, open_upper=True))
    onecycle_div_factor: float = option(25.0, help="onecycle: the first step's lr is lr / div_factor",
                                        check=positive_finite)
    onecycle_final_div_factor: float = option(
        1.0e4, help="onecycle: the last step's lr is lr / div_factor / final_div_factor (OpenSTL: 1e4)",
        check=positive_finite)
    onecycle_cycle_momentum: bool = option(
        True, help="onecycle: Adam beta1 (SGD momentum) runs 0.95 -> 0.85 -> 0.95 against the lr, as torch's "
                   "OneCycleLR does")


@dataclass
class SamplingConfig:
    """Scheduled sampling of the future inputs during training."""

    enabled: bool = option(True, help="false: training feeds back its own predictions only")
    start_value: float = option(1.0, help="eta at iteration 0 (pitfall 4: honoured, unlike the official code)",
                                check=within(0, 1))
    rate: float = option(2e-5, help="eta decrease per iteration", check=at_least(0))
    stop_iter: int = option(50000, help="eta = 0 from this iteration on", check=at_least(0))
    seed: int | None = option(None, help="mask generator seed (None = derived from the run seed)",
                              check=lambda v: None if v is None or 0 <= v <= MAX_SEED else
                              f"must be in [0, {MAX_SEED}] or null")


@dataclass
class VideoLoggingConfig(LoggingConfig):
    """Loggers, progress bar and what gets logged."""

    log_every_n_steps: int = option(50, help="also the period of gradient-norm and firing-rate logging",
                                    check=at_least(1))
    grad_norms: bool = option(True, help="log the global and per-layer gradient norms")
    firing_rates: bool = option(True, help="log per-layer firing rates (spiking cells)")
    images: bool = option(True, help="log a prediction image per validation epoch (wandb/tensorboard)")


@dataclass
class RunSettings(RunConfig):
    """Where and how results are written."""

    output_dir: str = option("runs", help="runs/<dataset>/<cell>/<name>/")
    name: str | None = option(None, help="default: <timestamp>-seed<seed>", check=run_name_check)
    scale: str = option("custom", help="label recorded with the results: paper | small | quick | demo | custom",
                        check=scale_label_check)
    save_predictions: bool = option(False, help="write predictions.npz of the selected checkpoint")
    predictions_limit: int = option(64, help="sequences kept in predictions.npz", check=at_least(1))


@dataclass
class Config:
    """A complete run description (`stcbench fit --config FILE`)."""

    seed: int = seed_option(42)
    task: Literal["video"] = option("video", help="video prediction (configs/memory/ use task: memory)")
    data: DataConfig = option(help="dataset and loader settings", factory=DataConfig)
    model: ModelConfig = option(help="the recurrent predictor", factory=ModelConfig)
    optim: OptimConfig = option(help="optimizer and schedule", factory=OptimConfig)
    sampling: SamplingConfig = option(help="scheduled sampling", factory=SamplingConfig)
    trainer: TrainerConfig = option(help="Lightning Trainer settings", factory=TrainerConfig)
    logging: VideoLoggingConfig = option(help="loggers and what gets logged", factory=VideoLoggingConfig)
    run: RunSettings = option(help="where and how results are written", factory=RunSettings)
    plugins: list[str] = plugins_option()

    def validate(self) -> None:
        check_trainer(self.trainer)
        if self.data.test_long:
            from stcbench.data import get_dataset_spec

            if get_dataset_spec(self.data.dataset).folder != "kth":
                raise ConfigError(f"data.test_long: true is the KTH 10->40 test beside 10->20; {self.data.dataset} has "
                                  f"no long test: drop it (or set it to null)")

    def to_dict(self) -> dict:
        return schema.to_dict(self)


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------
def config_from_dict(data: dict) -> Config:
    """Validate a (merged) mapping into a `Config`. Missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    return schema.build(Config, {k: v for k, v in data.items() if k != "base"})


def resolve_config(source: str | Path | dict | Config | None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults < `source` (a YAML path, a mapping or a Config) < `overrides` (dotted keys)."""
    if isinstance(source, Config):
        source = source.to_dict()
    return schema.resolve(Config, source, overrides)


def config_reference() -> list[tuple[str, str, Any]]:
    """(dotted key, type description, default) of every config key, for the docs."""
    return [(key, kind, default) for key, kind, default, _ in schema.field_rows(Config)]


def reference_markdown() -> str:
    """The config key table of docs/configs.md, generated from the declarations."""
    return schema.reference_markdown(Config)
