"""A sweep's runs as subprocesses: the `cli.py fit` and `cli.py test` commands of a run, each child's output in its
log (and on the terminal), the run's lock held by the sweep and shared with the child, and the child killed with
its sweep (Linux: PR_SET_PDEATHSIG), so a killed sweep leaves nothing running."""

import contextlib
import ctypes
import fcntl
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from compacter_pl.tools.sweep.grid import Run, Sweep
from compacter_pl.tools.sweep.results import RESULTS_FILE
from compacter_pl.training.summary import FIT_SUMMARY, TEST_SUMMARY
from compacter_pl.training.trainer import LOGGER

CLI_SCRIPT = Path(__file__).resolve().parents[3] / "cli.py"
LOCK_WAIT_SECONDS = 10.0  # a killed sweep's subprocess may take a moment to die and release its run
MAX_REASON = 400  # characters of a failed run's error shown in the progress line; the log has all of it


@dataclass(frozen=True)
class SweepDir:
    root: Path

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run: Run) -> Path:
        return self.runs / run.name

    def lock(self, run: Run) -> Path:
        return self.root / ".locks" / f"{run.name}.lock"


def cli_command() -> list[str]:
    """`python cli.py` of this checkout (or the installed package's entry point without a checkout)."""
    if CLI_SCRIPT.is_file():
        return [sys.executable, str(CLI_SCRIPT)]
    return [sys.executable, "-c", "from compacter_pl.cli import main; main()"]


def fit_command(sweep: Sweep, directory: SweepDir, run: Run, progress_bar: bool) -> list[str]:
    # the test (another process, no logger) adds its scores to the run's row afterwards (write_row_metrics); the
    # row names the method by its key and shows its arguments (a variant's among them) of its own
    row = {"sweep.config": run.config.name} if run.config.name else {}
    init_args = {"save_dir": str(directory.runs), "name": "", "version": run.name, "row": row}
    logger = {"class_path": LOGGER, "init_args": init_args}
    return [
        *cli_command(),
        "fit",
        *_run_args(sweep, directory, run),
        f"--trainer.logger={json.dumps(logger)}",
        *_progress(progress_bar),
    ]


def test_command(sweep: Sweep, directory: SweepDir, run: Run, checkpoint: str, progress_bar: bool) -> list[str]:
    """The test of the best checkpoint with the fit's arguments; its own config.yaml goes to `test/`."""
    return [
        *cli_command(),
        "test",
        *_run_args(sweep, directory, run),
        "--trainer.logger=false",
        f"--trainer.default_root_dir={directory.run(run) / 'test'}",
        "--ckpt_path",
        checkpoint,
        *_progress(progress_bar),
    ]


def _run_args(sweep: Sweep, directory: SweepDir, run: Run) -> list[str]:
    # no last.ckpt: an unfinished run restarts from scratch, and pruning would delete it anyway; the run's summary
    # writes fit.json and test.json into the run's directory (compacter_pl.training.summary)
    return [
        "--config",
        str(sweep.base_config),
        *run.args(),
        "--last_checkpoint.at_epoch_end=false",
        f"--summary.out_dir={directory.run(run)}",
    ]


def _progress(progress_bar: bool) -> list[str]:
    return [] if progress_bar else ["--trainer.enable_progress_bar=false"]


@dataclass(frozen=True)
class Outcome:
    status: str  # done, skipped or failed
    detail: str  # the test score, why it was skipped, why it failed


@dataclass(frozen=True)
class Tested:
    """What a run's fit and test left for the record: the fit's summary, the test's metrics, the best checkpoint and
    the seconds both took."""

    fit_summary: dict
    test_metrics: dict
    checkpoint: str
    wall_time: float


