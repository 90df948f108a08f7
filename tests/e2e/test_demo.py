"""The offline demo end to end through cli.py, as the README runs it."""

import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import ROOT, run_demo


def scalars(log_dir, tag: str) -> list[float]:
    events = EventAccumulator(str(log_dir)).Reload()
    return [e.value for e in events.Scalars(tag)]


@pytest.mark.slow
def test_demo_fits_learns_and_tests_its_best_checkpoint(cli, tmp_path):
    common = [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    ]
    fit = cli("fit", *common)
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = re.search(r"best checkpoint: (\S+)", fit.stdout).group(1)
    summary = re.search(r"^best val/score [\d.]+ at step (\d+) \(epoch (\d+)\); trained [\d,]+ of", fit.stdout, re.M)
    assert summary and best.endswith(f"best-{summary.group(2)}-{summary.group(1)}.ckpt"), fit.stdout[-2000:]
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard events are written"
    accuracy = scalars(run_dir, "val/accuracy")
    assert len(accuracy) == 6  # one validation per epoch
    assert accuracy[-1] >= 0.9, accuracy
    assert scalars(run_dir, "train/loss")[-1] < scalars(run_dir, "train/loss")[0]
    assert scalars(run_dir, "train/lr"), "the learning rate is logged"
    assert max(scalars(run_dir / "hparams", "hp/best_val_score")) >= 0.9  # the run's HParams row
    assert (run_dir / "hparams.yaml").read_text().count("learning_rate") == 1
    # last.ckpt is where the run stopped (for --ckpt_path last), not the best epoch
    checkpoints = run_dir / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (5, 6 * 19)  # 6 epochs of 19 steps
    assert torch.load(best, weights_only=True)["global_step"] < last["global_step"]  # the demo peaks early

    test = cli("test", *common, "--ckpt_path", best)
    assert test.returncode == 0, test.stderr[-3000:]
    match = re.search(r"test/accuracy\s*│\s*([0-9.]+)", test.stdout)
    assert match and float(match.group(1)) >= 0.9, test.stdout[-2000:]


@pytest.mark.slow
def test_a_short_demo_fit_prints_no_deprecation_of_our_calls_no_tips_and_an_integer_v_num(cli, tmp_path):
    """The README's demo config for a few steps, validated on ranked labels too (the code path that builds masks),
    with every DeprecationWarning and FutureWarning shown: none is issued at a line of this repository."""
    fit = run_demo(
        cli,
        tmp_path,
        "--trainer.max_steps",
        "4",
        "--trainer.val_check_interval",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--model.eval_mode",
        "rank",
        env={"PYTHONWARNINGS": "always::DeprecationWarning,always::FutureWarning"},
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    ours = re.compile(rf"^{re.escape(str(ROOT))}/\S+:\d+: \w*(Deprecation|Future)Warning", re.M)
    assert not ours.findall(fit.stderr), [line for line in fit.stderr.splitlines() if ours.match(line)]
    output = fit.stdout + fit.stderr
    assert "💡" not in output and "Tip:" not in output, [line for line in output.splitlines() if "Tip" in line]
    assert "v_num: 0.000" not in output and re.search(r"v_num[:=] ?0\b", output), output[-2000:]


def hparams_row(run_dir) -> dict:
    """The run's HParams-tab row as TensorBoard reads it: its hyper-parameters (from the session start record)."""
    from tensorboard.plugins.hparams import metadata

    events = EventAccumulator(str(run_dir)).Reload()
    content = events.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    return {
        name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for name, value in start.hparams.items()
    }


@pytest.mark.slow
def test_tensorboard_has_one_run_per_fit_with_its_hparams_row_and_curves(cli, tmp_path):
    method = ["--model.method", "compacter_pl.methods.Compacter", "--model.method.init_args.n", "2"]
    method += ["--model.method.init_args.bottleneck", "8"]
    short = ["--trainer.max_epochs", "2", "--data.train_size", "64", "--trainer.log_every_n_steps", "1"]
    fit = run_demo(cli, tmp_path, *method, *short)
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = re.search(r"best checkpoint: (\S+)", fit.stdout).group(1)
    for command in ("test", "predict"):
        output = ["--ckpt_path", best, "--predictions.output", str(tmp_path / "preds.jsonl")]
        result = run_demo(cli, tmp_path, *method, *output, command=command)
        assert result.returncode == 0, result.stderr[-3000:]
    logs = tmp_path / "lightning_logs"
    assert sorted(p.name for p in logs.iterdir()) == ["version_0"]  # test and predict add no pseudo-runs

    run = logs / "version_0"
    curves = set(EventAccumulator(str(run)).Reload().Tags()["scalars"])
    assert sorted({tag.split("/")[0] for tag in curves}) == ["test", "train", "val"], curves  # no epoch, hp_metric
    assert {"train/loss", "train/lr", "val/score", "val/accuracy", "test/score"} <= curves

    row = hparams_row(run / "hparams")
    assert {k: row[k] for k in ("task", "method", "train_size", "seed", "learning_rate")} == {
        "task": "rte",
        "method": "compacter",  # its registry key
        "train_size": 64,
        "seed": 42,
        "learning_rate": 0.003,
    }
    assert row["method.n"] == 2 and row["method.bottleneck"] == 8 and row["model"] == "demo/tiny-t5"
    assert not [k for k in row if k.startswith("_") or "hp_metric" in k], row
    # the row's metrics are the sub-run's scalars: best validation and test scores, nothing else
    scores = EventAccumulator(str(run / "hparams")).Reload()
    assert set(scores.Tags()["scalars"]) == {"hp/best_val_score", "test/score", "test/accuracy"}
    assert scores.Scalars("test/score")[-1].value == scalars(run, "test/score")[-1]
    assert scores.Scalars("hp/best_val_score")[-1].value == max(scalars(run, "val/score"))
