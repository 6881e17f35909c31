"""A command-line mistake is one line naming the problem and where the options are listed, exit 2."""
import pytest

from stcbench.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["fit", "--bogus"], "stcbench fit: error: unrecognized arguments: --bogus; see `stcbench fit --help`"),
    (["table", "--format", "html"], "stcbench table: error: argument --format: invalid choice: 'html'"),
    (["nosuch"], "stcbench: error: argument COMMAND: invalid choice: 'nosuch'"),
    (["--bogus"], "stcbench: error: unrecognized arguments: --bogus; see `stcbench --help`"),
    (["bench", "--seeds"], "stcbench bench: error: argument --seeds: expected at least one argument"),
])
def test_usage_errors_are_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert "usage:" not in err[0]
