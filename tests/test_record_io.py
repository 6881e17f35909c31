"""Records and configs are read without blocking and within a bound: a pipe, a device or an oversized file is an
OSError naming the problem, as an unreadable file is."""
import os

import pytest

from stcbench.cli import main
from stcbench.record_io import read_bytes, read_text


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"a": "é"}', encoding="utf-8")
    assert read_text(path) == '{"a": "é"}' and read_bytes(path, limit=12) == path.read_bytes()


def test_a_pipe_a_device_a_folder_and_an_oversized_file_are_refused_at_once(tmp_path):
    fifo = tmp_path / "metrics.json"
    os.mkfifo(fifo)                      # nobody writes: a blocking read would wait forever
    zero = tmp_path / "config.yaml"
    zero.symlink_to("/dev/zero")         # endless: a plain read would fill the memory
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 101)
    with pytest.raises(OSError, match="not a regular file"):
        read_text(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_text(zero)
    with pytest.raises(IsADirectoryError):
        read_text(tmp_path)
    with pytest.raises(OSError, match="larger than 100 bytes"):
        read_bytes(big, limit=100)
    with pytest.raises(UnicodeDecodeError):
        (tmp_path / "bin").write_bytes(b"\xff\xfe")
        read_text(tmp_path / "bin")


def test_table_skips_a_run_whose_record_is_a_pipe_with_a_warning(tmp_path, capsys):
    run = tmp_path / "runs" / "mmnist" / "lif" / "r1"
    run.mkdir(parents=True)
    os.mkfifo(run / "metrics.json")
    main(["table", "--runs", str(tmp_path / "runs"), "--table", "all"])        # returns instead of hanging
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["test"], ["predict", "--input", "x.npy", "--output", "p.npy"],
                                     ["fit", "--config", "quick/mmnist", "--ckpt-path"]])
def test_a_checkpoint_that_is_a_pipe_is_refused_not_read(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "best.ckpt")
    assert main([*command, str(tmp_path / "best.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0], err


def test_table_warns_of_a_run_whose_config_cannot_be_read(tmp_path, capsys):
    """A run whose config.yaml a safe load refuses is tabled from its record alone, with a warning that its setting
    is unknown."""
    import shutil
    from pathlib import Path

    source = next((Path(__file__).parents[1] / "results" / "quick" / "runs").rglob("metrics.json")).parent
    run = tmp_path / "runs" / source.parent.parent.name / source.parent.name / source.name
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("*.ckpt", "logs"))
    (run / "config.yaml").write_text("seed: !!python/object/apply:os.system ['true']\n")
    assert main(["table", "--runs", str(tmp_path / "runs"), "--table", "summary"]) == 0
    err = capsys.readouterr().err
    assert "its setting unknown: its config.yaml is not valid YAML" in err


@pytest.mark.parametrize("key, value", [("dataset", "../../pwnrel"), ("cell", "x|<script>")])
def test_a_run_whose_record_names_a_path_or_markup_is_skipped_and_nothing_is_written_outside(tmp_path, capsys, key,
                                                                                                value):
    """A record's dataset and cell name figure files and table rows: a name that is a path (or markup) makes the run
    skipped with a warning, and the report writes nothing outside its folder."""
    import json
    import shutil
    from pathlib import Path

    from stcbench.reports.report import write_report

    source = next((Path(__file__).parents[1] / "results" / "quick" / "runs").rglob("metrics.json")).parent
    run = tmp_path / "work" / "runs" / "zz" / "lif" / "r1"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("*.ckpt", "logs"))
    record = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**record, key: value}))
    before = sorted(p for p in tmp_path.rglob("*"))
    write_report(tmp_path / "work" / "runs", tmp_path / "work" / "out", analyse=False)
    assert "is not a plain name" in capsys.readouterr().err
    assert [p for p in sorted(tmp_path.rglob("*")) if p not in before and tmp_path / "work" / "out" not in p.parents
            and p != tmp_path / "work" / "out"] == []


def test_table_cells_cannot_open_columns_or_run_as_spreadsheet_formulas():
    from stcbench.reports.tables import TableResult, render

    result = TableResult(key="summary", title="t", header=["Method", "MSE"], rows=[["a|b", "=1+1"], ["c", "-3.5"]],
                         source="s", notes=[])
    assert "| a\\|b | =1+1 |" in render(result, "markdown")
    assert "'=1+1" in render(result, "csv") and ",-3.5" in render(result, "csv")


def test_outputs_are_never_written_into_a_dataset_folder(tmp_path, capsys):
    """`test --output`, `predict --output`, `evaluate --out`: a file in a dataset's folder (the test set itself, say)
    is refused, the data unchanged."""
    import numpy as np

    from stcbench.data import generate_dataset

    folder = generate_dataset("mmnist", tmp_path / "data", overrides={"test_sequences": "4"})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    pred = tmp_path / "p.npz"
    np.savez(pred, pred=np.zeros((2, 10, 1, 64, 64), np.float32), true=np.zeros((2, 10, 1, 64, 64), np.float32))
    for argv in (["evaluate", "--pred", str(pred), "--out", str(folder / "mnist_test_seq.npy")],
                 ["predict", str(tmp_path / "none.ckpt"), "--input", str(pred), "--output",
                  str(folder / "stcbench.json")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "lies in the folder of the mmnist dataset" in err[0], err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_kth_frame_that_is_a_pipe_is_one_error_not_a_hang(tmp_path):
    from stcbench.data.kth import decode_frame
    from stcbench.errors import DataError

    frame = tmp_path / "image_0001.jpg"
    os.mkfifo(frame)
    with pytest.raises(DataError, match="not a regular file"):
        decode_frame(frame, "fix it")


def test_a_data_root_from_the_environment_inside_a_run_is_refused(tmp_path, capsys, monkeypatch):
    run = tmp_path / "runs" / "mmnist" / "lif" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"w")
    (run / "config.yaml").write_text("seed: 0\ntrainer: {}\nrun: {}\n")
    monkeypatch.setenv("STCBENCH_DATA_ROOT", str(run / "dd"))
    assert main(["data", "generate", "--dataset", "mmnist"]) == 2
    assert "$STCBENCH_DATA_ROOT" in capsys.readouterr().err and not (run / "dd").exists()


def test_an_npz_larger_than_memory_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    import numpy as np

    pred = tmp_path / "big.npz"
    np.savez(pred, pred=np.zeros((1, 10, 1, 8, 8), np.float32), true=np.zeros((1, 10, 1, 8, 8), np.float32))

    def too_large(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(np, "load", too_large)
    assert main(["evaluate", "--pred", str(pred)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "big.npz holds arrays larger than this machine's memory" in err[0]
