"""Runs a sweep: each run is `cli.py fit` then `cli.py test` of its best checkpoint, each in a subprocess.

A run lives in `<sweep>/runs/<task>-<method>[-<configuration>]-n<size>-s<seed>/`: its TensorBoard events, the
config LightningCLI resolved (`config.yaml`), its checkpoints, `fit.log` and `test.log` (everything the subprocesses
printed), `command.txt` (how to redo it by hand). A run is finished once its line is in `<sweep>/results.jsonl`;
re-running the sweep skips finished runs and restarts any other run from scratch (its directory is wiped first), so a
killed sweep resumes where it stopped. While a run executes, its lock in `<sweep>/.locks/` is held by the
sweep and by its subprocess (a second sweep on the same directory skips it), and the subprocess is killed with
its sweep (Linux), so a killed sweep leaves nothing running.
"""

import ctypes
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from compacter_pl.errors import UserError
from compacter_pl.files import write_atomically
from compacter_pl.sweep.grid import FULL, Run, Sweep, shard_of
from compacter_pl.sweep.recorder import FIT_SUMMARY, TEST_SUMMARY
from compacter_pl.sweep.results import RESULTS_FILE, append_result, read_results
from compacter_pl.tensorboard import write_row_metrics
from compacter_pl.text_table import text_table

CLI_SCRIPT = Path(__file__).resolve().parents[2] / "cli.py"
STOP_AFTER_SAME_FAILURES = 3  # consecutive runs failing alike: a mistake every run will repeat
LOCK_WAIT_SECONDS = 10.0  # a killed sweep's subprocess may take a moment to die and release its run
MAX_REASON = 400  # characters of a failed run's error shown in the progress line; the log has all of it
RECORDER = "compacter_pl.sweep.recorder.RunRecorder"
LOGGER = "compacter_pl.tensorboard.TensorBoardLogger"  # the fit writes the run's HParams row (tensorboard.py)


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
    # the test (another process, no logger) adds its scores to the run's row afterwards (write_row_metrics)
    row = {"sweep.method": run.method.name, **({"sweep.config": run.config.name} if run.config.name else {})}
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
    recorder = {"class_path": RECORDER, "init_args": {"out_dir": str(directory.run(run))}}
    # no last.ckpt: an unfinished run restarts from scratch, and pruning would delete it anyway
    return [
        "--config",
        str(sweep.base_config),
        *run.args(),
        "--last_checkpoint.at_epoch_end=false",
        f"--trainer.callbacks+={json.dumps(recorder)}",
    ]


def _progress(progress_bar: bool) -> list[str]:
    return [] if progress_bar else ["--trainer.enable_progress_bar=false"]


# --- checks before anything runs --------------------------------------------------------------------------------


def resolved_configs(sweep: Sweep) -> dict[str, dict]:
    """Parse runs that together use every task, method, size and searched value with cli.py's own parser (in
    this process, no model is built): an unknown or ill-typed override fails here, naming where the sweep file
    sets it. Returns each task's resolved config."""
    from compacter_pl.cli import run_parser

    parse_run, configs, seen = run_parser(), {}, set()
    for run in sweep.runs():
        coordinates = {
            ("task", run.task),
            ("method", run.method.name),
            ("size", run.size),
            *((key, json.dumps(value, sort_keys=True)) for key, value in run.config.values.items()),
        }
        if coordinates <= seen:
            continue
        seen |= coordinates
        try:
            config = parse_run(["fit", "--config", str(sweep.base_config), *run.args()])
        except UserError as error:
            raise UserError(
                f"{sweep.path}: run {run.name} does not parse{_set_where(sweep, run, str(error))}: {error}"
            ) from None
        configs.setdefault(run.task, config)
    return configs


