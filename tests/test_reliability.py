"""Faults and bad input: one line, a non-zero exit, no traceback, and nothing the user had is lost."""

import os
from pathlib import Path

import pytest

from conftest import ROOT
from test_cli_errors import assert_one_line_error


def demo(cli, tmp_path, *overrides, command="fit", env=None):
    return cli(command, "--config", str(ROOT / "configs/demo.yaml"), "--trainer.default_root_dir", str(tmp_path),
               "--data.cache_dir", str(tmp_path / "cache"), *overrides, env=env)


def test_yaml_with_an_unknown_key_names_it_and_suggests_the_closest(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  learning_rat: 0.1\n")
    result = demo(cli, tmp_path, "--config", str(bad))
    assert_one_line_error(result, "model.learning_rat", "did you mean 'model.learning_rate'")


def test_unknown_command_line_key_suggests_the_closest(cli, tmp_path):
    result = demo(cli, tmp_path, "--trainer.max_epoch", "2")
    assert_one_line_error(result, "--trainer.max_epoch", "did you mean 'trainer.max_epochs'")


def test_wrong_type_names_the_key(cli, tmp_path):
    assert_one_line_error(demo(cli, tmp_path, "--data.batch_size", "many"), "data.batch_size", "int")


def test_unknown_method_lists_the_known_ones(cli, tmp_path):
    result = demo(cli, tmp_path, "--model.method.class_path", "compacter_pl.methods.Nope")
    assert_one_line_error(result, "compacter_pl.methods.Nope", "FullFineTuning")


def test_float16_is_refused_with_a_recommendation(cli, tmp_path):
    assert_one_line_error(demo(cli, tmp_path, "--trainer.precision", "16-mixed"), "bf16-mixed", "--allow_fp16")


@pytest.mark.slow
def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    poison = ["--trainer.callbacks+=fault_injection.PoisonWeightsAt", "--trainer.callbacks.step=25"]
    result = demo(cli, tmp_path, *poison, env={"PYTHONPATH": str(ROOT / "tests")})
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    error = assert_one_line_error(result, "the loss is nan at step 25 (epoch 1)", f"checkpoint is {last}")
    import torch

    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 19  # written after the first epoch, never overwritten with NaN weights
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


@pytest.mark.slow
def test_unwritable_log_directory_is_one_line(cli, tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new directories even to root
        target = Path("/sys/compacter-pl-test")
        if not Path("/sys").is_dir():
            pytest.skip("no read-only location available")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "logs"
    result = cli("fit", "--config", str(ROOT / "configs/demo.yaml"), "--trainer.default_root_dir", str(target),
                 "--data.cache_dir", str(tmp_path / "cache"))
    assert_one_line_error(result, "cannot write", "--trainer.default_root_dir")
