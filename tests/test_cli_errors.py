"""Bad input ends in one line that says what was wrong, a non-zero exit and no traceback, for every command."""

import socket

import pytest
import yaml
from conftest import DEMO_DATA, ROOT, error_line, in_process, one_line_error, run_demo


def fast_run(cli, tmp_path, *overrides, env: dict | None = None):
    return run_demo(cli, tmp_path, "--trainer.fast_dev_run", "true", *overrides, env=env)


def assert_one_line_error(result, *fragments: str) -> str:
    """A subprocess run's non-zero exit and its one `error:` line."""
    assert result.returncode != 0
    return error_line(result.stderr, *fragments)


HOW_TO_WORK_OFFLINE = ["save_pretrained(DIR)", "--model.model_name_or_path DIR", "models--no-such-org--no-such-t5"]


@pytest.mark.slow
def test_unreachable_model_says_how_to_pass_a_local_directory(cli, tmp_path):
    result = fast_run(cli, tmp_path, "--model.model_name_or_path", "no-such-org/no-such-t5")  # HF_HUB_OFFLINE=1
    line = assert_one_line_error(result, "no-such-org/no-such-t5", "local directory", *HOW_TO_WORK_OFFLINE)
    assert "model.model_name_or_path=" not in line  # a syntax the CLI does not accept


@pytest.mark.slow
def test_without_a_network_the_model_error_comes_at_once_without_retries(cli, tmp_path):
    with socket.socket() as probe:  # a port of this machine that refuses connections: the Hub is unreachable
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": endpoint}
    result = fast_run(cli, tmp_path, "--model.model_name_or_path", "no-such-org/no-such-t5", env=env)
    assert_one_line_error(result, f"the Hugging Face Hub ({endpoint}) cannot be reached", *HOW_TO_WORK_OFFLINE)
    assert "Retrying" not in result.stderr and "thrown while requesting" not in result.stderr


@pytest.mark.slow
def test_data_dir_missing_a_split_file_names_the_file(cli, tmp_path):
    data_dir = tmp_path / "rte"
    data_dir.mkdir()
    (data_dir / "train.jsonl").write_text((DEMO_DATA / "rte" / "train.jsonl").read_text())
    result = fast_run(cli, tmp_path, "--data.data_dir", str(data_dir))
    assert_one_line_error(result, str(data_dir / "validation"))


# --- the other commands, in process: parsed as fit is (one line, the closest key, --help from the docstrings) ----

BAD_OPTIONS = [
    (["params", "--meth", "compacter"], ["--meth", "did you mean 'methods'?"]),  # no abbreviation of --methods
    (["params", "--methods", "compacter", "compacterr"], ["compacterr", "did you mean 'compacter'?"]),
    (["params", "--dtype", "fp16"], ["dtype", "float16"]),
    (["bench", "--step", "2"], ["--step", "did you mean 'steps'?"]),
    (["bench", "--batch_size", "0"], ["batch_size", "PositiveInt"]),
    (["bench", "--no-keep_freed_memory"], ["did you mean '--keep_freed_memory false'?"]),  # argparse's old form
    (["export", "--ckpt", "x.ckpt", "--out", "exports/x"], ["--ckpt", "did you mean 'ckpt_path'?"]),
    (["report", "sweeps/demo", "--metrc", "val/score"], ["--metrc", "did you mean 'metric'?"]),
    (["sweep", "--config", str(ROOT / "configs/sweeps/demo.yaml"), "--dry-run"], ["did you mean 'dry_run'?"]),
    (["sweep", "--dry_run"], ["required", "config"]),
]


@pytest.mark.parametrize("args, fragments", BAD_OPTIONS, ids=[" ".join(args[:2]) for args, _ in BAD_OPTIONS])
def test_a_commands_bad_option_is_one_line_naming_the_closest_key(capsys, args, fragments):
    code, _, err = in_process(capsys, *args)
    assert f"(see `python cli.py {args[0]} --help`)" in one_line_error(code, err, *fragments)


@pytest.mark.parametrize(
    "command, documented",
    [
        ("params", "Print the report as JSON instead of a table."),
        ("bench", "Measured training steps per method."),
        ("export", "A checkpoint written by `cli.py fit`."),
        ("report", "several are reported together"),
        ("sweep", "List the runs and their status, run nothing."),
    ],
)
def test_every_command_documents_its_options_in_help(capsys, command, documented):
    code, out, _ = in_process(capsys, command, "--help")
    assert code == 0 and documented in " ".join(out.split())


def test_bench_takes_the_readme_flags_and_a_yaml_config(capsys, tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text("methods: [ln_only, compacter]\nsteps: 2\n")
    code, out, _ = in_process(
        capsys,
        "bench",
        "--config",
        str(config),
        "--steps",
        "12",
        "--gradient_checkpointing",
        "--keep_freed_memory",
        "false",
        "--print_config",
    )
    options = yaml.safe_load(out)
    assert code == 0 and options["methods"] == ["ln_only", "compacter"] and options["steps"] == 12
    assert options["gradient_checkpointing"] is True and options["keep_freed_memory"] is False
    code, out, _ = in_process(capsys, "bench", "--methods", "ln_only", "compacter++", "--compile", "--print_config")
    assert code == 0 and yaml.safe_load(out)["methods"] == ["ln_only", "compacter++"]

    config.write_text("steps: 2\nwarmpu: 1\n")
    one_line_error(*in_process(capsys, "bench", "--config", str(config))[::2], "warmpu", "did you mean 'warmup'?")


@pytest.mark.parametrize(
    ("option", "value", "fragments"),
    [
        ("--data.task", "rtee", ["data.task: expected one of cola, sst2,", "got 'rtee'", "did you mean 'rte'?"]),
        ("--model.eval_mode", "ranks", ["model.eval_mode: expected one of generate, rank", "did you mean 'rank'?"]),
        ("--data.truncation", "field", ["data.truncation:", "got 'field'", "did you mean 'fields'?"]),
    ],
)
def test_a_value_outside_a_closed_set_names_the_set_and_the_closest_value(capsys, option, value, fragments):
    code, _, err = in_process(capsys, "fit", "--config", str(ROOT / "configs/demo.yaml"), option, value)  # parsing
    one_line_error(code, err, *fragments)
