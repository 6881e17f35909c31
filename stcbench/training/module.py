"""`VideoPredictionModule`: the training recipe of network-and-training.md §1.3-1.6 and §2.

* training_step: scheduled-sampling mask from a dedicated seeded generator, the iteration
  counter in the checkpoint (eta resumes exactly), loss = per-element MSE over all T_total-1
  outputs against the detached target (§1.4).
* Learning rate: the per-epoch warm-up/cosine formula, set at the start of every epoch, or
  (`optim.schedule: onecycle`) OpenSTL's one-cycle schedule, set before every optimizer step.
* validation: fully autoregressive prediction, sample-weighted per-pixel MSE (pitfall 6).
* test: `PredictionMetrics` (per-frame, additive states) with autoregressive prediction; the
  number of predicted frames is taken from the batch, so the same step serves 10->20 and 10->40.
"""
from __future__ import annotations

import math
import random
import sys

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from stcbench.errors import NonFiniteLossError
from stcbench.training.cell_variants import recorded_variant, warn_on_resume, with_former_default
from stcbench.training.config import Config, config_from_dict
from stcbench.training.network import build_network, network_outputs, network_predict
from stcbench.engine.per_sequence import SequenceRecorder
from stcbench.engine.param_groups import parameter_groups, set_learning_rate, set_momentum
from stcbench.training.schedule import one_cycle_from_config, schedule_from_config


