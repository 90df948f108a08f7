"""Shared fixtures: the committed tiny demo model, the real GLUE sample, and the CLI run in a subprocess or in this
process. The helpers that test files import are in helpers.py."""

import os
import subprocess
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: two workers share the cores, one torch thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from tests.helpers import DEMO_MODEL, GLUE_SAMPLE, ROOT, in_process, run_cli  # noqa: E402 (torch's threads set first)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return DEMO_MODEL


@pytest.fixture(scope="session")
def glue_sample() -> Path:
    if not GLUE_SAMPLE.is_dir():
        pytest.skip(f"real GLUE sample not found at {GLUE_SAMPLE}")
    return GLUE_SAMPLE


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def cli_in_process(capsys):
    """`run_cli`'s call and result (returncode, stdout, stderr), run in this process: for tests of what a run does,
    where an interpreter start-up per command would cost more than the command."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        assert not env, "a run in process shares this process's environment: use run_cli"
        code, out, err = in_process(capsys, *args)
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A last.ckpt of two steps of the demo (FullFineTuning), written by the CLI in this process."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        from compacter_pl.cli import main

        main(
            ["fit", "--config", str(ROOT / "configs/demo.yaml"), "--trainer.max_steps", "2"]
            + ["--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(root)]
            + ["--data.cache_dir", str(root / "cache")]
        )
    return root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
