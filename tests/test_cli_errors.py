"""Bad input ends in one line that says what was wrong, a non-zero exit and no traceback."""

import pytest

from conftest import DEMO_DATA, ROOT, run_demo


def fast_run(cli, tmp_path, *overrides):
    return run_demo(cli, tmp_path, "--trainer.fast_dev_run", "true", *overrides)


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.slow
def test_unknown_task_lists_the_known_ones(cli, tmp_path):
    assert_one_line_error(fast_run(cli, tmp_path, "--data.task", "rtee"), "unknown task 'rtee'", "rte")


@pytest.mark.slow
def test_unreachable_model_says_how_to_pass_a_local_directory(cli, tmp_path):
    result = fast_run(cli, tmp_path, "--model.model_name_or_path", "no-such-org/no-such-t5")
    assert_one_line_error(result, "no-such-org/no-such-t5", "local")


@pytest.mark.slow
def test_data_dir_missing_a_split_file_names_the_file(cli, tmp_path):
    data_dir = tmp_path / "rte"
    data_dir.mkdir()
    (data_dir / "train.jsonl").write_text((DEMO_DATA / "rte" / "train.jsonl").read_text())
    result = fast_run(cli, tmp_path, "--data.data_dir", str(data_dir))
    assert_one_line_error(result, str(data_dir / "validation"))


@pytest.mark.parametrize(("option", "value", "fragments"), [
    ("--data.task", "rtee", ["unknown task 'rtee' (--data.task)", "choose one of cola,", "did you mean 'rte'?"]),
    ("--model.eval_mode", "ranks", ["unknown eval_mode 'ranks' (--model.eval_mode)", "generate, rank",
                                    "did you mean 'rank'?"]),
    ("--data.truncation", "field", ["unknown truncation 'field'", "did you mean 'fields'?"]),
])
def test_a_value_outside_a_closed_set_names_the_set_and_the_closest_value(capsys, option, value, fragments):
    from compacter_pl.cli import main

    with pytest.raises(SystemExit) as exit_info:  # fails while parsing: in-process, nothing is built
        main(["fit", "--config", str(ROOT / "configs/demo.yaml"), option, value])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(f in errors[0] for f in fragments), errors
