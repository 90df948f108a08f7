"""Reading sweep results for the report: the finished runs, their metrics x 100, and the names and order of tasks,
metrics and benchmark averages that every table, the CSV and the figure share."""

import sys
from collections.abc import Sequence
from pathlib import Path

from compacter_pl.config.program import program
from compacter_pl.errors import UserError
from compacter_pl.tools.sweep.report.methods import identify_methods
from compacter_pl.tools.sweep.results import RESULTS_FILE, read_results, with_run_settings

SCALE = 100.0  # scores in percent, as the paper prints them


def display(task: str) -> str:
    from compacter_pl.tasks import TASKS

    return TASKS[task].display_name if task in TASKS else task


def benchmark_of(task: str) -> str:
    from compacter_pl.tasks import TASKS

    return TASKS[task].benchmark if task in TASKS else "other"


def average_label(benchmark: str, tasks: list[str]) -> str:
    """The name of a benchmark's average over `tasks` (tables, CSV, figure): `GLUE avg` over all of the
    benchmark's tasks, else how many of them it averages (`GLUE avg (1/8 tasks)`), so that an average over RTE
    alone never reads as GLUE's."""
    from compacter_pl.tasks import TASKS

    total = sum(task.benchmark == benchmark for task in TASKS.values())
    return f"{benchmark} avg" + (f" ({len(tasks)}/{total} tasks)" if 0 < len(tasks) < total else "")


def task_order(tasks) -> list[str]:
    """The paper's order (the task registry's), unknown tasks last."""
    from compacter_pl.tasks import TASKS

    known = list(TASKS)
    return sorted(set(tasks), key=lambda t: (known.index(t) if t in known else len(known), t))


def metric_order(task: str, names) -> list[str]:
    """A task's metrics in its own order (MRPC: accuracy then F1), without the score (their mean)."""
    from compacter_pl.tasks import TASKS

    declared = list(TASKS[task].metrics) if task in TASKS else []
    return sorted(
        (n for n in set(names) if n != "score"),
        key=lambda n: (declared.index(n) if n in declared else len(declared), n),
    )


def load_records(paths: Sequence[str | Path]) -> tuple[list[dict], list[str]]:
    """The results of sweep directories (or results files), each run's method named by its registry key
    (`methods.identify_methods`), and the methods in the order their sweep files declare them (else the order they
    first appear). Corrupt lines are reported on stderr and skipped."""
    records: list[dict] = []
    sweep_files: list[Path] = []
    for path in map(Path, paths):
        file = path / RESULTS_FILE if path.is_dir() else path
        if not file.is_file():
            raise UserError(
                f"{path} has no {RESULTS_FILE}; run `{program()} sweep --config SWEEP.yaml` first "
                f"(or pass the sweep directory it wrote)"
            )
        results = read_results(file)
        results.warn()
        finished = results.finished()
        if len(finished) < len(results.records):
            print(
                f"warning: {file} holds {len(results.records) - len(finished)} repeated run(s); the report uses "
                f"the last line of each run",
                file=sys.stderr,
            )
        records += (with_run_settings(record, file.parent) for record in finished.values())
        sweep_files.append(file.parent / "sweep.yaml")
    return identify_methods(records, sweep_files)


def metric_value(record: dict, metric: str) -> float | None:
    stage, _, name = metric.partition("/")
    value = (record.get(stage) or {}).get(name)
    return None if value is None else float(value) * SCALE


def check_metric(records: list[dict], metric: str) -> None:
    stage, _, name = metric.partition("/")
    if stage not in ("val", "test") or not name:
        raise UserError(f"--metric must be val/<name> or test/<name> (e.g. test/score), got {metric!r}")
    if not any(metric_value(r, metric) is not None for r in records):
        available = sorted({f"{s}/{n}" for r in records for s in ("val", "test") for n in r.get(s, {})})
        raise UserError(f"no result has {metric}; the results have {', '.join(available)}")
