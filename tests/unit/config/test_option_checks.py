"""Options are checked before any work: each mistake that Lightning or torch would catch only after set-up or an
epoch, or would accept and run wrong, is one line naming the option, through every command that runs the model, and
through the sweep before its first run."""

import pytest

from tests.helpers import DEMO_MODEL, in_process, one_line_error, write_sweep

DEMO = "configs/demo.yaml"

# option and value -> the words of the one line
CASES = {
    ("--seed_everything", "99999999999"): ["--seed_everything 99999999999 is out of bounds", "4294967295"],
    ("--trainer.gradient_clip_val", "-1"): ["--trainer.gradient_clip_val -1", "reverses every gradient"],
    ("--trainer.accumulate_grad_batches", "0"): ["--trainer.accumulate_grad_batches 0 must be 1 or more"],
    ("--model.weight_decay", "-1"): ["--model.weight_decay -1.0: AdamW refuses it", "weight_decay"],
    ("--model.adam_epsilon", "-1"): ["--model.adam_epsilon -1.0: AdamW refuses it", "epsilon"],
    ("--model.max_new_tokens", "0"): ["--model.max_new_tokens 0 generates nothing"],
    ("--checkpoint.monitor", "val/f1"): ["--checkpoint.monitor val/f1 is not logged by a run of rte", "val/accuracy"],
    ("--checkpoint.monitor", "train/loss"): ["--checkpoint.mode max", "train/loss", "--checkpoint.mode min"],
}


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize(("option", "value"), list(CASES), ids=[f"{o}={v}" for o, v in CASES])
def test_a_bad_option_is_one_line_before_any_work(capsys, tmp_path, command, option, value):
    logs = tmp_path / "logs"
    code, _, err = in_process(
        capsys, command, "--config", DEMO, "--trainer.default_root_dir", str(logs), "--data.cache_dir",
        str(tmp_path / "cache"), option, value,
    )  # fmt: skip
    one_line_error(code, err, *CASES[option, value])
    assert not logs.exists() and not (tmp_path / "cache").exists()  # refused before a run folder or a cache


def test_val_check_interval_beyond_the_epoch_is_one_line_before_the_first_step(capsys, tmp_path):
    code, _, err = in_process(
        capsys, "fit", "--config", DEMO, "--trainer.default_root_dir", str(tmp_path / "logs"),
        "--data.cache_dir", str(tmp_path / "cache"), "--trainer.limit_train_batches", "2",
        "--trainer.val_check_interval", "100000",
    )  # fmt: skip
    one_line_error(code, err, "--trainer.val_check_interval 100000 is more than the 2 training batches", "0.5")
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


def test_a_sweep_checks_every_runs_options_before_its_first_run(capsys, tmp_path):
    sweep = write_sweep(tmp_path, overrides={"trainer.gradient_clip_val": -1})
    code, _, err = in_process(capsys, "sweep", "--config", str(sweep))
    one_line_error(code, err, "--trainer.gradient_clip_val -1", "reverses every gradient")
    assert not (tmp_path / "out" / "runs").exists()


def test_the_checks_pass_a_good_run(capsys, tmp_path):
    code, _, err = in_process(
        capsys, "fit", "--config", DEMO, "--trainer.default_root_dir", str(tmp_path / "logs"),
        "--data.cache_dir", str(tmp_path / "cache"), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
        "--trainer.gradient_clip_val", "1.0", "--checkpoint.monitor", "val/accuracy",
        "--model.model_name_or_path", str(DEMO_MODEL),
    )  # fmt: skip
    assert code == 0, err
