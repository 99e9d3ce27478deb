"""The error pattern: refusals (InputError and its subclasses, OSError) end in one line; anything else is a bug and
keeps its traceback."""

import sys
from pathlib import Path

import pytest

from grpo_prm import curves, errors
from grpo_prm.cli import InputError, SettingError, exit_on_error
from grpo_prm.weights import check_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper_figures"))


def _raise(exc):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize("exc", [InputError("bad x\nmore"), SettingError("bad y"), OSError("no file z")])
def test_refusals_end_in_one_line(exc):
    with pytest.raises(SystemExit) as e:
        exit_on_error(_raise(exc))
    assert str(e.value.code).startswith("error: ") and "\n" not in str(e.value.code)


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("k"), RuntimeError("r")])
def test_bugs_keep_their_traceback(exc):
    with pytest.raises(type(exc)):
        exit_on_error(_raise(exc))


def test_cli_and_errors_share_one_base():
    assert InputError is errors.InputError and issubclass(SettingError, InputError)
    with pytest.raises(SettingError, match="ppo"):
        check_method("ppo")


def test_unreadable_reference_csv_and_run_identity_are_refusals(tmp_path):
    import table1_toy

    empty = tmp_path / "paper.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="unreadable CSV"):
        table1_toy.read_paper(empty)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "m", "beta": "x", "method": "grpo", "seed": 0}')
    (run / "metrics.jsonl").write_text('{"step": 1, "val/accuracy": 0.5}\n')
    with pytest.raises(InputError, match="no run identity"):
        curves.load_validation([run])
