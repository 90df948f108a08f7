"""Kill-and-resume: a fit killed mid-epoch by SIGKILL and resumed with --ckpt_path last ends exactly where an
uninterrupted run ends (same weights, same metrics). CPU, fixed seed."""

import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT

COMMON = ["--config", str(ROOT / "configs/demo.yaml"), "--checkpoint.every_n_train_steps", "1",
          "--trainer.max_epochs", "2"]


def fit(cli, root, *extra, env=None):
    return cli("fit", *COMMON, "--trainer.default_root_dir", str(root), "--data.cache_dir",
               str(root.parent / "cache"), *extra, env=env)


def final_scores(run_dir) -> list[float]:
    return [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("val/accuracy")]


@pytest.mark.slow
@pytest.mark.faults
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(cli, tmp_path):
    straight = fit(cli, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed = fit(cli, tmp_path / "killed", "--trainer.callbacks+=fault_injection.KillAt",
                 "--trainer.callbacks.step=27", env={"PYTHONPATH": str(ROOT / "tests")})
    assert killed.returncode == -signal.SIGKILL  # a real SIGKILL, in the middle of the second epoch
    partial = torch.load(tmp_path / "killed/lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert partial["global_step"] == 27

    resumed = fit(cli, tmp_path / "killed", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout

    expected = torch.load(tmp_path / "straight/lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    actual = torch.load(tmp_path / "killed/lightning_logs/version_1/checkpoints/last.ckpt", weights_only=True)
    assert expected["global_step"] == actual["global_step"] == 38
    assert expected["state_dict"].keys() == actual["state_dict"].keys()
    assert all(torch.equal(expected["state_dict"][k], actual["state_dict"][k]) for k in expected["state_dict"])
    assert final_scores(tmp_path / "straight/lightning_logs/version_0")[-1] == \
        final_scores(tmp_path / "killed/lightning_logs/version_1")[-1]


def test_ckpt_path_last_without_any_run_is_one_line(cli, tmp_path):
    result = fit(cli, tmp_path / "empty", "--ckpt_path", "last")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: --ckpt_path last: no last.ckpt under" in result.stderr
