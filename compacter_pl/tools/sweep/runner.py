"""Runs a sweep: each run is `cli.py fit` then `cli.py test` of its best checkpoint, each in a subprocess.

A run lives in `<sweep>/runs/<task>-<method>[-<configuration>]-n<size>-s<seed>/`: its TensorBoard events, the
config LightningCLI resolved (`config.yaml`), its checkpoints, `fit.log` and `test.log` (everything the subprocesses
printed), `command.txt` (how to redo it by hand). A run is finished once its line is in `<sweep>/results.jsonl`;
re-running the sweep skips finished runs and restarts any other run from scratch (its directory is wiped first), so a
killed sweep resumes where it stopped. While a run executes, its lock in `<sweep>/.locks/` is held by the
sweep and by its subprocess (a second sweep on the same directory skips it), and the subprocess is killed with
its sweep (Linux), so a killed sweep leaves nothing running.

This module is the loop and the record of a finished run; the checks before anything runs are in `preflight`, the
subprocesses, their logs and locks in `processes`.
"""

import re
import shlex
import shutil
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from compacter_pl.config.program import program
from compacter_pl.files import write_atomically
from compacter_pl.text_table import text_table
from compacter_pl.tools.sweep.grid import Run, Sweep, shard_of
from compacter_pl.tools.sweep.preflight import check_fingerprints, check_sizes, resolved_configs
from compacter_pl.tools.sweep.processes import Outcome, SweepDir, Tested, fit_and_test, fit_command, run_lock
from compacter_pl.tools.sweep.results import append_result, read_results
from compacter_pl.training.tensorboard import write_row_metrics

__all__ = ["duration", "resolved_configs", "run_sweep"]

STOP_AFTER_SAME_FAILURES = 3  # consecutive runs failing alike: a mistake every run will repeat


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
        f"tables and figure: {program()} report {directory.root}",
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


def execute(sweep: Sweep, directory: SweepDir, run: Run, base_content, progress_bar: bool) -> Outcome:
    """Fit, test and record one run, holding its lock."""
    with run_lock(directory, run) as lock:
        if lock is None:
            return Outcome("skipped", "another sweep process is running it")
        if run.name in read_results(directory.results).finished():
            return Outcome("skipped", "another sweep process finished it")
        tested = fit_and_test(sweep, directory, run, progress_bar, lock)
        if isinstance(tested, Outcome):
            return tested
        return record(sweep, directory, run, base_content, tested)


def record(sweep: Sweep, directory: SweepDir, run: Run, base_content, tested: Tested) -> Outcome:
    """A tested run's scores in its TensorBoard row, its checkpoints pruned, its line in results.jsonl."""
    run_dir, fit_summary, test_metrics = directory.run(run), tested.fit_summary, tested.test_metrics
    write_row_metrics(run_dir, {f"test/{name}": value for name, value in test_metrics.items()}, fit_summary["steps"])
    checkpoint = _prune_checkpoints(run_dir, tested.checkpoint, sweep.keep_checkpoints)
    line = {
        "run": run.name,
        "task": run.task,
        "method": run.method.key,  # a variant's arguments are in init_args
        "size": run.size,
        "seed": run.seed,
        "val": fit_summary["best_val"],
        "test": test_metrics,
        "trainable_params": fit_summary["trainable_params"],
        "total_params": fit_summary["total_params"],
        "best_step": fit_summary["best_step"],
        "best_epoch": fit_summary["best_epoch"],
        "steps": fit_summary["steps"],
        "wall_time_s": round(tested.wall_time, 2),
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
    append_result(directory.results, line)
    return Outcome("done", f"test score {test_metrics.get('score', float('nan')):.4f}")


def _reason(detail: str) -> str:
    """A failure without its log's path and addresses, to tell whether runs fail alike."""
    return re.sub(r"0x[0-9a-fA-F]+", "0x", detail.split(" (log: ")[0])


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
