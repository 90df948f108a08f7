"""Faults in real runs: one line, a non-zero exit, no traceback, and nothing the user had is lost (bad input on
the command line is the table of `test_bad_input.py`)."""

import os
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_one_line_error, run_demo


@pytest.fixture
def cli(cli_in_process):
    """In process: these tests are about what a run does with a fault, not about the interpreter (the subprocess
    tests of test_cli_errors.py and test_resume.py show that a real process ends the same way)."""
    return cli_in_process


@pytest.mark.slow
def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    poison = ["--trainer.callbacks+=tests.e2e.fault_injection.PoisonWeightsAt", "--trainer.callbacks.step=25"]
    result = run_demo(cli, tmp_path, *poison)  # tests.e2e.fault_injection: the repository is on sys.path
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert_one_line_error(result, "the loss is nan at step 25 (epoch 1)", f"checkpoint is {last}")
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
    result = cli(
        "fit",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.default_root_dir",
        str(target),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    )
    assert_one_line_error(result, "cannot write", "--trainer.default_root_dir")


@pytest.mark.slow
def test_corrupt_data_file_is_one_line(cli, tmp_path):
    data_dir = tmp_path / "rte"
    data_dir.mkdir()
    (data_dir / "train.parquet").write_bytes(b"PAR1 this is not a parquet file")
    (data_dir / "validation.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "label": 0, "idx": 0}\n')
    result = run_demo(cli, tmp_path, "--data.data_dir", str(data_dir))
    assert_one_line_error(result, "cannot read", "train.parquet")


@pytest.mark.slow
def test_checkpoint_of_another_method_or_model_is_refused(cli, tmp_path):
    fit = run_demo(cli, tmp_path, "--trainer.max_epochs", "1")
    assert fit.returncode == 0, fit.stderr[-2000:]
    import torch

    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    # The CLI rebuilds the model from the checkpoint's own hyper-parameters, so a mismatch means a checkpoint
    # whose parameters are not what its method trains, or whose base architecture differs.
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["hyper_parameters"]["method"] = {"class_path": "compacter_pl.methods.BitFit", "init_args": {}}
    torch.save(checkpoint, tmp_path / "other_method.ckpt")
    bitfit = ["--model.method.class_path", "compacter_pl.methods.BitFit"]  # the identity it records: BitFit's
    other_method = run_demo(cli, tmp_path, *bitfit, "--ckpt_path", str(tmp_path / "other_method.ckpt"), command="test")
    assert_one_line_error(other_method, "checkpoint does not match this model and method")
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["hyper_parameters"]["base_architecture"]["d_model"] = 768
    torch.save(checkpoint, tmp_path / "other_model.ckpt")
    other_model = run_demo(cli, tmp_path, "--ckpt_path", str(tmp_path / "other_model.ckpt"), command="test")
    assert_one_line_error(other_model, "d_model=768")
    exported = cli("export", "--ckpt_path", str(last), "--out", str(tmp_path / "export"))
    assert exported.returncode == 0 and (tmp_path / "export" / "adapter.safetensors").is_file(), exported.stderr
    missing = cli("export", "--ckpt_path", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "export2"))
    assert_one_line_error(missing, "nope.ckpt does not exist")
