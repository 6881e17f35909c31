"""A command-line mistake is one line naming the problem and where the options are listed, exit 2."""
import pytest

from stcbench.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["fit", "--bogus"], "stcbench fit: error: unrecognized arguments: --bogus; see `stcbench fit --help`"),
    (["table", "--format", "html"], "stcbench table: error: argument --format: invalid choice: 'html'"),
    (["nosuch"], "stcbench: error: argument COMMAND: invalid choice: 'nosuch'"),
    (["--bogus"], "stcbench: error: unrecognized arguments: --bogus; see `stcbench --help`"),
    (["bench", "--seeds"], "stcbench bench: error: argument --seeds: expected at least one argument"),
    # a test trains nothing and writes no run folder: the training flags are not offered
    (["test", "run", "--max-epochs", "5"], "stcbench test: error: unrecognized arguments: --max-epochs 5"),
    (["test", "run", "--run-name", "x"], "stcbench test: error: unrecognized arguments: --run-name x"),
    (["test", "run", "--logger", "csv"], "stcbench test: error: unrecognized arguments: --logger csv"),
    # and it tests the cell its checkpoint trained
    (["test", "run", "--cell", "lif"], "stcbench test: error: unrecognized arguments: --cell lif"),
])
def test_usage_errors_are_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert "usage:" not in err[0]


def test_a_checkpoint_that_cannot_be_written_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, capsys):
    """A full disk stops torch's writer mid-file with a stream error, not an OSError: one line, exit 2."""
    from stcbench.engine import run as engine_run

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 26368 vs 26260")

    monkeypatch.setattr(engine_run, "fit", full_disk)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "quick/mmnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not be written" in err[0] and "full disk" in err[0] and "--ckpt-path" in err[0]
