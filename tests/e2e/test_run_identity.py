"""A run has an identity (task, method, model, the data settings that change what is scored), stored in its
checkpoint and compared with each command that loads it: what differs is refused in one line through every command;
what the command leaves out is the checkpoint's; evaluation options are honoured; `--ckpt_path last` resumes only a
run of the command's own kind; scoring on another task is explicit and goes to a folder of its own."""

import shutil

import pytest
import torch

from tests.helpers import DEMO_DATA, ROOT, in_process, one_line_error, run_demo

DEMO = str(ROOT / "configs/demo.yaml")
EVALUATIONS = ("validate", "test", "predict")

# what a command names that the demo run (rte, FullFineTuning, demo/tiny-t5, 128 tokens) was not -> words of the line
DIFFERENT = {
    "task": (["--data.task", "cb", "--data.data_dir", str(DEMO_DATA / "cb")], ["--data.task 'rte' (the checkpoint)"]),
    "method": (["--model.method.class_path", "compacter_pl.methods.BitFit"], ["--model.method FullFineTuning()"]),
    "source_length": (["--data.max_source_length", "32"], ["--data.max_source_length 128 (the checkpoint) vs 32"]),
    "truncation": (["--data.truncation", "fields"], ["--data.truncation 'end' (the checkpoint) vs 'fields'"]),
    "data_seed": (["--data.data_seed", "7"], ["--data.data_seed 42 (the checkpoint) vs 7"]),
}  # fmt: skip


def _run(capsys, command, ckpt, tmp_path, *extra):
    """`run_demo` in this process: the run's folder and its data cache (the `run` fixture) under tmp_path."""
    limits = ["--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1", "--trainer.max_steps", "3"]
    return run_demo(
        lambda *args, env=None: in_process(capsys, *args), tmp_path, "--ckpt_path", str(ckpt), *limits, *extra,
        command=command,
    )  # fmt: skip


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the demo run (its folder, its last.ckpt) that a test may resume or write into."""
    folder = tmp_path / "lightning_logs" / "version_0"
    shutil.copytree(trained.parents[1], folder)
    shutil.copytree(trained.parents[3] / "cache", tmp_path / "cache")
    return folder


@pytest.mark.parametrize("command", [*EVALUATIONS, "fit"])
@pytest.mark.parametrize("case", list(DIFFERENT))
def test_a_command_that_names_another_identity_is_refused_saying_what_differs(capsys, run, tmp_path, command, case):
    ckpt = run / "checkpoints" / "last.ckpt"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = _run(capsys, command, ckpt, tmp_path, *DIFFERENT[case][0])
    line = one_line_error(code, err, f"--ckpt_path {ckpt} is a run of another kind", *DIFFERENT[case][1])
    assert ("--eval_other_task true" in line) == (case == "task" and command != "fit")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing of the run changed


def test_what_the_command_leaves_out_is_the_checkpoints_and_evaluation_options_are_honoured(capsys, trained, tmp_path):
    """No --config: the default task and source length would be RTE's anyway, so name a checkpoint of CB."""
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["task"] = "cb"
    checkpoint["datamodule_hyper_parameters"].update(task="cb", data_dir=str(DEMO_DATA / "cb"), max_source_length=64)
    cb = tmp_path / "cb.ckpt"
    torch.save(checkpoint, cb)
    from compacter_pl.config.run import RunConfigCLI, cli_settings

    class Parsed(RunConfigCLI):
        def instantiate_classes(self):
            pass

        def _run_subcommand(self, subcommand):
            pass

    cli = Parsed(
        **cli_settings(),
        args=["test", "--ckpt_path", str(cb), "--model.eval_mode", "rank", "--data.data_dir", str(DEMO_DATA / "cb")],
    )
    config = cli.config.test
    assert (config.data.task, config.model.task, config.data.max_source_length) == ("cb", "cb", 64)
    assert config.model.eval_mode == "rank"  # given on the command line: honoured, not the checkpoint's generate
    assert config.model.model_name_or_path == checkpoint["hyper_parameters"]["model_name_or_path"]


def test_scoring_on_another_task_is_explicit_and_goes_to_a_folder_of_its_own(capsys, run, tmp_path):
    ckpt = run / "checkpoints" / "last.ckpt"
    before = sorted(p.name for p in run.iterdir())
    code, _, err = _run(
        capsys, "test", ckpt, tmp_path, "--data.task", "cb", "--data.data_dir", str(DEMO_DATA / "cb"),
        "--eval_other_task", "true",
    )  # fmt: skip
    assert code == 0, err[-2000:]
    assert sorted(p.name for p in run.iterdir()) == before  # no test.config.yaml, no events in the RTE run
    own = [p for p in (tmp_path / "lightning_logs").iterdir() if p != run]
    assert len(own) == 1 and (own[0] / "test.config.yaml").is_file()
    code, _, err = _run(capsys, "fit", ckpt, tmp_path, "--eval_other_task", "true")
    one_line_error(code, err, "--eval_other_task is for validate, test and predict")


def test_ckpt_path_last_resumes_only_a_run_of_the_commands_kind(capsys, run, tmp_path):
    ckpt = run / "checkpoints" / "last.ckpt"
    newer = tmp_path / "lightning_logs" / "version_1" / "checkpoints"
    newer.mkdir(parents=True)
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["task"] = "cb"
    checkpoint["datamodule_hyper_parameters"]["task"] = "cb"
    torch.save(checkpoint, newer / "last.ckpt")  # the newest last.ckpt is a CB run's
    cb_before = (newer / "last.ckpt").read_bytes()
    code, out, err = _run(capsys, "fit", "last", tmp_path)
    assert code == 0, err[-2000:]
    assert f"resuming from {ckpt}" in out  # the RTE run, not the newer CB one
    assert (newer / "last.ckpt").read_bytes() == cb_before and not (newer.parent / "config.yaml").exists()
    code, _, err = _run(
        capsys, "fit", "last", tmp_path, "--data.task", "copa", "--data.data_dir", str(DEMO_DATA / "copa")
    )
    one_line_error(code, err, "--ckpt_path last: no run under", "is of this command's kind", "'copa'")


def test_a_resumed_fit_keeps_its_optimizer_settings_or_says_so(capsys, run, tmp_path):
    code, _, err = _run(capsys, "fit", run / "checkpoints" / "last.ckpt", tmp_path, "--model.learning_rate", "0.1")
    one_line_error(code, err, "--model.learning_rate 0.1", "resumes its optimizer and schedule with")
