import shutil

import lightning as L
import pytest
import torch

from stcbench.data import STDataModule
from stcbench.data.sampler import EpochSampler
from stcbench.errors import ConfigError, DataError

from .conftest import write_taxibj_by_hand


def first_batch(loader):
    return next(iter(loader))


def test_batches_are_float32_b_t_c_h_w(generated_root):
    for name, shape in (("mmnist", (4, 20, 1, 64, 64)), ("taxibj", (4, 8, 2, 32, 32)),
                        ("kth", (4, 30, 1, 128, 128))):
        dm = STDataModule(name, generated_root, batch_size=4, val_batch_size=3,
                          train_samples=12, val_samples=5, test_samples=5)
        dm.prepare_data()
        dm.setup("fit")
        batch = first_batch(dm.train_dataloader())
        assert batch.shape == shape and batch.dtype == torch.float32
        assert 0 <= float(batch.min()) and float(batch.max()) <= 1
        assert len(dm.train_dataloader()) == 3                     # 12 // 4, remainder dropped
        assert [len(b) for b in dm.val_dataloader()] == [3, 2]     # no drop in evaluation
        assert dm.sizes == {"train": 12, "val": 5, "test": 5}


def test_train_order_is_seeded_and_changes_per_epoch(tmp_path):
    write_taxibj_by_hand(tmp_path, n_train=120, n_test=10)
    loaders = [STDataModule("taxibj", tmp_path, batch_size=8, seed=s).train_dataloader()
               for s in (1, 1, 2)]
    a, b, c = (first_batch(loader) for loader in loaders)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    sampler = loaders[0].sampler
    sampler.set_epoch(5)
    epoch5 = list(sampler)
    sampler.set_epoch(5)
    assert list(sampler) == epoch5 != list(EpochSampler(len(sampler), 1).indices(0))
    assert sorted(epoch5) == list(range(len(sampler)))


def test_mmnist_resamples_every_epoch_whatever_the_workers(generated_root):
    dm = STDataModule("mmnist", generated_root, batch_size=4, train_samples=8, seed=3)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    epoch0 = torch.cat(list(loader))
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat(list(loader))
    assert not torch.equal(epoch0, epoch1)
    workers = STDataModule("mmnist", generated_root, batch_size=4, train_samples=8, seed=3,
                           num_workers=2).train_dataloader()
    workers.sampler.set_epoch(1)
    torch.testing.assert_close(torch.cat(list(workers)), epoch1)


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch.clone()))
        return (self.weight * batch.mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_sets_the_epoch_of_the_sampler(generated_root):
    def fit():
        dm = STDataModule("mmnist", generated_root, batch_size=2, train_samples=4, seed=0)
        model = Recorder()
        L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, limit_val_batches=0, accelerator="cpu").fit(model, dm)
        return model.seen

    seen = fit()
    assert [epoch for epoch, _ in seen] == [0, 0, 1, 1]
    assert not torch.equal(seen[0][1], seen[2][1])
    dm = STDataModule("mmnist", generated_root, batch_size=2, train_samples=4, seed=0)
    expected = dm.train_dataloader()
    expected.sampler.set_epoch(1)
    torch.testing.assert_close(torch.cat([b for _, b in seen[2:]]), torch.cat(list(expected)))


def test_describe_records_selection_counts_and_source(generated_root, tmp_path):
    dm = STDataModule("kth", generated_root, selection="openstl_test", test_samples=7)
    info = dm.describe()
    assert info["selection"] == "openstl_test" and info["selected_on_test"] is True
    assert info["source"] == "generated" and info["generator"]["seed"] == 0
    assert info["counts"] == {"train": 16 * 6, "val": 9 * 6, "test": 7}
    assert info["frames"] == {"in": 10, "train_total": 30, "eval_total": 30}
    write_taxibj_by_hand(tmp_path, n_train=60, n_test=4)
    real = STDataModule("taxibj", tmp_path).describe()
    assert real["source"] == "real" and real["selected_on_test"] is False and real["generator"] is None


