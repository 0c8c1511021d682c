import warnings

import pytest

from pipeline import PipelineError
from pipeline.cli import entry_point


@entry_point
def command(argv):
    if argv == ["bad"]:
        raise PipelineError("data folder x not found: set data.dir")
    print("ran with", argv)


def test_a_pipeline_error_ends_the_command_as_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        command(["bad"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: data folder x not found: set data.dir\n"


def test_a_command_gets_its_arguments_and_its_warnings_print_as_one_line(capsys):
    command(["a", "b"])
    assert capsys.readouterr().out == "ran with ['a', 'b']\n"
    shown = warnings.formatwarning("the largest class has 5x the images", UserWarning, "/x/report.py", 12)
    assert shown == "warning: the largest class has 5x the images\n"


def test_other_errors_are_not_hidden():
    @entry_point
    def broken(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        broken([])
