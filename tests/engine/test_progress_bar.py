"""The progress bars count epochs from 1 ("Epoch 1/2"), as the run's summary and records do, and do not show the
logger's version (v_num)."""
from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from stcbench.engine.callbacks import epoch_description, progress_bar


def test_epoch_description_counts_from_one():
    assert epoch_description(0, 8) == "Epoch 1/8"
    assert epoch_description(7, 8) == "Epoch 8/8"
    assert epoch_description(3, -1) == "Epoch 4"          # no epoch limit (max_steps decides)
    assert epoch_description(0, None) == "Epoch 1"


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        return self.layer(batch).pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.ones(2, 2), batch_size=2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("kind", ["tqdm", "rich"])
def test_a_two_epoch_run_shows_epochs_1_and_2_of_2(kind, capsys, tmp_path):
    bar = progress_bar(kind)
    logger = CSVLogger(tmp_path, version="resumed-1")        # Lightning would show it as v_num in the bar
    trainer = L.Trainer(max_epochs=2, callbacks=[bar], logger=logger, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(Tiny())
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text, text
    assert "Epoch 0" not in text
    assert "v_num" not in text