def test_generate_if_missing_only_fills_an_empty_root(tmp_path, capsys):
    dm = STDataModule("taxibj", tmp_path, generate_if_missing=True)
    dm.prepare_data()
    assert "embedded default" in capsys.readouterr().err
    assert dm.generated_now and dm.describe()["source"] == "generated"
    (tmp_path / "taxibj" / "dataset.npz").write_bytes(b"broken")
    again = STDataModule("taxibj", tmp_path, generate_if_missing=True)
    with pytest.raises(DataError, match="not a readable .npz file"):
        again.prepare_data()                                        # never overwrites user data
    shutil.rmtree(tmp_path / "taxibj")
    with pytest.raises(DataError, match="not found"):
        STDataModule("taxibj", tmp_path).prepare_data()             # never downloads or generates


def test_configuration_errors(generated_root):
    with pytest.raises(ConfigError, match="openstl_test"):
        STDataModule("mmnist", generated_root, selection="best")
    with pytest.raises(ConfigError, match="batch_size"):
        STDataModule("kth", generated_root, batch_size=32, train_samples=10).setup()
    with pytest.raises(ConfigError, match="positive"):
        STDataModule("kth", generated_root, batch_size=0)


def test_epoch_still_advances_when_lightning_wraps_the_sampler_for_ddp():
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    ranks = [DistributedSamplerWrapper(EpochSampler(10, seed=4, encode_epoch=True),
                                       num_replicas=2, rank=r, shuffle=False) for r in (0, 1)]
    first = [list(w) for w in ranks]
    second = [list(w) for w in ranks]
    assert sorted(first[0] + first[1]) == list(range(10))            # epoch 0, split over ranks
    assert sorted(second[0] + second[1]) == list(range(10, 20))      # epoch 1 draws new sequences


def test_generate_if_missing_says_whether_the_folder_was_missing_or_empty(tmp_path, capsys):
    STDataModule("taxibj", tmp_path / "a", generate_if_missing=True).prepare_data()
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a' / 'taxibj'} does not exist: generating" in err and "is empty" not in err
    (tmp_path / "b" / "taxibj").mkdir(parents=True)
    STDataModule("taxibj", tmp_path / "b", generate_if_missing=True).prepare_data()
    assert f"{tmp_path / 'b' / 'taxibj'} is empty: generating" in capsys.readouterr().err


@pytest.mark.parametrize("name, unit", [("mmnist", "fixed sequences"), ("taxibj", "of the last"),
                                        ("kth", "windows of 30 frames")])
def test_split_rules_state_the_capped_counts(generated_root, name, unit):
    full = STDataModule(name, generated_root).describe()
    capped = STDataModule(name, generated_root, batch_size=4, train_samples=8, val_samples=3,
                          test_samples=2).describe()
    assert capped["counts"]["val"] == 3 and capped["counts"]["test"] == 2
    rules = capped["rules"]
    assert f"the first 3 of {full['counts']['val']}" in rules["val"] and unit in rules["val"]
    assert f"the first 2 of {full['counts']['test']}" in rules["test"]
    assert "the first" not in full["rules"]["val"] and "the first" not in full["rules"]["test"]


def test_too_few_training_samples_for_each_ddp_process_is_refused(generated_root):
    """Under DDP each process draws its share of the split; with fewer than a batch each, no step would run."""
    from types import SimpleNamespace

    from stcbench.errors import ConfigError

    dm = STDataModule("mmnist", generated_root, batch_size=4, train_samples=8)
    dm.trainer = SimpleNamespace(world_size=3)              # 8 samples: 3 for each of 3 processes
    with pytest.raises(ConfigError, match="3 for each of the 3 processes, fewer than batch_size 4"):
        dm.setup("fit")
    dm = STDataModule("mmnist", generated_root, batch_size=4, train_samples=8)
    dm.trainer = SimpleNamespace(world_size=2)              # 4 each: one batch
    dm.setup("fit")


def test_an_empty_validation_or_test_split_is_refused_before_training(generated_root):
    """The tiny KTH data (31-frame videos) has windows for kth (30 frames) but none for kth40's 50: said at setup,
    not after an epoch trained without validation."""
    from stcbench.errors import ConfigError

    STDataModule("kth", generated_root, batch_size=2, train_samples=4).setup("fit")
    with pytest.raises(ConfigError, match="kth40: the val split of the data in .* holds no sequences"):
        STDataModule("kth40", generated_root, batch_size=2, train_samples=4).setup("fit")
