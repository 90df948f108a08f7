"""Several devices: DDP on CPU counts every evaluation example exactly once and gives the metrics of one device."""

import re

import pytest

from conftest import DEMO_DATA, ROOT


def metrics_printed(stdout: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(test/\w+)\s*│\s*([0-9.eE+-]+)", stdout)}


@pytest.mark.slow
def test_ddp_test_metrics_equal_the_single_device_run(cli, tmp_path):
    # MultiRC: answer options grouped by question, an uneven split, and a metric that needs whole questions.
    common = ["--config", str(ROOT / "configs/demo.yaml"), "--data.task", "multirc",
              "--data.data_dir", str(DEMO_DATA / "multirc"), "--data.eval_batch_size", "4",
              "--trainer.default_root_dir", str(tmp_path), "--data.cache_dir", str(tmp_path / "cache")]
    fit = cli("fit", *common, "--trainer.max_epochs", "2")
    assert fit.returncode == 0, fit.stderr[-2000:]
    ckpt = re.search(r"best checkpoint: (\S+)", fit.stdout).group(1)
    one = cli("test", *common, "--ckpt_path", ckpt, "--trainer.devices", "1")
    two = cli("test", *common, "--ckpt_path", ckpt, "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert metrics_printed(one.stdout) == metrics_printed(two.stdout)
    assert set(metrics_printed(one.stdout)) == {"test/f1", "test/question_exact_match", "test/score"}
