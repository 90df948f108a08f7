"""Bad input ends in one line that says what was wrong, a non-zero exit and no traceback, for every command."""

import re
import socket

import pytest
import yaml

from tests.helpers import DEMO_DATA, ROOT, assert_one_line_error, in_process, one_line_error, run_demo


def fast_run(cli, tmp_path, *overrides, env: dict | None = None):
    return run_demo(cli, tmp_path, "--trainer.fast_dev_run", "true", *overrides, env=env)


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
        ("serve", "The most requests answered in one batch."),
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


# --- discoverable commands: the overview, fit's pointer to method arguments, help text that cites what exists ------

EVERY_COMMAND = "fit validate test predict params export sweep report bench truncation serve".split()


def listed_commands(text: str) -> dict[str, str]:
    """{command: its one line} of the overview's command list."""
    return dict(re.findall(r"^  (\w+) {2,}(\S.*)$", text, re.M))


def test_help_lists_every_command_with_one_line_each(capsys):
    code, out, _ = in_process(capsys, "--help")
    assert code == 0
    listed = listed_commands(out)
    assert list(listed) == EVERY_COMMAND, out
    assert all(line.strip() for line in listed.values())
    assert "python cli.py COMMAND --help" in out and "--model.method.help Compacter" in out


def test_a_bare_cli_lists_every_command_and_says_to_choose_one(capsys):
    code, out, err = in_process(capsys)
    assert list(listed_commands(out)) == EVERY_COMMAND, out
    one_line_error(code, err, "choose a command")


def test_an_unknown_command_names_the_closest_and_lists_them_all(capsys):
    code, _, err = in_process(capsys, "fitt", "--config", "x.yaml")
    line = one_line_error(code, err, "unknown command 'fitt'", "did you mean 'fit'?", "python cli.py --help")
    assert all(command in line for command in EVERY_COMMAND)


def test_fit_help_says_how_to_see_a_methods_arguments(capsys):
    code, out, _ = in_process(capsys, "fit", "--help")
    assert code == 0 and "python cli.py fit --model.method.help Compacter" in " ".join(out.split())


def every_help_text(capsys) -> dict[str, str]:
    """What `--help` prints: the overview, every command's and every method's (`--model.method.help NAME`)."""
    from compacter_pl.methods import registry

    runs = [["--help"]] + [[command, "--help"] for command in EVERY_COMMAND]
    runs += [["fit", "--model.method.help", name] for name in registry.method_class_names()]
    texts = {}
    for args in runs:
        code, out, err = in_process(capsys, *args)
        assert code == 0, err
        texts[" ".join(args)] = out
    return texts


def test_help_texts_cite_the_paper_never_a_file_outside_the_repository(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # no line wrapping: a path stays one word
    for args, text in every_help_text(capsys).items():
        assert "SPEC" not in text, (args, re.findall(r".{80}SPEC.{40}", text))
        for path in re.findall(r"[\w.-]+(?:/[\w.+-]+)+\.(?:py|md|yaml|yml|json|txt)\b", text):
            assert (ROOT / path).exists(), (args, path)