def _set_where(sweep: Sweep, run: Run, message: str) -> str:
    levels = [
        ("overrides", sweep.overrides),
        (f"tasks.{run.task}", sweep.tasks[run.task]),
        (f"methods.{run.method.name}.overrides", run.method.overrides),
        (f"sizes.{run.size or FULL}", sweep.sizes[run.size]),
        (f"methods.{run.method.name}.search", run.config.overrides()),
    ]
    for context, overrides in reversed(levels):
        if any(f"--{key}=" in message or f"'{key}'" in message for key in overrides):
            return f" (check {context})"
    if "model.method" in message or "init_args" in message:
        return f" (check methods.{run.method.name})"
    return ""


def check_sizes(sweep: Sweep, configs: dict[str, dict]) -> None:
    """Every size fits its task's training split (after the paper's split), before hours are spent."""
    from compacter_pl.data.sources import load_split
    from compacter_pl.tasks import get_task

    runs = sweep.runs()
    for name, config in configs.items():
        sizes = sorted({run.size for run in runs if run.task == name and run.size is not None})
        if not sizes:
            continue
        data = config.get("data") or {}
        task = get_task(name)
        available = len(load_split(task, "train", data.get("data_dir"), data.get("revision")))
        if not task.small:  # large tasks hold out validation examples from the training split
            available -= int(data.get("validation_size") or 0)
        if sizes[-1] > available:
            raise UserError(
                f"{sweep.path}: size {sizes[-1]} is larger than the training split of {name} "
                f"({available} examples); drop it from sizes or add {{task: {name}, size: {sizes[-1]}}} "
                f"to exclude"
            )


def check_fingerprints(sweep: Sweep, finished: dict[str, dict], base_content, root: Path | None = None) -> None:
    """A finished run counts only if it is this grid's run: the same fingerprint (the base config and the run's
    arguments), and the same value for every method argument the sweep file leaves to its default (a default that
    changed since, like the adapters' activation, would otherwise mix two grids in one table)."""
    for run in sweep.runs():
        record = finished.get(run.name)
        if not record:
            continue
        if record.get("fingerprint") not in (None, run.fingerprint(base_content)):
            raise UserError(
                f"{sweep.path}: {RESULTS_FILE} in {sweep.out_dir} holds run {run.name} made with other "
                f"settings (the sweep file or its base config changed since); write this sweep to a "
                f"new directory with --out DIR, or delete that run's line to redo it"
            )
        changed = _changed_arguments(run, record, root)
        if changed:
            name, then, now = changed[0]
            raise UserError(
                f"{sweep.path}: {RESULTS_FILE} in {sweep.out_dir} holds run {run.name} made with {name}={then!r}, "
                f"where the method's default is now {now!r}; set {name}: {json.dumps(then)} in "
                f"methods.{run.method.name}.init_args to go on with those runs, or write this sweep to a new "
                f"directory with --out DIR"
            )


def _changed_arguments(run: Run, record: dict, root: Path | None) -> list[tuple[str, object, object]]:
    """(argument, the finished run's value, this run's value) for each method argument that differs; arguments
    the run resolves itself (a None default: the run's seed) are not compared."""
    from compacter_pl.methods.registry import complete_init_args, method_class

    then = record.get("method_init_args")
    if then is None and root is not None and record.get("log_dir"):  # recorded before the sweep kept them
        then = _saved_method_args(root / record["log_dir"] / "config.yaml")
    cls = method_class(run.method.class_path)
    if not isinstance(then, dict) or cls is None:
        return []
    now = complete_init_args(cls, run.method.config(run.config)["init_args"])
    as_json = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731 (tuples as lists)
    return [
        (name, then[name], value)
        for name, value in now.items()
        if value is not None and name in then and as_json(then[name]) != as_json(value)
    ]