class WeightedMSE(Metric):
    """Sample-weighted per-pixel MSE: Σ squared errors / Σ elements, all-reduced by sum."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("sum_sq", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sequences", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        diff = pred.detach().to(torch.float64) - true.detach().to(torch.float64)
        self.sum_sq += (diff * diff).sum()
        self.count += diff.numel()
        self.sequences += diff.shape[0]

    def compute(self) -> torch.Tensor:
        return self.sum_sq / self.count.clamp_min(1)


class VideoPredictionModule(L.LightningModule):
    """One recurrent predictor trained with the paper recipe."""

    def __init__(self, config: Config | dict):
        super().__init__()
        # a mapping only when Lightning rebuilds the module from a checkpoint's hyper_parameters
        self.config: Config = config if isinstance(config, Config) else config_from_dict(config)
        self.save_hyperparameters({"config": self.config.to_dict()})
        c = self.config
        self.net, self.spec = build_network(c)
        self.in_frames = self.spec.in_frames
        self.lr_at = schedule_from_config(c.optim, c.trainer.max_epochs)
        self._one_cycle = None          # step -> (lr, momentum), once the trainer knows the number of steps
        from stcbench.models.sampling import ScheduledSampling

        self.sampling = ScheduledSampling(c.sampling.start_value, c.sampling.rate, c.sampling.stop_iter)
        self.mask_generator = torch.Generator()
        self.mask_generator.manual_seed(self._mask_seed(rank=0))
        self.val_mse = WeightedMSE()
        self.test_metrics = None        # created per test run (PredictionMetrics)
        self.test_results: dict | None = None
        self.prediction_buffer: list = []
        self._finite_flag: torch.Tensor | None = None    # accelerators: all losses finite since the last check

    # ------------------------------------------------------------------ setup
    def _mask_seed(self, rank: int) -> int:
        base = self.config.sampling.seed if self.config.sampling.seed is not None else self.config.seed * 7919 + 17
        return int(base) + 1_000_003 * rank

    def setup(self, stage: str) -> None:
        if stage == "fit":   # a resumed run restores the generator state after this hook
            self.mask_generator.manual_seed(self._mask_seed(self.global_rank))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        """One parameter group per (lr_scale, weight decay) asked for by the cells'
        `param_group_overrides()` (e.g. GLIF original: gates on lr/10, no weight decay)."""
        o = self.config.optim
        params = parameter_groups(self, o.lr, o.weight_decay)
        if o.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        elif o.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        if self.config.optim.schedule != "onecycle":
            set_learning_rate(opt, self.lr_at(0))
        return opt

    def on_train_epoch_start(self) -> None:
        if self.config.optim.schedule == "onecycle":
            lr = self._set_one_cycle_step()
        else:
            lr = self.lr_at(self.current_epoch)
            for optimizer in self.trainer.optimizers:
                set_learning_rate(optimizer, lr)
        self.log("lr", lr, on_step=False, on_epoch=True, rank_zero_only=True)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self.config.optim.schedule == "onecycle":
            self._set_one_cycle_step()

    def _set_one_cycle_step(self) -> float:
        """Learning rate (and beta1 / momentum) of optimizer step `global_step`, as OpenSTL's OneCycleLR
        gives it; its steps span all `max_epochs` (`trainer.estimated_stepping_batches`)."""
        if self._one_cycle is None:
            self._one_cycle = one_cycle_from_config(self.config.optim,
                                                    max(int(self.trainer.estimated_stepping_batches), 1))
        lr, momentum = self._one_cycle(self.global_step)
        for optimizer in self.trainer.optimizers:
            set_learning_rate(optimizer, lr)
            if self.config.optim.onecycle_cycle_momentum:
                set_momentum(optimizer, momentum)
        return lr

    # ------------------------------------------------------------------ training
    def scheduled_mask(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, T_out-1] mask of this iteration (1 = feed the ground truth), §1.5."""
        b, t = batch.shape[:2]
        slots = t - self.in_frames - 1
        if not self.config.sampling.enabled:
            return torch.zeros((b, slots), device=batch.device, dtype=batch.dtype)
        return self.sampling.mask(b, slots, generator=self.mask_generator, device=batch.device, dtype=batch.dtype)

    def training_step(self, batch, batch_idx):
        frames = _frames(batch)
        mask = self.scheduled_mask(frames)
        eta = self.sampling.eta()
        log_now = self._should_log_details()
        if log_now and self.config.logging.firing_rates:
            outputs, traces = network_outputs(self.net, frames, mask, return_traces=True)   # [B, T-1, C, H, W]
            self._log_traces(traces)
        else:
            outputs = network_outputs(self.net, frames, mask)
        loss = torch.mean((outputs - frames[:, 1:].detach()) ** 2)
        self._check_finite(loss)
        self.sampling.step()
        # prog_bar values are read back after every batch (a host sync); on accelerators the bar shows
        # the loss from the callback metrics instead, every log_every_n_steps (callbacks.ThrottledMetrics)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=loss.device.type == "cpu",
                 batch_size=frames.shape[0])
        if log_now:     # a Python number becomes a device tensor: a host sync on GPUs, so not every step
            self.log("train/eta", eta, on_step=True, on_epoch=False, batch_size=frames.shape[0])
        return loss

    def _should_log_details(self) -> bool:
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            return False
        return self.global_step % self.config.logging.log_every_n_steps == 0

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop on a non-finite loss. On CPU at once; on an accelerator the check is a device-side flag,
        read only every `logging.log_every_n_steps` steps and at the end of the epoch (reading it is a
        host sync, which would otherwise stall every step)."""
        finite = torch.isfinite(loss.detach()).all()
        if not self._defers_checks(loss):
            if not bool(finite):
                self._raise_non_finite(f"({float(loss.detach())}) at global step {self.global_step}")
            return
        self._finite_flag = finite if self._finite_flag is None else self._finite_flag & finite
        if self._should_log_details():
            self._flush_finite_check()

    def _defers_checks(self, loss: torch.Tensor) -> bool:
        return loss.device.type != "cpu"

    def _flush_finite_check(self) -> None:
        flag, self._finite_flag = self._finite_flag, None
        if flag is not None and not bool(flag):
            self._raise_non_finite(f"at or before global step {self.global_step}")

    def on_train_epoch_end(self) -> None:
        self._flush_finite_check()

    def _raise_non_finite(self, where: str) -> None:
        c = self.config
        detach_note = ""
        if any(getattr(m, "gradient_detach", None) == 0 for m in self.modules()):      # what the cells use
            detach_note = (" gradient_detach=0 on an STC cell (GroupNorm on spike-free groups amplifies gradients "
                           "~316x per step; try model.gradient_detach=1);")
        precision_note = ("" if c.trainer.precision in ("32-true", "64-true", "32", "64") else
                          f" reduced precision (trainer.precision={c.trainer.precision!r}; try 32-true or 64-true);")
        raise NonFiniteLossError(
            f"non-finite training loss {where} "
            f"(epoch {self.current_epoch}). Likely causes: learning rate too high (optim.lr={c.optim.lr}; "
            f"try a smaller value or trainer.gradient_clip_val);{detach_note}{precision_note} a cell option out of "
            f"its range (model.cell_options={c.model.cell_options}). The run was stopped; no metrics were written.")

    def _log_traces(self, traces: dict) -> None:
        """Per-layer firing rates and mean STC gates (A-1 = beta, B-1 = gamma; paper Fig. 2)."""
        for key, value in traces.items():
            layer, name = key.split("/", 1)
            if name == "spike":
                self.log(f"firing_rate/{layer}", value.float().mean(), on_step=True, on_epoch=False,
                         rank_zero_only=True)
            elif name == "gate_history":
                self.log(f"gates/{layer}_beta", (value - 1).float().mean(), on_step=True, on_epoch=False,
                         rank_zero_only=True)
            elif name == "gate_input":
                self.log(f"gates/{layer}_gamma", (value - 1).float().mean(), on_step=True, on_epoch=False,
                         rank_zero_only=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        if not self.config.logging.grad_norms or not self._should_log_details():
            return
        norms = gradient_norms(self.net)
        for name, value in norms.items():
            self.log(f"grad_norm/{name}", value, on_step=True, on_epoch=False, rank_zero_only=True)

    # ------------------------------------------------------------------ evaluation
    def predict_future(self, frames: torch.Tensor, out_frames: int | None = None) -> torch.Tensor:
        """Fully autoregressive prediction of the frames after the first `in_frames` (§1.6)."""
        out_frames = frames.shape[1] - self.in_frames if out_frames is None else out_frames
        return network_predict(self.net, frames[:, :self.in_frames], out_frames)

    def on_validation_epoch_start(self) -> None:
        self.val_mse.reset()

    def validation_step(self, batch, batch_idx):
        frames = _frames(batch)
        pred = self.predict_future(frames)
        self.val_mse.update(pred, frames[:, self.in_frames:])
        if batch_idx == 0 and self.config.logging.images:
            self._log_images(frames, pred)

    def on_validation_epoch_end(self) -> None:
        value = self.val_mse.compute()
        self.log("val/mse", value.float(), prog_bar=True, sync_dist=False)
        self.val_mse.reset()

    def on_test_epoch_start(self) -> None:
        from stcbench.metrics import PredictionMetrics

        self.test_metrics = PredictionMetrics().to(self.device)
        self.test_results = None
        self.prediction_buffer = []
        self.test_sequences = SequenceRecorder()
        self.test_per_sequence = None

    def test_step(self, batch, batch_idx):
        frames = _frames(batch)
        pred = self.predict_future(frames)
        true = frames[:, self.in_frames:]
        self.test_metrics.update(pred, true)
        self.test_sequences.add(self.test_metrics.last_per_sequence)
        if self.keep_predictions and sum(len(p[0]) for p in self.prediction_buffer) < self.keep_predictions:
            self.prediction_buffer.append((frames[:, :self.in_frames].detach().cpu(), true.detach().cpu(),
                                           pred.detach().cpu()))

    keep_predictions: int = 0
    test_per_sequence: dict | None = None       # {metric: per test sequence, "index"} (engine/per_sequence.py)
    test_log_prefix: str = "test"               # the logged metrics' prefix: which checkpoint and test this is

    def on_test_epoch_end(self) -> None:
        self.test_results = self.test_metrics.compute()
        self.test_per_sequence = self.test_sequences.collect(getattr(self, "_trainer", None))
        for key in ("mse", "mae", "ssim", "psnr", "mse_per_pixel"):
            value = self.test_results.get(key)
            if isinstance(value, (int, float, torch.Tensor)):
                self.log(f"{self.test_log_prefix}/{key}", float(value), sync_dist=False, rank_zero_only=True)

    def _log_images(self, frames: torch.Tensor, pred: torch.Tensor) -> None:
        trainer = getattr(self, "_trainer", None)
        if trainer is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

        grid = image_grid(frames[0, :self.in_frames], frames[0, self.in_frames:], pred[0])
        for logger in trainer.loggers:
            try:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image("val/prediction", grid, self.current_epoch, dataformats="HW")
                elif isinstance(logger, WandbLogger):
                    logger.log_image("val/prediction", [grid.numpy()], step=self.global_step,
                                     caption=[f"epoch {self.current_epoch}: context | truth | prediction"])
            except Exception:  # image logging must never break training
                pass

    # ------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["stcbench"] = {
            "sampling": self.sampling.state_dict(),
            "mask_generator": self.mask_generator.get_state(),
            "mask_generators": self._mask_generator_states(),
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate()},
            "format": 1,
            "cell_variant": recorded_variant(self),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        warn_on_resume(checkpoint, self.config)
        state = checkpoint.get("stcbench")
        if not state:
            return
        self.sampling.load_state_dict(state["sampling"])
        self._restore_mask_generator(state)
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            _set_numpy_state(rng["numpy"])
            random.setstate(rng["python"])


    def _mask_generator_states(self) -> list[torch.Tensor]:
        """Every rank's mask generator state (each rank draws its own masks); Lightning builds the checkpoint on
        every rank, so the gather is a collective all ranks take part in."""
        state = self.mask_generator.get_state()
        if self._trainer is None or self.trainer.world_size == 1:
            return [state]
        gathered = self.all_gather(state.to(self.device, torch.int64))
        return [row.to("cpu", torch.uint8) for row in gathered]

    def _restore_mask_generator(self, state: dict) -> None:
        """This rank's own mask generator state; a checkpoint from before they were gathered holds rank 0's alone,
        which the other ranks of a distributed resume cannot use: they keep their own seeds, and the resume draws
        other masks than an uninterrupted run would."""
        states = state.get("mask_generators")
        world = self.trainer.world_size if self._trainer is not None else 1
        if states is not None and len(states) == world:
            self.mask_generator.set_state(states[self.global_rank])
        elif world == 1 or self.global_rank == 0:
            self.mask_generator.set_state(state["mask_generator"])
        if world > 1 and (states is None or len(states) != world) and self.global_rank == 0:
            print(f"warning: this checkpoint holds the scheduled-sampling mask generators of "
                  f"{len(states) if states is not None else 'one of the'} processes, not of {world}: the resumed "
                  f"run draws other masks than an uninterrupted one would", file=sys.stderr)


def _numpy_state() -> list:
    """numpy's global RNG state with tensors instead of arrays (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _set_numpy_state(state) -> None:
    name, keys, pos, has_gauss, gauss = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def _frames(batch) -> torch.Tensor:
    """A batch is `[B, T, C, H, W]` or a tuple/dict holding it."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, dict):
        for key in ("frames", "seq", "x"):
            if key in batch:
                return batch[key]
    if isinstance(batch, (list, tuple)):
        if len(batch) == 2 and all(isinstance(b, torch.Tensor) and b.dim() == 5 for b in batch):
            return torch.cat(batch, dim=1)     # (inputs, targets)
        return batch[0]
    raise TypeError(f"unsupported batch type {type(batch).__name__}")


def gradient_norms(net: nn.Module) -> dict[str, float]:
    """L2 norm of the gradients: overall and per top-level layer (e.g. `cell_list.0`)."""
    named = [(name, param.grad) for name, param in net.named_parameters() if param.grad is not None]
    if not named:
        return {"total": 0.0}
    # one host sync for all parameters: the squared norms are gathered on the device first
    squares = torch.stack([grad.detach().double().pow(2).sum() for _, grad in named]).tolist()
    per_layer: dict[str, float] = {}
    total = 0.0
    for (name, _), sq in zip(named, squares):
        parts = name.split(".")
        layer = ".".join(parts[:2]) if parts[0].endswith("list") and len(parts) > 2 else parts[0]
        per_layer[layer] = per_layer.get(layer, 0.0) + sq
        total += sq
    norms = {layer: math.sqrt(v) for layer, v in per_layer.items()}
    norms["total"] = math.sqrt(total)
    return norms


def image_grid(context: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Rows context / truth / prediction of one sequence ([T, C, H, W] each) as a [H', W'] image."""
    def row(seq, length):
        seq = seq.detach().float().cpu().clamp(0, 1).mean(dim=1)    # channels averaged to gray
        frames = list(seq[:length]) + [torch.zeros_like(seq[0])] * (length - len(seq))
        return torch.cat(frames, dim=1)

    width = max(len(context), len(truth))
    return torch.cat([row(context, width), row(truth, width), row(pred, width)], dim=0)


def load_module(path, config: Config | None = None, dtype: torch.dtype | None = None) -> VideoPredictionModule:
    """A module from a checkpoint, built in `dtype` *before* the weights are copied in, so float64
    weights (converted official checkpoints) keep their precision. `config` replaces the stored one
    (the architecture must be the same)."""
    from stcbench.checkpoints import load_checkpoint, load_weights_into
    from stcbench.errors import ConfigError

    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{path} is not a stcbench checkpoint (it holds a {type(checkpoint).__name__}); pass a "
                          f".ckpt written by `stcbench fit` or `stcbench convert-official`")
    if config is None:
        config = config_from_dict((checkpoint.get("hyper_parameters") or {}).get("config"))
    module = VideoPredictionModule(with_former_default(checkpoint, config, path))
    if dtype is not None:
        module = module.to(dtype)
    load_weights_into(module, checkpoint, path)
    return module


def module_dtype(precision: str) -> torch.dtype | None:
    return torch.float64 if precision in ("64", "64-true") else None
