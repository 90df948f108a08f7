"""Shared fixtures: the committed tiny demo model, the demo data, the real GLUE sample, and a CLI runner."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: two workers share the cores, one torch thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "demo" / "tiny-t5"
DEMO_DATA = ROOT / "demo" / "data"
GLUE_SAMPLE = ROOT.parent / "shared" / "glue-sample" / "hub"
# A duration as the sweep prints it (`compacter_pl.sweep.runner.duration`): 55.5s, 1m03s, 2h05m. Output checks use
# it so they hold however long a run takes.
DURATION = r"(?:\d+\.\ds|\d+m\d{2}s|\d+h\d{2}m)"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return DEMO_MODEL


@pytest.fixture(scope="session")
def glue_sample() -> Path:
    if not GLUE_SAMPLE.is_dir():
        pytest.skip(f"real GLUE sample not found at {GLUE_SAMPLE}")
    return GLUE_SAMPLE


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600, env: dict | None = None):
    """`python cli.py ARGS` in a subprocess, offline, as a user would run it."""
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`cli.py ARGS` in this process (no interpreter start-up, no subprocess): (exit code, stdout, stderr)."""
    from compacter_pl.cli import main

    log_to_this_tests_stderr()

    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli_in_process(capsys):
    """`run_cli`'s call and result (returncode, stdout, stderr), run in this process: for tests of what a run does,
    where an interpreter start-up per command would cost more than the command."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        assert not env, "a run in process shares this process's environment: use run_cli"
        code, out, err = in_process(capsys, *args)
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def log_to_this_tests_stderr() -> None:
    """Lightning's loggers write to the stderr of the test that imported Lightning, which capsys has closed since
    (a "--- Logging error ---" traceback in a later test of the same worker): point them at this test's."""
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stderr  # not setStream, which flushes the closed one


def error_line(err: str, *fragments: str) -> str:
    """The one `error:` line of stderr (no traceback), holding every fragment."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def one_line_error(code: int, err: str, *fragments: str) -> str:
    """The exit code 2 and the one `error:` line (no traceback) of bad input, holding every fragment."""
    assert code == 2, err
    return error_line(err, *fragments)


def run_demo(cli, tmp_path: Path, *overrides: str, command: str = "fit", env: dict | None = None):
    """`cli.py COMMAND --config configs/demo.yaml` writing its runs and cache under `tmp_path`."""
    return cli(
        command,
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        *overrides,
        env=env,
    )