def _saved_method_args(path: Path) -> dict | None:
    """The method's init_args in a run's config.yaml (LightningCLI writes every argument, defaults included)."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
        return config["model"]["method"]["init_args"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


# --- running ---------------------------------------------------------------------------------------------------


def run_sweep(sweep: Sweep, shard: tuple[int, int] | None = None, dry_run: bool = False) -> int:
    """Run (or list) the sweep's runs of `shard`; returns the exit code (1 if a run failed)."""
    directory = SweepDir(sweep.out_dir)
    runs = sweep.runs()
    mine = shard_of(runs, shard)
    base_content = sweep.base_content()
    results = read_results(directory.results)
    results.warn()
    finished = results.finished()
    check_fingerprints(sweep, finished, base_content, directory.root)
    configs = resolved_configs(sweep)
    todo = [run for run in mine if run.name not in finished]
    shard_text = f", shard {shard[0]}/{shard[1]}: {plural(len(mine), 'run')}" if shard else ""
    print(
        f"sweep {sweep.path} -> {directory.root}: {plural(len(runs), 'run')} in the grid{shard_text}, "
        f"{len(mine) - len(todo)} finished, {len(todo)} to run",
        flush=True,
    )
    tty = sys.stdout.isatty()
    if dry_run:
        for k, run in enumerate(mine, start=1):
            status = (
                "finished"
                if run.name in finished
                else "unfinished, will restart"
                if directory.run(run).exists()
                else "to run"
            )
            print(f"[{k}/{len(mine)}] {run.describe()} ({status}) -> {directory.run(run)}: {shlex.join(run.args())}")
        if mine:
            print(f"the first run's fit command: {shlex.join(fit_command(sweep, directory, mine[0], tty))}")
            print(run_counts(sweep, mine))
        return 0
    if todo:
        check_sizes(sweep, configs)
    directory.runs.mkdir(parents=True, exist_ok=True)
    write_atomically(directory.root / "sweep.yaml", sweep.path.read_text(), unique=True)
    started = time.monotonic()
    failures = []
    same_in_row, last_reason = 0, None
    for k, run in enumerate(todo, start=1):
        if tty:
            print(f"[{k}/{len(todo)}] {run.describe()}: running (log: {directory.run(run)}/fit.log)", flush=True)
        run_started = time.monotonic()
        outcome = execute(sweep, directory, run, base_content, tty)
        took = time.monotonic() - run_started
        elapsed = time.monotonic() - started
        left = elapsed / k * (len(todo) - k)
        if outcome.status == "failed":
            failures.append((run, outcome.detail))
            what = f"FAILED after {duration(took)}: {outcome.detail}"
        elif outcome.status == "done":
            what = f"done in {duration(took)}, {outcome.detail}"
        else:
            what = f"skipped, {outcome.detail}"
        print(
            f"[{k}/{len(todo)}] {run.describe()}: {what} (elapsed {duration(elapsed)}, ~{duration(left)} left)",
            flush=True,
        )
        reason = _reason(outcome.detail) if outcome.status == "failed" else None
        same_in_row = same_in_row + 1 if reason is not None and reason == last_reason else int(reason is not None)
        last_reason = reason
        if same_in_row >= STOP_AFTER_SAME_FAILURES:
            print(
                f"stopping: {STOP_AFTER_SAME_FAILURES} runs in a row failed with the same error; fix it and "
                f"re-run the same command",
                file=sys.stderr,
            )
            break
    total = duration(time.monotonic() - started)
    if failures:
        print(
            f"{len(failures)} of {plural(len(todo), 'run')} failed in {total}; re-run the same command to retry them:",
            file=sys.stderr,
        )
        for run, detail in failures:
            print(f"  {run.describe()}: {detail}", file=sys.stderr)
        return 1
    print(
        f"sweep finished in {total}: {plural(len(todo), 'run')}; results in {directory.results}; "
        f"tables and figure: python cli.py report {directory.root}",
        flush=True,
    )
    return 0


def run_counts(sweep: Sweep, runs: list[Run]) -> str:
    """The number of runs per method (rows) and task (columns), with each method's number of configurations."""
    tasks = list(dict.fromkeys(run.task for run in runs))
    methods = [name for name in sweep.methods if any(run.method.name == name for run in runs)]
    count = Counter((run.method.name, run.task) for run in runs)
    rows = [["method", "configurations", *tasks, "total"]]
    rows += [
        [
            m,
            str(len({r.config.name for r in runs if r.method.name == m})),
            *(str(count[m, t]) for t in tasks),
            str(sum(count[m, t] for t in tasks)),
        ]
        for m in methods
    ]
    rows.append(["total", "", *(str(sum(count[m, t] for m in methods)) for t in tasks), str(len(runs))])
    return "runs per method and task (configurations x sizes x seeds, after exclude):\n" + "\n".join(text_table(rows))


