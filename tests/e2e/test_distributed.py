"""Several devices: DDP on CPU counts every evaluation example exactly once and gives the metrics of one device."""

import re

import pytest

from tests.helpers import DEMO_DATA, ROOT, quiet_trainer


def metrics_printed(stdout: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(test/\w+)\s*│\s*([0-9.eE+-]+)", stdout)}


@pytest.mark.slow
def test_ddp_test_metrics_equal_the_single_device_run(cli, tmp_path):
    # MultiRC: answer options grouped by question, an uneven split, and a metric that needs whole questions.
    common = [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--data.task",
        "multirc",
        "--data.data_dir",
        str(DEMO_DATA / "multirc"),
        "--data.eval_batch_size",
        "4",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    ]
    fit = cli("fit", *common, "--trainer.max_epochs", "2")
    assert fit.returncode == 0, fit.stderr[-2000:]
    ckpt = re.search(r"best checkpoint: (\S+)", fit.stdout).group(1)
    one = cli("test", *common, "--ckpt_path", ckpt, "--trainer.devices", "1")
    two = cli("test", *common, "--ckpt_path", ckpt, "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert metrics_printed(one.stdout) == metrics_printed(two.stdout)
    assert set(metrics_printed(one.stdout)) == {"test/f1", "test/question_exact_match", "test/score"}


@pytest.mark.slow
def test_every_method_trains_under_ddp_and_tests_as_on_one_device(tmp_path):
    """Lightning DDP on 2 CPU processes, find_unused_parameters off (every trainable parameter gets a gradient);
    the 2-process test metrics of each method equal a single-process test of the same trained parameters."""
    import json
    import os
    import subprocess
    import sys

    import torch

    from compacter_pl.data import TextToTextDataModule
    from compacter_pl.training.module import TextToTextModule
    from tests.helpers import DEMO_MODEL, KEYS, tiny_method

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests/e2e/ddp_all_methods.py"), str(tmp_path)],
        cwd=ROOT / "tests" / "e2e",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ddp_metrics = json.loads((tmp_path / "results.json").read_text())
    assert set(ddp_metrics) == set(KEYS)
    for key in KEYS:
        module = TextToTextModule(str(DEMO_MODEL), method=tiny_method(key), task="rte")
        module.model.load_state_dict(torch.load(tmp_path / f"{key}.pt", weights_only=True), strict=False)
        dm = TextToTextDataModule(
            "rte",
            str(DEMO_MODEL),
            data_dir=str(DEMO_DATA / "rte"),
            batch_size=8,
            eval_batch_size=7,
            cache_dir=str(tmp_path / "cache"),
        )
        trainer = quiet_trainer(devices=1)
        assert trainer.test(module, dm, verbose=False)[0] == ddp_metrics[key], key
