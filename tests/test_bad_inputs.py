"""Every command x each class of bad input: exit code 2, one line on stderr naming the problem, no
traceback, nothing created, and nothing that existed before changed (hashed).

Commands run in-process (`stcbench.cli.main`); each case builds its inputs in a fresh folder, which
is hashed before and after. The classes: missing, empty, truncated, wrong type, wrong shape,
unreadable, read-only destination, an output path under a file, hostile pickle, path traversal,
concurrent use (a run folder already taken) and invalid settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from stcbench.cli import main

SMALL = ["--set", "trainer.max_epochs=1", "--set", "data.train_samples=4", "--set", "data.val_samples=2",
         "--set", "data.test_samples=2", "--set", "logging.progress_bar=none", "--set", "logging.loggers=[csv]"]


# ----------------------------------------------------------------------------------------- shared inputs
@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """A generated Moving MNIST folder and one finished tiny run (read-only use: copied into each case)."""
    from stcbench.data import generate_dataset
    from stcbench.training.runner import fit
    from tests.training.helpers import tiny_config

    root = tmp_path_factory.mktemp("shared")
    generate_dataset("mmnist", root / "data")
    run = fit(tiny_config(root / "data", root / "runs", epochs=1, name="done"))
    return {"data": root / "data", "run": run}


def read_only_folder(tmp: Path) -> Path:
    """A folder no file can be created in: a mode-555 folder, or (as root, who ignores modes) /sys."""
    folder = tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    candidates = [folder, Path("/sys")] if os.geteuid() == 0 else [folder]
    for candidate in candidates:
        try:
            (candidate / ".probe").write_text("")
        except OSError:
            return candidate
        (candidate / ".probe").unlink()
    pytest.skip("no read-only folder available")


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def frames(path: Path, shape=(1, 10, 1, 64, 64), dtype=np.float32, scale=1.0) -> Path:
    np.save(path, (np.random.default_rng(0).random(shape) * scale).astype(dtype))
    return path


# ----------------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    kind: str
    argv: Callable[[Path, dict], list[str]]            # (case folder, shared inputs) -> argv
    expect: str                                      # a phrase the one error line must contain
    setup: Callable[[Path, dict], None] = field(default=lambda tmp, shared: None)


# ten levels of nine YAML aliases each: 9^10 values once written out ("billion laughs")
LAUGHS = ("model:\n  cell_options:\n    x0: &a0 [" + ", ".join(["l"] * 9) + "]\n" + "".join(
    f"    x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))).encode()


def write(name: str, content: bytes):
    def setup(tmp: Path, shared):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content)
    return setup


def copy_run(tmp: Path, shared) -> None:
    shutil.copytree(shared["run"], tmp / "run")


def fit_argv(*extra: str):
    return lambda tmp, s: ["fit", "--config", "quick/mmnist", "--data-root", str(s["data"]),
                           "--output-dir", str(tmp / "runs"), *SMALL, *extra]


def hostile(name: str):
    def setup(tmp: Path, shared):
        torch.save({"state_dict": {}, "hyper_parameters": {"config": Payload(tmp / "PWNED")}}, tmp / name)
    return setup


def taken_run(tmp: Path, shared) -> None:
    run = tmp / "runs" / "mmnist" / "stclif" / "taken"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text('{"test": {"mse": 1.0}}')
    (run / "checkpoints" / "last.ckpt").write_bytes(b"someone else's weights")


def kth_tree(tmp: Path) -> list[Path]:
    from stcbench.data.kth import ACTIONS

    videos = [tmp / "data" / "kth" / action / f"person01_{action}_d1_uncomp" for action in ACTIONS]
    for video in videos:
        video.mkdir(parents=True)
    return videos


def dangling_kth_frame(tmp: Path, shared) -> None:
    for video in kth_tree(tmp):
        (video / "image_0001.jpg").symlink_to(tmp / "nowhere.jpg")


def garbage_kth_frame(tmp: Path, shared) -> None:
    for video in kth_tree(tmp):
        (video / "image_0001.jpg").write_bytes(b"not a jpeg")


def unreadable_kth_folder(tmp: Path, shared) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads folders without read permission")
    videos = kth_tree(tmp)
    videos[0].chmod(0o311)


def truncated_frames(tmp: Path, shared) -> None:
    whole = frames(tmp / "whole.npy").read_bytes()
    (tmp / "whole.npy").unlink()
    (tmp / "in.npy").write_bytes(whole[:2000])


def data_file_is_a_folder(tmp: Path, shared) -> None:
    shutil.copytree(shared["data"], tmp / "data")
    for path in (tmp / "data").rglob("*.npy"):
        path.unlink()
        path.mkdir()


def two_arrays(shape_pred=(1, 2, 1, 8, 8), shape_true=(1, 2, 1, 8, 8), folder: str | None = None):
    def setup(tmp: Path, shared):
        frames(tmp / "p.npy", shape_pred)
        frames(tmp / "t.npy", shape_true)
        if folder:
            (tmp / folder).mkdir()
    return setup


def bad_metrics(content: bytes):
    def setup(tmp: Path, shared):
        run = tmp / "runs" / "mmnist" / "lif" / "r"
        run.mkdir(parents=True)
        (run / "metrics.json").write_bytes(content)
    return setup


PREDICT = lambda tmp, s, ckpt=None, inp=None: ["predict", str(ckpt or s["run"]), "--input", str(inp or tmp / "in.npy"),
                                               "--output", str(tmp / "out.npy")]
EVALUATE = lambda tmp, s, pred="p.npy", true="t.npy": ["evaluate", "--pred", str(tmp / pred), "--true", str(tmp / true)]

CASES = {
    # --- missing
    "fit/missing config": Case("missing", lambda t, s: ["fit", "--config", str(t / "nope.yaml")], "does not exist"),
    "fit/missing data": Case("missing", lambda t, s: ["fit", "--config", "quick/mmnist", "--data-root", str(t / "no"),
                                                      "--set", "data.generate_if_missing=false",
                                                      "--output-dir", str(t / "runs")], "not found"),
    "fit/missing resume checkpoint": Case("missing", fit_argv("--ckpt-path", "/nonexistent/last.ckpt"), "does not exist"),
    "test/missing checkpoint": Case("missing", lambda t, s: ["test", "--ckpt-path", str(t / "no.ckpt")], "does not exist"),
    "predict/missing input": Case("missing", lambda t, s: PREDICT(t, s), "does not exist"),
    "evaluate/missing arrays": Case("missing", lambda t, s: EVALUATE(t, s), "does not exist"),
    "convert/missing file": Case("missing", lambda t, s: ["convert-official", str(t / "no.pth"), "--cell", "lif",
                                                          "--dataset", "mmnist", "-o", str(t / "c.ckpt")], "does not exist"),
    "table/missing runs": Case("missing", lambda t, s: ["table", "--runs", str(t / "none")], "does not exist"),
    "bench/missing configs": Case("missing", lambda t, s: ["bench", "--suite", "quick", "--configs", str(t / "none"),
                                                          "--out", str(t / "b")], "does not exist"),
    "profile/missing config": Case("missing", lambda t, s: ["profile", "--config", str(t / "none.yaml")], "does not exist"),
    "demo/missing config": Case("missing", lambda t, s: ["demo", "--config", str(t / "none.yaml"), "--out", str(t / "d")],
                                "does not exist"),
    "data check/missing files": Case("missing", lambda t, s: ["data", "check", "--dataset", "mmnist", "--data-root",
                                                             str(t / "none")], "file not found"),
    # --- empty
    "fit/empty config": Case("empty", lambda t, s: ["fit", "--config", str(t / "c.yaml"), "--output-dir", str(t / "o"),
                                                    "--set", "model.num_hidden=[]"], "num_hidden", write("c.yaml", b"")),
    "test/empty checkpoint": Case("empty", lambda t, s: ["test", "--ckpt-path", str(t / "e.ckpt")], "cannot read checkpoint",
                                  write("e.ckpt", b"")),
    "predict/empty input": Case("empty", lambda t, s: PREDICT(t, s), "not a readable", write("in.npy", b"")),
    "evaluate/empty arrays": Case("empty", lambda t, s: EVALUATE(t, s), "not a readable",
                                  lambda t, s: [write(n, b"")(t, s) for n in ("p.npy", "t.npy")]),
    # --- truncated
    "test/truncated checkpoint": Case("truncated", lambda t, s: ["test", "--ckpt-path", str(t / "t.ckpt")],
                                      "cannot read checkpoint",
                                      lambda t, s: (t / "t.ckpt").write_bytes((s["run"] / "checkpoints" / "last.ckpt")
                                                                             .read_bytes()[:5000])),
    "predict/truncated input": Case("truncated", lambda t, s: PREDICT(t, s), "not a readable", truncated_frames),
    # --- wrong type
    "fit/binary config": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")], "not a text",
                              write("c.yaml", bytes(range(256)))),
    "fit/config is a list": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")], "mapping",
                                 write("c.yaml", b"- 1\n- 2\n")),
    "fit/config is a device": Case("wrong type", lambda t, s: ["fit", "--config", "/dev/zero"], "not a regular file"),
    "fit/empty base": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")], "none empty",
                           write("c.yaml", b"base: ''\n")),
    "profile/negative warm-up": Case("wrong type", lambda t, s: ["profile", "--warmup", "-1"], "--warmup -1"),
    "fit/config is a folder": Case("wrong type", lambda t, s: ["fit", "--config", str(t)], "directory"),
    "fit/seed beyond numpy": Case("wrong type", fit_argv("--seed", "1099511627776"), "seed"),
    "fit/negative eps": Case("wrong type", fit_argv("--set", "optim.eps=-1"), "optim.eps"),
    "fit/validation every 0 epochs": Case("wrong type", fit_argv("--set", "trainer.check_val_every_n_epoch=0"),
                                          "check_val_every_n_epoch"),
    "fit/validation after the last epoch": Case("wrong type", fit_argv("--set", "trainer.check_val_every_n_epoch=99"),
                                                "no validation would run"),
    "fit/limit too small for the split": Case("wrong type", fit_argv("--set", "trainer.limit_train_batches=0.0001"),
                                              "limit_train_batches"),
    "fit/accumulate 0 batches": Case("wrong type", fit_argv("--set", "trainer.accumulate_grad_batches=0"),
                                     "accumulate_grad_batches"),
    "fit/limit -1 batches": Case("wrong type", fit_argv("--set", "trainer.limit_train_batches=-1"), "limit_train_batches"),
    "fit/limit 0 batches": Case("wrong type", fit_argv("--set", "trainer.limit_train_batches=0"), "limit_train_batches"),
    "fit/max_steps 0": Case("wrong type", fit_argv("--set", "trainer.max_steps=0"), "max_steps"),
    "fit/unknown accelerator": Case("wrong type", fit_argv("--accelerator", "warp"), "trainer.accelerator"),
    "fit/unknown strategy": Case("wrong type", fit_argv("--strategy", "warp"), "trainer.strategy"),
    "predict/uint8 input": Case("wrong type", lambda t, s: PREDICT(t, s), "uint8",
                                lambda t, s: frames(t / "in.npy", dtype=np.uint8)),
    "predict/object array": Case("wrong type", lambda t, s: PREDICT(t, s), "Python objects",
                                 lambda t, s: np.save(t / "in.npy", np.array([{"a": 1}], dtype=object),
                                                      allow_pickle=True)),
    "evaluate/object array": Case("wrong type", lambda t, s: EVALUATE(t, s), "Python objects",
                                  lambda t, s: [np.save(t / n, np.array([None], dtype=object), allow_pickle=True)
                                                for n in ("p.npy", "t.npy")]),
    "predict/input is a folder": Case("wrong type", lambda t, s: PREDICT(t, s, inp=t / "dir"), "directory",
                                      lambda t, s: (t / "dir").mkdir()),
    "evaluate/--out is the --true file": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "t.npy")],
                                              "is the --true file", two_arrays()),
    "test/a torch file holding a list": Case("wrong type", lambda t, s: ["test", str(t / "l.ckpt")],
                                             "not a stcbench checkpoint",
                                             lambda t, s: torch.save([torch.zeros(2)], t / "l.ckpt")),
    "predict/a torch file holding a tensor": Case("wrong type", lambda t, s: PREDICT(t, s, ckpt=t / "l.ckpt"),
                                                  "not a stcbench checkpoint",
                                                  lambda t, s: (frames(t / "in.npy"), torch.save(torch.zeros(2),
                                                                                                 t / "l.ckpt"))),
    "fit/resume from a torch file holding a list": Case(
        "wrong type", lambda t, s: fit_argv("--ckpt-path", str(t / "l.ckpt"))(t, s), "not a checkpoint to resume",
        lambda t, s: torch.save([1, 2], t / "l.ckpt")),
    "test/weights of another network": Case(
        "wrong type", lambda t, s: ["test", str(t / "w.ckpt")], "do not fit the network",
        lambda t, s: torch.save({**torch.load(s["run"] / "checkpoints" / "best.ckpt", weights_only=False),
                                 "state_dict": {"net.bogus": torch.zeros(3)}}, t / "w.ckpt")),
    "fit/--devices the CPU cannot take": Case("wrong type", fit_argv("--devices", "0"), "cannot make a Trainer"),
    "fit/a strategy the CPU cannot run": Case("wrong type", fit_argv("--strategy", "fsdp"), "cannot make a Trainer"),
    "table/records nested too deeply": Case("wrong type", lambda t, s: ["table", "--runs", str(t / "runs"), "--table",
                                                                        "summary"], "no runs for table summary",
                                            write("runs/mmnist/lif/a/metrics.json", b"[" * 100000)),
    "predict/more frames than the disk holds": Case("wrong type",
                                                    lambda t, s: PREDICT(t, s) + ["--out-frames", "100000000000"],
                                                    "GiB free", lambda t, s: frames(t / "in.npy")),
    "test/a record naming another run's checkpoint": Case(
        "wrong type", lambda t, s: ["test", str(t / "run")], "best.ckpt",        # its own, not the other run's
        lambda t, s: (copy_run(t, s), shutil.rmtree(t / "run" / "checkpoints"), (t / "run" / "checkpoints").mkdir(),
                      (t / "run" / "checkpoints" / "best.ckpt").write_bytes(b"x"),
                      shutil.copy(s["run"] / "checkpoints" / "best.ckpt", t / "other.ckpt"),
                      (t / "run" / "metrics.json").write_text(json.dumps(
                          {**json.loads((t / "run" / "metrics.json").read_text()),
                           "best_checkpoint": str(t / "other.ckpt")})))),
    "fit/model.channels of other frames": Case("wrong type", fit_argv("--set", "model.channels=3"),
                                               "contradicts the mmnist frames"),
    "bench/--out inside a run": Case("wrong type", lambda t, s: ["bench", "--suite", "quick", "--cells", "lif",
                                                                 "--datasets", "mmnist", "--out", str(t / "run" / "b")],
                                     "lies inside the run", copy_run),
    "demo/--out inside a run": Case("wrong type", lambda t, s: ["demo", "--cells", "lif", "--out", str(t / "run")],
                                    "lies inside the run", copy_run),
    "table/--out inside a run": Case("wrong type", lambda t, s: ["table", "--runs", str(t / "run"), "--out",
                                                                 str(t / "run" / "checkpoints")],
                                     "lies inside the run", copy_run),
    "data/generate into a run": Case("wrong type", lambda t, s: ["data", "generate", "--dataset", "taxibj",
                                                                 "--data-root", str(t / "run")],
                                     "lies inside the run", copy_run),
    "evaluate/--out is a pipe": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "fifo")],
                                     "not a regular file", lambda t, s: (two_arrays()(t, s), os.mkfifo(t / "fifo"))),
    "evaluate/--out is a link": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "link.json")],
                                     "is a symbolic link", lambda t, s: (two_arrays()(t, s), (t / "x.json").write_text(
                                         "{}"), (t / "link.json").symlink_to(t / "x.json"))),
    "evaluate/--out is the --pred file": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "p.npy")],
                                              "is the --pred file", two_arrays()),
    "evaluate/--out names an array": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "m.npy")],
                                          "written as JSON", two_arrays()),
    "evaluate/--out is a folder": Case("wrong type", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "dir")], "is a folder",
                                       two_arrays(folder="dir")),
    "test/--dataset of frames of another shape": Case("wrong shape", lambda t, s: ["test", "--ckpt-path", str(s["run"]),
                                                                                "--dataset", "taxibj"],
                                                       "a model tests only on frames of its own shape"),
    "test/--set of the trained architecture": Case("wrong type", lambda t, s: ["test", "--ckpt-path", str(s["run"]),
                                                                             "--set", "model.num_hidden=32,32"],
                                                    "model under test is the one its checkpoint trained"),
    "fit/data file is a folder": Case("wrong type", lambda t, s: ["fit", "--config", "quick/mmnist", "--data-root",
                                                                  str(t / "data"), "--set", "data.generate_if_missing=false",
                                                                  "--output-dir", str(t / "o")], "is a directory",
                                      data_file_is_a_folder),
    "table/--runs is a file": Case("wrong type", lambda t, s: ["table", "--runs", str(t / "f")], "is a file",
                                   write("f", b"\xff")),
    # --- wrong shape
    "fit/out_frames beyond the data": Case("wrong shape", fit_argv("--set", "model.out_frames=25"), "model.out_frames"),
    "fit/in_frames beyond the data": Case("wrong shape", fit_argv("--set", "model.in_frames=25"), "model.in_frames"),
    "predict/4-d input": Case("wrong shape", lambda t, s: PREDICT(t, s), "5 dimensions",
                              lambda t, s: frames(t / "in.npy", (10, 1, 64, 64))),
    "predict/too few frames": Case("wrong shape", lambda t, s: PREDICT(t, s), "context frames",
                                   lambda t, s: frames(t / "in.npy", (1, 3, 1, 64, 64))),
    "evaluate/shapes differ": Case("wrong shape", lambda t, s: EVALUATE(t, s), "shape",
                                   two_arrays(shape_true=(1, 3, 1, 8, 8))),
    "fit/KTH frame is not a JPEG": Case("truncated", lambda t, s: [
        "fit", "--config", "quick/kth", "--data-root", str(t / "data"), "--set", "data.generate_if_missing=false",
        "--output-dir", str(t / "o")], "cannot decode", garbage_kth_frame),
    # --- unreadable
    "fit/KTH frame is a dangling link": Case("unreadable", lambda t, s: [
        "fit", "--config", "quick/kth", "--data-root", str(t / "data"), "--set", "data.generate_if_missing=false",
        "--output-dir", str(t / "o")], "cannot read the frame", dangling_kth_frame),
    "fit/KTH video folder without read permission": Case("unreadable", lambda t, s: [
        "fit", "--config", "quick/kth", "--data-root", str(t / "data"), "--set", "data.generate_if_missing=false",
        "--output-dir", str(t / "o")], "cannot list", unreadable_kth_folder),
    # --- read-only destination
    "fit/read-only output": Case("read-only", lambda t, s: fit_argv()(t, s) + ["--output-dir",
                                                                              str(read_only_folder(t) / "runs")], "permi"),
    "test/read-only --output": Case("read-only", lambda t, s: ["test", "--ckpt-path", str(s["run"]), "--output",
                                                               str(read_only_folder(t) / "m.json")] + SMALL[6:], "permi"),
    "predict/read-only output": Case("read-only", lambda t, s: ["predict", str(s["run"]), "-i", str(t / "in.npy"), "-o",
                                                                str(read_only_folder(t) / "o.npy")], "permi",
                                     lambda t, s: frames(t / "in.npy", (1, 10, 1, 64, 64))),
    "evaluate/read-only --out": Case("read-only", lambda t, s: EVALUATE(t, s) + ["--out", str(read_only_folder(t) / "m.json")],
                                     "permi", two_arrays()),
    "table/read-only --out": Case("read-only", lambda t, s: ["table", "--runs", str(s["run"].parent), "--table", "2",
                                                             "--out", str(read_only_folder(t) / "tables")], "permi"),
    "data generate/read-only root": Case("read-only", lambda t, s: ["data", "generate", "--dataset", "mmnist",
                                                                    "--data-root", str(read_only_folder(t) / "d")], "permi"),
    # --- hostile pickle
    "fit/hostile resume checkpoint": Case("hostile pickle", fit_argv("--ckpt-path", "{tmp}/h.ckpt"), "refused to load",
                                          hostile("h.ckpt")),
    "test/hostile checkpoint": Case("hostile pickle", lambda t, s: ["test", str(t / "h.ckpt")], "refused to load",
                                    hostile("h.ckpt")),
    "predict/hostile checkpoint": Case("hostile pickle", lambda t, s: PREDICT(t, s, ckpt=t / "h.ckpt"), "refused to load",
                                       lambda t, s: (hostile("h.ckpt")(t, s), frames(t / "in.npy"))),
    "convert/hostile checkpoint": Case("hostile pickle", lambda t, s: ["convert-official", str(t / "h.ckpt"), "--cell",
                                                                       "lif", "--dataset", "mmnist", "-o",
                                                                       str(t / "c.ckpt")], "refused to load",
                                       hostile("h.ckpt")),
    "convert/an stcbench checkpoint": Case("wrong type", lambda t, s: ["convert-official", str(s["run"] / "checkpoints" / "best.ckpt"),
                                                                    "--cell", "lif", "--dataset", "mmnist", "-o",
                                                                    str(t / "c.ckpt")], "already an stcbench checkpoint"),
    # --- path traversal
    "bench/memory suite of an unknown cell": Case("path traversal", lambda t, s: [
        "bench", "--suite", "memory", "--cells", "foo", "--tasks", "adding", "--out", str(t / "b")], "unknown cell",
        lambda t, s: (t / "b").mkdir() or write("b/memory_results.md", b"| the earlier table |")(t, s)),
    "fit/run name ../../x": Case("path traversal", fit_argv("--run-name", "../../../x"), "run.name"),
    "fit/run name a/b": Case("path traversal", fit_argv("--run-name", "a/b"), "run.name"),
    "bench/unknown cell": Case("path traversal", lambda t, s: ["bench", "--suite", "quick", "--cells", "../lif",
                                                                "--out", str(t / "b")], "unknown cell"),
    "fit/memory run name ..": Case("path traversal", lambda t, s: ["fit", "--config", "memory/adding", "--output-dir",
                                                                   str(t / "o"), "--run-name", ".."], "run.name"),
    # --- concurrent use
    "fit/run folder already taken": Case("concurrent use", fit_argv("--run-name", "taken"), "already exists", taken_run),
    # --- an output path whose folder is a file: refused before any work (no data generated, no run started)
    "fit/--output-dir is a file": Case("output under a file", lambda t, s: [
        "fit", "--config", "quick/mmnist", "--data-root", str(t / "new-data"), "--output-dir", str(t / "f"), *SMALL],
        "is a file, not a folder", write("f", b"x")),
    "fit/--output-dir links to nothing": Case("output under a file", lambda t, s: [
        "fit", "--config", "quick/mmnist", "--data-root", str(t / "new-data"), "--output-dir", str(t / "f"), *SMALL],
        "is a symbolic link to nothing", lambda t, s: (t / "f").symlink_to(t / "gone")),
    "data generate/--data-root links to nothing": Case("output under a file", lambda t, s: [
        "data", "generate", "--dataset", "mmnist", "--data-root", str(t / "f")], "a symbolic link to nothing",
        lambda t, s: (t / "f").symlink_to(t / "gone")),
    "data generate/a dataset folder that links to nothing": Case("output under a file", lambda t, s: [
        "data", "generate", "--dataset", "taxibj", "--data-root", str(t / "d")], "a symbolic link to nothing",
        lambda t, s: (t / "d").mkdir() or (t / "d" / "taxibj").symlink_to(t / "gone")),
    "fit/--data-root is a file": Case("output under a file", lambda t, s: [
        "fit", "--config", "quick/mmnist", "--data-root", str(t / "f"), "--output-dir", str(t / "o"), *SMALL],
        "is a file, not a folder", write("f", b"x")),
    "fit/memory data root is a file": Case("output under a file", lambda t, s: [
        "fit", "--config", "memory/quick_seq_digits", "--data-root", str(t / "f"), "--output-dir", str(t / "o")],
        "is a file, not a folder", write("f", b"x")),
    "demo/--out is a file": Case("output under a file", lambda t, s: ["demo", "--out", str(t / "f"), "--data-root",
                                                                      str(t / "d")], "is a file, not a folder",
                                 write("f", b"x")),
    "demo/--data-root is a file": Case("output under a file", lambda t, s: ["demo", "--out", str(t / "o"),
                                                                            "--data-root", str(t / "f")],
                                       "is a file, not a folder", write("f", b"x")),
    "fit/--print-config of an unknown cell": Case("wrong type", fit_argv("--cell", "foo", "--print-config"),
                                                  "unknown cell"),
    "fit/--print-config of an unknown dataset": Case("wrong type", fit_argv("--dataset", "foo", "--print-config"),
                                                     "unknown dataset"),
    "profile/zero width": Case("wrong type", lambda t, s: ["profile", "--config", "quick/mmnist", "--num-hidden", "0"],
                               "must be positive"),
    "profile/an empty width": Case("wrong type", lambda t, s: ["profile", "--config", "quick/mmnist", "--num-hidden",
                                                              "16,,16"], "comma-separated integers"),
    "profile/--cell-options not an object": Case("wrong type", lambda t, s: ["profile", "--cell-options", "[1]"],
                                                 "JSON object of options"),
    "fit/a long test on a dataset without one": Case("wrong type", fit_argv("--set", "data.test_long=true"),
                                                     "has no long test"),
    "fit/YAML aliases that expand exponentially": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")],
                                                       "expands to more than 100,000 values",
                                                       write("c.yaml", LAUGHS)),
    "fit/a config file of megabytes": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")],
                                           "a config is a few kilobytes",
                                           lambda t, s: os.truncate(write("c.yaml", b"a: 1\n")(t, s) or t / "c.yaml",
                                                                    2 << 20)),
    "fit/a config that links to nothing": Case("missing", lambda t, s: ["fit", "--config", str(t / "c.yaml")],
                                               "symbolic link to nothing",
                                               lambda t, s: (t / "c.yaml").symlink_to(t / "gone.yaml")),
    "fit/--dataset on a memory run": Case("wrong type", lambda t, s: ["fit", "--config", "memory/quick_adding",
                                                                     "--dataset", "mmnist", "--output-dir", str(t / "o")],
                                          "--dataset is not an option of memory runs"),
    "fit/--output-dir inside a run": Case("concurrent use", fit_argv("--output-dir", "{tmp}/run/inner"), "would lie inside the run",
                                          copy_run),
    "test/--output onto the run's metrics.json": Case("concurrent use", lambda t, s: [
        "test", str(t / "run"), "--output", str(t / "run" / "metrics.json")], "would replace a record of the run",
        copy_run),
    "evaluate/--out onto a run's metrics.json": Case("concurrent use", lambda t, s: [
        "evaluate", "--pred", str(t / "p.npy"), "--true", str(t / "t.npy"), "--out", str(t / "run" / "metrics.json")],
        "would replace a record of the run", lambda t, s: (copy_run(t, s), two_arrays()(t, s))),
    "bench/memory suite of an empty scale": Case("wrong type", lambda t, s: [
        "bench", "--suite", "memory", "--scale", "", "--out", str(t / "b")], "the memory suite has the scales"),
    "fit/an empty scale label": Case("wrong type", fit_argv("--scale", " "), "run.scale must be a label"),
    "bench/--scale on a video suite": Case("wrong type", lambda t, s: ["bench", "--suite", "small", "--scale", "quick",
                                                                       "--out", str(t / "b")], "--scale is for --suite memory"),
    "fit/a run name with a newline": Case("wrong type", fit_argv("--run-name", "a\nb"), "no control characters"),
    "fit/a run name too long for a folder": Case("wrong type", fit_argv("--run-name", "a" * 300), "at most 200 bytes"),
    "fit/an infinite cell option": Case("wrong type", fit_argv("--set", "model.cell_options.threshold=1e999"),
                                        "give a finite number"),
    "fit/a memory readout decay that is not a number": Case(
        "wrong type", lambda t, s: ["fit", "--config", "memory/adding", "--set", "model.readout_decay=nan",
                                    "--output-dir", str(t / "runs")], "model.readout_decay must be in [0.0, 1.0]"),
    "fit/a logger named twice": Case("wrong type", fit_argv("--set", "logging.loggers=[csv,csv]"), "more than once"),
    "cells/circuit around a non-spiking cell": Case("wrong type", lambda t, s: ["cells", "stc_convlstm"],
                                                    "it is not a spiking cell"),
    "profile/zero threads": Case("wrong type", lambda t, s: ["profile", "--config", "quick/mmnist", "--threads", "0"],
                                 "--threads"),
    "demo/no cells": Case("wrong type", lambda t, s: ["demo", "--cells", ",", "--out", str(t / "o")], "names no cell"),
    "test/--output under a file": Case("output under a file", lambda t, s: ["test", "--ckpt-path", str(s["run"]),
                                                                            "--output", str(t / "f" / "m.json")],
                                       "is a file, not a folder", write("f", b"x")),
    "evaluate/--out under a file": Case("output under a file", lambda t, s: EVALUATE(t, s) + ["--out", str(t / "f" / "m.json")],
                                        "is a file, not a folder", lambda t, s: (two_arrays()(t, s), write("f", b"x")(t, s))),
    "bench/--data-root is a file": Case("output under a file",
                                        lambda t, s: ["bench", "--suite", "quick", "--out", str(t / "b"), "--cells",
                                                      "lif", "--datasets", "mmnist", "--data-root", str(t / "f")],
                                        "is a file", write("f", b"x")),
    "bench/--out is a file": Case("output under a file", lambda t, s: ["bench", "--suite", "quick", "--out", str(t / "f"),
                                                                       "--dry-run"], "is a file, not a folder",
                                  write("f", b"x")),
    "table/--out is a file": Case("output under a file", lambda t, s: ["table", "--runs", str(s["run"].parent), "--table",
                                                                       "2", "--out", str(t / "f")],
                                  "is a file, not a folder", write("f", b"x")),
    "predict/--output under a file": Case("output under a file", lambda t, s: PREDICT(t, s)[:-1] + [str(t / "f" / "o.npy")],
                                          "is a file, not a folder",
                                          lambda t, s: (frames(t / "in.npy"), write("f", b"x")(t, s))),
    "fit/--set with a Python tag": Case("hostile pickle", fit_argv("--set", "model.cell_options=!!python/object/apply:"
                                                                            "os.system ['touch PWNED']"), "not plain YAML"),
    "fit/--set of an unclosed mapping": Case("wrong type", fit_argv("--set", "model.cell_options=[1,2"), "not plain YAML"),
    "test/run config.yaml that is not YAML": Case("wrong type", lambda t, s: ["test", str(t / "run")], "not valid YAML",
                                                  lambda t, s: (copy_run(t, s), write("run/config.yaml", b"a: [1,")(t, s))),
    "test/run config.yaml with a Python tag": Case(
        "hostile pickle", lambda t, s: ["test", str(t / "run")], "not valid YAML",
        lambda t, s: (copy_run(t, s), write("run/config.yaml", b"task: !!python/object/apply:os.system ['touch PWNED']")
                      (t, s))),
    "test/raw pickle checkpoint": Case("hostile pickle", lambda t, s: ["test", str(t / "raw.ckpt")],
                                       "refused to load", lambda t, s: raw_hostile_pickle(t / "raw.ckpt")),
    "predict/frames of another size": Case("wrong shape", lambda t, s: PREDICT(t, s), "not resized",
                                           lambda t, s: frames(t / "in.npy", (1, 10, 1, 32, 32))),
    "predict/.npz without a context array": Case("wrong shape", lambda t, s: PREDICT(t, s, inp=t / "in.npz"), "context",
                                                 lambda t, s: np.savez(t / "in.npz", a=np.zeros(2), b=np.zeros(2))),
    "fit/base: that names nothing": Case("missing", lambda t, s: ["fit", "--config", str(t / "c.yaml")], "its `base:`",
                                         write("c.yaml", b"base: nothere.yaml\n")),
    "fit/num_hidden not a list": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")],
                                      "must be a list of integers", write("c.yaml", b"model:\n  num_hidden: 16\n")),
    "test/a folder without checkpoints": Case("missing", lambda t, s: ["test", str(t / "empty")], "pass a run folder",
                                              lambda t, s: (t / "empty").mkdir()),
    "predict/--output is the input": Case("wrong type", lambda t, s: PREDICT(t, s)[:-1] + [str(t / "in.npy")],
                                          "is the --input file",
                                          lambda t, s: np.save(t / "in.npy", np.zeros((1, 10, 1, 64, 64), np.float32))),
    "predict/bad --device": Case("wrong type", lambda t, s: PREDICT(t, s) + ["--device", "bogus"], "not a device",
                                 lambda t, s: np.save(t / "in.npy", np.zeros((1, 10, 1, 64, 64), np.float32))),
    "predict/--output not .npy": Case("wrong type", lambda t, s: PREDICT(t, s)[:-1] + [str(t / "p.txt")], "name a .npy",
                                      lambda t, s: frames(t / "in.npy")),
    "test/--output is the checkpoint tested": Case(
        "wrong type", lambda t, s: ["test", str(t / "loose.ckpt"), "--output", str(t / "loose.ckpt")],
        "is the checkpoint file", lambda t, s: shutil.copy(s["run"] / "checkpoints" / "best.ckpt", t / "loose.ckpt")),
    "test/--output is the --config file": Case(
        "wrong type", lambda t, s: ["test", str(t / "run"), "--config", str(t / "c.yaml"), "--output", str(t / "c.yaml")],
        "is the --config file", lambda t, s: (copy_run(t, s), shutil.copy(s["run"] / "config.yaml", t / "c.yaml"))),
    "convert/--output is its input": Case("wrong type", lambda t, s: ["convert-official", str(t / "o.pth"), "--cell", "lif",
                                                                      "-o", str(t / "o.pth")],
                                          "is the official checkpoint file", write("o.pth", b"weights")),
    "convert/--output is another run's checkpoint": Case(
        "wrong type", lambda t, s: ["convert-official", str(t / "o.pth"), "--cell", "lif",
                                    "-o", str(t / "run" / "checkpoints" / "last.ckpt")],
        "would replace a record of the run", lambda t, s: (copy_run(t, s), (t / "o.pth").write_bytes(b"weights"))),
    "convert/unknown dataset": Case("wrong type", lambda t, s: ["convert-official", str(t / "h.ckpt"), "--cell", "lif",
                                                                "--dataset", "foo", "-o", str(t / "c.ckpt")],
                                    "unknown dataset", hostile("h.ckpt")),
    "fit/--set value that contains itself": Case("wrong type", fit_argv("--set", "model.cell_options=&a {x: *a}"),
                                                 "contains itself"),
    "fit/--set key value that contains itself": Case("wrong type", fit_argv("--set", "model.cell_options.x=&a [*a]"),
                                                     "contains itself"),
    "fit/config value that contains itself": Case("wrong type", lambda t, s: ["fit", "--config", str(t / "c.yaml")],
                                                  "contains itself",
                                                  write("c.yaml", b"model:\n  cell_options: &a {x: *a}\n")),
    "fit/--set task=memory on a video config": Case("wrong type", fit_argv("--set", "task=memory"),
                                                    "pass a memory config instead"),
    "bench/memory suite with a bad --set": Case("wrong type", lambda t, s: ["bench", "--suite", "memory", "--out",
                                                                            str(t / "b"), "--set", "trainer.max_epochs=-1"],
                                                "trainer.max_epochs"),
    "bench/memory suite with --tag": Case("wrong type", lambda t, s: ["bench", "--suite", "memory", "--out", str(t / "b"),
                                                                      "--tag", "x", "--dry-run"], "for the video suites"),
    "bench/memory suite with a negative seed": Case("wrong type", lambda t, s: ["bench", "--suite", "memory", "--out",
                                                                                str(t / "b"), "--seeds", "-1",
                                                                                "--dry-run"], "--seeds -1"),
    "bench/memory suite with an unknown scale": Case("wrong type", lambda t, s: ["bench", "--suite", "memory", "--out",
                                                                                 str(t / "b"), "--scale", "huge",
                                                                                 "--dry-run"], "--scale huge"),
    "predict/NaN frames": Case("wrong type", lambda t, s: PREDICT(t, s), "drop or repair",
                               lambda t, s: np.save(t / "in.npy", np.full((1, 10, 1, 64, 64), np.nan, np.float32))),
}


def raw_hostile_pickle(path: Path) -> None:
    """A checkpoint written with pickle itself (protocol 4), not torch.save, whose unpickling calls os.system."""
    import pickle

    path.write_bytes(pickle.dumps({"state_dict": Payload(path.parent / "PWNED")}, protocol=4))


def hashes(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "link:" + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, shared, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    case.setup(tmp_path, shared)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv(tmp_path, shared)]
    monkeypatch.chdir(tmp_path)
    before, shared_before = hashes(tmp_path), hashes(shared["run"])
    capsys.readouterr()
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, (argv, err)
    errors = [line for line in err if ": error: " in line]       # progress lines (e.g. decoding) may precede it
    assert len(errors) == 1 and errors[0] == err[-1] and errors[0].startswith("stcbench "), err
    assert not any("Traceback" in line for line in err), err
    assert case.expect in errors[0], err
    assert hashes(tmp_path) == before, "the command created or changed files"
    assert hashes(shared["run"]) == shared_before
    assert not (tmp_path / "PWNED").exists()


def test_every_class_of_bad_input_is_covered():
    kinds = {case.kind for case in CASES.values()}
    assert kinds >= {"missing", "empty", "truncated", "wrong type", "wrong shape", "unreadable", "read-only",
                     "hostile pickle", "path traversal", "concurrent use"}
    commands = {name.split("/")[0] for name in CASES}
    assert commands >= {"fit", "test", "predict", "evaluate", "convert", "table", "data generate", "data check",
                        "bench", "profile", "demo"}


# ----------------------------------------------------------------------------------------- warnings, not errors
def test_table_skips_a_corrupt_run_whole_with_a_warning(shared, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(shared["run"], runs / "mmnist" / "lif" / "good")
    for name, content in (("latin1", b'{"dataset": "mmnist", "cell": "stclif", "test": {"mse": 1.0}, "x": "\\xe9"}'),
                          ("types", b'{"dataset": "mmnist", "cell": "plif", "test": {"mse": "low", "ssim": 0.9}}'),
                          ("truncated", b'{"dataset": "mmnist", "cell": "glif", "test": {"mse": 1')):
        (runs / "mmnist" / name / "r").mkdir(parents=True)
        (runs / "mmnist" / name / "r" / "metrics.json").write_bytes(content)
    assert main(["table", "--runs", str(runs), "--table", "2"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3 and all("metrics.json" in w for w in warnings), err
    assert "not valid UTF-8 JSON" in err and "test.mse is 'low', not a number" in err
    assert "0.9" not in out                        # nothing of the skipped runs is shown


def test_predict_warns_about_frames_outside_0_1(shared, tmp_path, capsys):
    frames(tmp_path / "in.npy", scale=255.0)
    assert main(["predict", str(shared["run"]), "-i", str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]) == 0
    assert "divide them by 255" in capsys.readouterr().err


def test_set_wins_over_a_flag_naming_the_same_key(tmp_path):
    from stcbench.cli import build_parser
    from stcbench.engine.cli_args import overrides_from_args

    args = build_parser().parse_args(["fit", "--max-epochs", "0", "--set", "trainer.max_epochs=1"])
    from stcbench.training.config import resolve_config

    assert resolve_config({}, overrides_from_args(args)).trainer.max_epochs == 1
    assert "--set wins" in " ".join(build_parser()._subparsers._group_actions[0].choices["fit"].format_help().split())


def test_a_run_whose_config_nests_too_deeply_is_tabled_from_its_record(tmp_path, capsys):
    """A config.yaml nested beyond Python's recursion limit is read as no config, not a traceback."""
    run = tmp_path / "runs" / "mmnist" / "lif" / "r"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"test": {"mse": 1.0}, "dataset": "mmnist", "cell": "lif"}')
    (run / "config.yaml").write_text("[" * 100000)
    assert main(["table", "--runs", str(tmp_path / "runs"), "--table", "summary"]) == 0
    assert "| mmnist | lif |" in capsys.readouterr().out


@pytest.mark.parametrize("config", ["run: fast\nseed: 1\n", "run: [1, 2]\n", "- a list\n"])
def test_a_run_whose_config_has_sections_of_the_wrong_kind_is_tabled(tmp_path, capsys, config):
    """A config.yaml whose `run` section is not a mapping (hand-edited, or of another tool) leaves the run a
    reported one, not a traceback."""
    for name, seed in (("a", 0), ("b", 1)):
        run = tmp_path / "runs" / "mmnist" / "lif" / name
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(f'{{"test": {{"mse": 1.0}}, "dataset": "mmnist", "cell": "lif", "seed": {seed}}}')
    (tmp_path / "runs" / "mmnist" / "lif" / "a" / "config.yaml").write_text(config)
    assert main(["table", "--runs", str(tmp_path / "runs"), "--table", "summary"]) == 0
    assert "| mmnist | lif |" in capsys.readouterr().out