@dataclass(frozen=True)
class Outcome:
    status: str  # done, skipped or failed
    detail: str  # the test score, why it was skipped, why it failed


def execute(sweep: Sweep, directory: SweepDir, run: Run, base_content, progress_bar: bool) -> Outcome:
    """Fit, test and record one run, holding its lock."""
    lock_path = directory.lock(run)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock(lock, LOCK_WAIT_SECONDS):
            return Outcome("skipped", "another sweep process is running it")
        if run.name in read_results(directory.results).finished():
            return Outcome("skipped", "another sweep process finished it")
        return _fit_test_record(sweep, directory, run, base_content, progress_bar, lock)
    finally:
        os.close(lock)


def _fit_test_record(
    sweep: Sweep, directory: SweepDir, run: Run, base_content, progress_bar: bool, lock: int
) -> Outcome:
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
            f"still linked to data.seed in compacter_pl/cli.py?",
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
    write_row_metrics(run_dir, {f"test/{name}": value for name, value in test_metrics.items()}, fit_summary["steps"])
    checkpoint = _prune_checkpoints(run_dir, checkpoint, sweep.keep_checkpoints)
    record = {
        "run": run.name,
        "task": run.task,
        "method": run.method.name,
        "size": run.size,
        "seed": run.seed,
        "val": fit_summary["best_val"],
        "test": test_metrics,
        "trainable_params": fit_summary["trainable_params"],
        "total_params": fit_summary["total_params"],
        "best_step": fit_summary["best_step"],
        "best_epoch": fit_summary["best_epoch"],
        "steps": fit_summary["steps"],
        "wall_time_s": round(wall_time, 2),
        "log_dir": _relative(run_dir, directory.root),
        "best_checkpoint": _relative(Path(checkpoint), directory.root) if checkpoint else None,
        "class_path": run.method.class_path,
        "init_args": run.method.config(run.config)["init_args"],
        "model": fit_summary.get("model"),  # what the run was, as the module saw it (matches the paper's rows)
        "learning_rate": fit_summary.get("learning_rate"),
        "method_init_args": fit_summary.get("method_init_args"),
        "config": run.config.name or None,
        "search": run.config.values,
        "fingerprint": run.fingerprint(base_content),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    append_result(directory.results, record)
    return Outcome("done", f"test score {test_metrics.get('score', float('nan')):.4f}")


def _lock(fd: int, wait: float) -> bool:
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
                for chunk in iter(lambda: process.stdout.read1(1 << 16), b""):
                    out.write(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            return process.wait()
        finally:
            if process.poll() is None:  # interrupted: take the child down with the sweep
                process.kill()
                process.wait()


def _reason(detail: str) -> str:
    """A failure without its log's path and addresses, to tell whether runs fail alike."""
    return re.sub(r"0x[0-9a-fA-F]+", "0x", detail.split(" (log: ")[0])


def _failure(log: Path) -> str:
    """The one-line reason of a failed subprocess: its `error:` line, else its last line, and where the log is."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    reason = errors[-1] if errors else (lines[-1] if lines else "no output")
    if len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON] + " [...]"
    return f"{reason} (log: {log})"


def _prune_checkpoints(run_dir: Path, best: str, keep: str) -> str | None:
    """What a finished run keeps of its checkpoints (the sweep's keep_checkpoints); returns the best one's
    path if it is kept."""
    checkpoints = Path(best).parent
    if keep == "all" or not checkpoints.is_dir():
        return best
    if keep == "none":
        shutil.rmtree(checkpoints, ignore_errors=True)
        return None
    for path in checkpoints.iterdir():
        if path.name != Path(best).name:
            path.unlink(missing_ok=True)
    return best


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