def fit_and_test(sweep: Sweep, directory: SweepDir, run: Run, progress_bar: bool, lock: int) -> Outcome | Tested:
    """Fit the run from scratch (its directory wiped first), then test its best checkpoint: what the record needs,
    or the Outcome of a run that failed."""
    run_dir = directory.run(run)
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run starts over
    run_dir.mkdir(parents=True)
    fit = fit_command(sweep, directory, run, progress_bar)
    (run_dir / "command.txt").write_text(shlex.join(fit) + "\n")
    started = time.monotonic()
    if _run_logged(fit, run_dir / "fit.log", progress_bar, lock):
        return Outcome("failed", _failure(run_dir / "fit.log"))
    summary_path = run_dir / FIT_SUMMARY
    if not summary_path.exists():
        return Outcome("failed", f"the fit wrote no {FIT_SUMMARY} (log: {run_dir / 'fit.log'})")
    fit_summary = json.loads(summary_path.read_text())
    expected = {"task": run.task, "train_size": run.size, "seed": run.seed if run.size is not None else None}
    used = {k: v for k, v in fit_summary.get("data", {}).items() if expected.get(k) is not None}
    if used != {k: v for k, v in expected.items() if v is not None}:
        return Outcome(
            "failed",
            f"the run trained on {used}, not the sweep's {expected}: is seed_everything "
            f"still linked to data.seed in compacter_pl/config/run.py?",
        )
    checkpoint = fit_summary.get("best_checkpoint")
    if "score" not in fit_summary.get("best_val", {}):
        return Outcome(
            "failed",
            "no validation ran, so there is no best checkpoint; validate at least once "
            "(trainer.val_check_interval, check_val_every_n_epoch, max_epochs)",
        )
    if not checkpoint:
        return Outcome("failed", "the fit kept no best checkpoint to test (is trainer.enable_checkpointing off?)")
    test = test_command(sweep, directory, run, checkpoint, progress_bar)
    with open(run_dir / "command.txt", "a") as f:
        f.write(shlex.join(test) + "\n")
    if _run_logged(test, run_dir / "test.log", progress_bar, lock):
        return Outcome("failed", _failure(run_dir / "test.log"))
    if not (run_dir / TEST_SUMMARY).exists():
        return Outcome("failed", f"the test wrote no {TEST_SUMMARY} (log: {run_dir / 'test.log'})")
    test_metrics = json.loads((run_dir / TEST_SUMMARY).read_text())["test"]
    wall_time = time.monotonic() - started
    return Tested(fit_summary, test_metrics, checkpoint, wall_time)


@contextlib.contextmanager
def run_lock(directory: SweepDir, run: Run) -> Iterator[int | None]:
    """The run's lock file, locked for the block (None if another sweep process still holds it after
    LOCK_WAIT_SECONDS); a child given it (`pass_fds`) holds it too."""
    lock_path = directory.lock(run)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield lock if take_lock(lock, LOCK_WAIT_SECONDS) else None
    finally:
        os.close(lock)


def take_lock(fd: int, wait: float) -> bool:
    """Lock `fd` (flock), waiting at most `wait` seconds; whether it was taken."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _die_with_parent(parent: int):
    """In the child, before exec: be killed when the sweep dies (Linux), so no orphan trains on."""

    def preexec() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the sweep died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec if sys.platform.startswith("linux") else None


def _run_logged(command: list[str], log: Path, echo: bool, lock: int) -> int:
    """Run `command` with its output in `log` (and on the terminal when `echo`); the child shares the run's
    lock, so the run stays locked until the child is gone too. Returns the exit code."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if echo else out,
            stderr=subprocess.STDOUT,
            pass_fds=(lock,),
            preexec_fn=_die_with_parent(os.getpid()),
        )
        try:
            if echo:
                pipe = cast(io.BufferedReader, process.stdout)  # stdout=PIPE with Popen's default buffering
                for chunk in iter(lambda: pipe.read1(1 << 16), b""):
                    out.write(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            return process.wait()
        finally:
            if process.poll() is None:  # interrupted: take the child down with the sweep
                process.kill()
                process.wait()


def _failure(log: Path) -> str:
    """The one-line reason of a failed subprocess: its `error:` line, else its last line, and where the log is."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    reason = errors[-1] if errors else (lines[-1] if lines else "no output")
    if len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON] + " [...]"
    return f"{reason} (log: {log})"
