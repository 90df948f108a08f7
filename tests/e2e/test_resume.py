"""Kill-and-resume: a fit killed mid-epoch by SIGKILL and resumed with --ckpt_path last ends exactly where an
uninterrupted run ends (same weights, same metrics). CPU, fixed seed."""

import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import ROOT, error_line, run_cli

COMMON = ["--config", str(ROOT / "configs/demo.yaml"), "--trainer.max_epochs", "2"]  # the shipped checkpoints


def fit(cli, root, *extra, env=None):
    return cli(
        "fit",
        *COMMON,
        "--trainer.default_root_dir",
        str(root),
        "--data.cache_dir",
        str(root.parent / "cache"),
        *extra,
        env=env,
    )


def fit_interrupted(cli, root, callback: str, *extra):
    """A fit that `tests.e2e.fault_injection.<callback>` interrupts at step 27 (the repository on its PYTHONPATH)."""
    faults = [f"--trainer.callbacks+=tests.e2e.fault_injection.{callback}", "--trainer.callbacks.step=27"]
    return fit(cli, root, *extra, *faults, env={"PYTHONPATH": str(ROOT)})


def last_checkpoint(root) -> dict:
    return torch.load(root / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)


def same_weights(expected: dict, actual: dict) -> bool:
    return all(torch.equal(expected["state_dict"][k], actual["state_dict"][k]) for k in expected["state_dict"])


def final_scores(run_dir) -> list[float]:
    return [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("val/accuracy")]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run, the reference of every kill-and-resume case (a checkpoint interval does not change
    the weights)."""
    root = tmp_path_factory.mktemp("resume") / "straight"
    result = fit(run_cli, root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize(
    ("interval", "saved_at"),
    [([], 19), (["--last_checkpoint.every_n_train_steps", "9"], 27)],
    ids=["shipped-settings", "mid-epoch-interval"],
)
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(cli, tmp_path, straight, interval, saved_at):

    killed = fit_interrupted(cli, tmp_path / "killed", "KillAt", *interval)
    assert killed.returncode == -signal.SIGKILL  # a real SIGKILL, in the middle of the second epoch
    partial = last_checkpoint(tmp_path / "killed")
    assert partial["global_step"] == saved_at  # the first epoch's end (shipped settings), or the last interval

    resumed = fit(cli, tmp_path / "killed", *interval, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout

    expected, actual = last_checkpoint(straight), last_checkpoint(tmp_path / "killed")
    assert not (tmp_path / "killed/lightning_logs/version_1").exists()  # the resumed run logs on in version_0
    assert expected["global_step"] == actual["global_step"] == 38
    assert expected["state_dict"].keys() == actual["state_dict"].keys()
    assert same_weights(expected, actual)
    assert (
        final_scores(straight / "lightning_logs/version_0")[-1]
        == final_scores(tmp_path / "killed/lightning_logs/version_0")[-1]
    )


@pytest.mark.slow
@pytest.mark.faults
def test_sigterm_saves_the_current_step_and_the_resumed_run_continues_from_it(cli, tmp_path, straight):
    stopped = fit_interrupted(cli, tmp_path / "stopped", "TerminateAt")
    last = tmp_path / "stopped/lightning_logs/version_0/checkpoints/last.ckpt"
    assert stopped.returncode == 128 + signal.SIGTERM  # not 0: a job script sees that the run did not finish
    error_line(stopped.stderr, f"stopped by SIGTERM at step 28 (epoch 1); saved {last}", "--ckpt_path last")
    assert torch.load(last, weights_only=True)["global_step"] == 28  # the step it stopped at, not the epoch's end

    resumed = fit(cli, tmp_path / "stopped", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, actual = last_checkpoint(straight), last_checkpoint(tmp_path / "stopped")
    assert actual["global_step"] == 38
    assert same_weights(expected, actual)


def test_ckpt_path_last_without_any_run_is_one_line(cli, tmp_path):
    result = fit(cli, tmp_path / "empty", "--ckpt_path", "last")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: --ckpt_path last: no last.ckpt under" in result.stderr
