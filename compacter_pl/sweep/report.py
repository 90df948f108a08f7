"""The paper's tables and figure from sweep results: mean and sample standard deviation across seeds.

Runs with a training size (low-resource, the paper's Figure 4) become a table of task x method x size and a
figure with a panel per task and per benchmark average (x: training size, log scale; a line per method with a
band of one standard deviation). Full-data runs (size null) become a Table-1-style table: methods as rows, tasks
as columns, the trainable share and the benchmark average. Scores are shown x 100, as in the paper.

Averages, as the paper computes them: for each seed, the mean over the benchmark's tasks (Table 1: over every
metric shown, so MRPC's accuracy and F1 count once each), then mean and standard deviation over the seeds that
every averaged task has. An average over only some of a benchmark's tasks says how many (`GLUE avg (1/8 tasks)`:
a sweep of RTE alone); `GLUE avg` is over all of them.

Selection, as the paper does it: a method with search axes ran several configurations; per task, method and size
the report keeps the configuration with the best mean validation score over seeds (`select`), and every table
shows that configuration's numbers. Only validation can select (`check_selection`). Full-data tables also go
beside the paper's published numbers (`paper_results.yaml` in this package).
"""

import csv
import io
import json
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml

from compacter_pl.errors import UserError
from compacter_pl.sweep.results import RESULTS_FILE, read_results

SCALE = 100.0  # scores in percent, as the paper prints them
FIGURE_FILE, TABLE_FILE, CSV_FILE = "figure4.png", "report.md", "report.csv"
CSV_COLUMNS = ("table", "method", "size", "task", "metric", "mean", "std", "runs", "config")
SELECT_ON = "val/score"  # what chooses a configuration: the mean of the task's metrics on validation
PAPER_FILE = "paper_results.yaml"


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof = 1; None for a single value) of `n` values."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values) -> "Stat":
        values = list(values)
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))

    def cell(self) -> str:
        return f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"


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


# --- reading ---------------------------------------------------------------------------------------------------


def load_records(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """The results of sweep directories (or results files), and the methods in the order their sweep files
    declare them (else the order they first appear). Corrupt lines are reported on stderr and skipped."""
    records, methods = [], []
    for path in map(Path, paths):
        file = path / RESULTS_FILE if path.is_dir() else path
        if not file.is_file():
            raise UserError(
                f"{path} has no {RESULTS_FILE}; run `python cli.py sweep --config SWEEP.yaml` first "
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
        records += finished.values()
        methods += _declared_methods(file.parent / "sweep.yaml")
    methods += [r["method"] for r in records]
    return records, list(dict.fromkeys(m for m in methods if any(r["method"] == m for r in records)))


def _declared_methods(sweep_file: Path) -> list[str]:
    try:
        return list((yaml.safe_load(sweep_file.read_text()) or {}).get("methods") or {})
    except (OSError, yaml.YAMLError, AttributeError):
        return []


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


# --- selection -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The configuration chosen for a task, method and size, its validation Stat, how many were compared, and
    those left out for having fewer seeds than the most any configuration of the cell has: (name, seeds)."""

    task: str
    method: str
    size: int | None
    config: str
    val: Stat
    compared: int
    left_out: tuple[tuple[str, int], ...]


def check_selection(select_on: str) -> None:
    """Validation selects, never test: a configuration chosen on test scores would report an optimistic score."""
    stage, _, name = select_on.partition("/")
    if stage != "val" or not name:
        raise UserError(
            f"--select_on must be val/<name> (e.g. val/score), got {select_on!r}: configurations are "
            f"chosen on validation, as in the paper; one chosen on its test score would report an "
            f"optimistic test score"
        )


def select(records: list[dict], select_on: str = SELECT_ON) -> tuple[list[dict], list[Selection]]:
    """Per task, method and size: the records of the configuration with the best mean `select_on` over its seeds,
    and a Selection where there was a search. Only configurations with the most seeds of the cell compete (one
    missing a seed, unfinished or failed, is left out rather than compared on other seeds); a tie goes to the
    smaller values, axis by axis in the order of the sweep file's search."""
    check_selection(select_on)
    cells = defaultdict(lambda: defaultdict(dict))  # (task, method, size) -> config -> {seed: record}
    for record in records:
        cells[(record["task"], record["method"], record.get("size"))][record.get("config") or ""][record["seed"]] = (
            record
        )
    kept, selections = [], []
    for (task, method, size), configs in cells.items():
        if list(configs) == [""]:  # no search: nothing to choose
            kept += configs[""].values()
            continue
        scores = {
            c: [v for v in (metric_value(r, select_on) for r in seeds.values()) if v is not None]
            for c, seeds in configs.items()
        }
        most = max(map(len, scores.values()))
        if not most:
            raise UserError(f"no result of {task} {method} has {select_on} to choose a configuration on")
        candidates = [c for c, values in scores.items() if len(values) == most]
        best = min(candidates, key=lambda c: (-_finite(statistics.fmean(scores[c])), _order(configs[c])))
        kept += configs[best].values()
        selections.append(
            Selection(
                task,
                method,
                size,
                best,
                Stat.of(scores[best]),
                len(candidates),
                tuple((c, len(v)) for c, v in scores.items() if len(v) < most),
            )
        )
    return kept, selections


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value  # a diverged configuration loses


def _order(by_seed: dict[int, dict]) -> tuple:
    """A configuration's values as a sort key: numbers by value, anything else by its JSON text."""
    values = next(iter(by_seed.values())).get("search") or {}
    return tuple(
        (0, float(v), "")
        if isinstance(v, (int, float)) and not isinstance(v, bool)
        else (1, 0.0, json.dumps(v, sort_keys=True))
        for v in values.values()
    )


# --- aggregation -----------------------------------------------------------------------------------------------


def seed_values(records: list[dict], metric: str) -> dict[tuple, dict[int, float]]:
    """(method, size, task) -> {seed: value of `metric`}."""
    cells = defaultdict(dict)
    for record in records:
        value = metric_value(record, metric)
        if value is not None:
            cells[(record["method"], record.get("size"), record["task"])][record["seed"]] = value
    return cells


def average(per_task: dict[str, dict[int, float]]) -> Stat | None:
    """Per seed the mean over the tasks, then the Stat over the seeds every task has (None if there is none)."""
    seeds = set.intersection(*(set(values) for values in per_task.values())) if per_task else set()
    if not seeds:
        return None
    return Stat.of(statistics.fmean(values[seed] for values in per_task.values()) for seed in sorted(seeds))


@dataclass
class LowResource:
    """Figure 4's numbers: Stat per (method, size, task) and per (method, size, benchmark average)."""

    metric: str
    methods: list[str]
    sizes: list[int]
    tasks: list[str]
    cells: dict[tuple, Stat]
    averages: dict[tuple, tuple[Stat, int]]  # (method, size, benchmark) -> (Stat, number of tasks averaged)
    benchmarks: dict[str, list[str]]  # benchmark -> its tasks in the results


def low_resource(records: list[dict], methods: list[str], metric: str) -> LowResource | None:
    sized = [r for r in records if r.get("size") is not None]
    if not sized:
        return None
    values = seed_values(sized, metric)
    tasks = task_order(task for _, _, task in values)
    sizes = sorted({size for _, size, _ in values})
    benchmarks = defaultdict(list)
    for task in tasks:
        benchmarks[benchmark_of(task)].append(task)
    cells = {key: Stat.of(seeds.values()) for key, seeds in values.items()}
    averages = {}
    for method in methods:
        for size in sizes:
            for benchmark, members in benchmarks.items():
                per_task = {t: values[(method, size, t)] for t in members if (method, size, t) in values}
                stat = average(per_task)
                if stat is not None:
                    averages[(method, size, benchmark)] = (stat, len(per_task))
    used = [m for m in methods if any(key[0] == m for key in cells)]
    return LowResource(metric, used, sizes, tasks, cells, averages, dict(benchmarks))


@dataclass
class FullData:
    """Table 1's numbers: per (method, task) a Stat per metric, the trainable share, the benchmark averages."""

    stage: str
    methods: list[str]
    tasks: list[str]
    metrics: dict[str, list[str]]  # task -> its metrics, in order
    cells: dict[tuple, Stat]  # (method, task, metric) -> Stat
    trainable: dict[str, tuple[list[int], float]]  # method -> (its trainable parameter counts, mean percent)
    averages: dict[tuple, tuple[Stat, int]]  # (method, benchmark) -> (Stat, number of tasks averaged)
    benchmarks: dict[str, list[str]]


def full_data(records: list[dict], methods: list[str], stage: str) -> FullData | None:
    full = [r for r in records if r.get("size") is None]
    if not full:
        return None
    tasks = task_order(r["task"] for r in full)
    metrics = {t: metric_order(t, {n for r in full if r["task"] == t for n in r.get(stage, {})}) for t in tasks}
    per_seed = defaultdict(dict)  # (method, task, metric) -> {seed: value}
    for record in full:
        for name in metrics[record["task"]]:
            value = metric_value(record, f"{stage}/{name}")
            if value is not None:
                per_seed[(record["method"], record["task"], name)][record["seed"]] = value
    cells = {key: Stat.of(seeds.values()) for key, seeds in per_seed.items()}
    trainable = {}
    for method in methods:
        counted = [r for r in full if r["method"] == method and r.get("total_params")]
        if counted:  # configurations chosen per task may differ in size (e.g. the adapters' bottleneck)
            trainable[method] = (
                sorted({r["trainable_params"] for r in counted}),
                statistics.fmean(SCALE * r["trainable_params"] / r["total_params"] for r in counted),
            )
    benchmarks = defaultdict(list)
    for task in tasks:
        benchmarks[benchmark_of(task)].append(task)
    averages = {}
    for method in methods:
        for benchmark, members in benchmarks.items():
            # every metric shown counts once, as in the paper's Table 1 average
            columns = {
                (t, n): per_seed[(method, t, n)] for t in members for n in metrics[t] if (method, t, n) in per_seed
            }
            stat = average(columns)
            if stat is not None:
                averages[(method, benchmark)] = (stat, len({t for t, _ in columns}))
    used = [m for m in methods if any(key[0] == m for key in cells)]
    return FullData(stage, used, tasks, metrics, cells, trainable, averages, dict(benchmarks))


# --- writing ---------------------------------------------------------------------------------------------------


def _average_cell(entry: tuple[Stat, int] | None, of: int) -> str:
    if entry is None:
        return "—"
    stat, count = entry
    return stat.cell() + (f" ({count}/{of} tasks)" if count < of else "")


def low_resource_markdown(table: LowResource) -> str:
    averages = [average_label(b, members) for b, members in table.benchmarks.items()]
    header = ["method", "n", "seeds", *map(display, table.tasks), *averages]
    lines = [
        f"## Low-resource (the paper's Figure 4): {table.metric} x 100 by training size",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method in table.methods:
        for size in table.sizes:
            stats = [table.cells.get((method, size, task)) for task in table.tasks]
            if not any(stats):
                continue
            counts = sorted({s.n for s in stats if s})
            seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            row = [
                method,
                str(size),
                seeds,
                *(s.cell() if s else "—" for s in stats),
                *(
                    _average_cell(table.averages.get((method, size, b)), len(members))
                    for b, members in table.benchmarks.items()
                ),
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Each cell: mean ± sample standard deviation (ddof = 1) across seeds; no ± for a single seed. "
        "Average: per seed the mean over the tasks, then mean ± std over the seeds every task has.",
        "",
    ]
    return "\n".join(lines)


def full_data_markdown(table: FullData) -> str:
    columns = [f"{display(t)} ({'/'.join(table.metrics[t])})" for t in table.tasks]
    header = ["method", "trainable", "%", *columns, *(average_label(b, m) for b, m in table.benchmarks.items())]
    lines = [
        f"## Full data (the paper's Table 1): {table.stage} metrics x 100",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method in table.methods:
        counts, share = table.trainable.get(method, (None, None))
        count = "—" if not counts else "–".join(f"{c:,}" for c in sorted({counts[0], counts[-1]}))
        row = [method, count, f"{share:.3g}" if share is not None else "—"]
        for task in table.tasks:
            stats = [table.cells.get((method, task, name)) for name in table.metrics[task]]
            row.append(" / ".join(s.cell() if s else "—" for s in stats) if any(stats) else "—")
        row += [_average_cell(table.averages.get((method, b)), len(members)) for b, members in table.benchmarks.items()]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Each cell: mean ± sample standard deviation (ddof = 1) across seeds; no ± for a single seed. "
        "Average: per seed the mean of every metric shown (each counts once, as in the paper), then "
        "mean ± std over the seeds every task has. %: trainable share of all the model's parameters.",
        "",
    ]
    return "\n".join(lines)


def selection_markdown(selections: list[Selection], select_on: str) -> str:
    tasks = task_order(s.task for s in selections)
    chosen = {(s.method, s.size, s.task): s for s in selections}
    header = ["method", "n", *map(display, tasks)]
    lines = [
        f"## Configurations chosen on validation: the best mean {select_on} x 100 over seeds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method, size in dict.fromkeys((s.method, s.size) for s in selections):
        cells = [chosen.get((method, size, task)) for task in tasks]
        lines.append(
            "| "
            + " | ".join(
                [
                    method,
                    "full" if size is None else str(size),
                    *(f"{c.config}: {c.val.cell()} (best of {c.compared})" if c else "—" for c in cells),
                ]
            )
            + " |"
        )
    left_out = [
        f"{s.task} {s.method} n={s.size or 'full'}: "
        + ", ".join(f"{c} ({n} of {s.val.n} seeds)" for c, n in s.left_out)
        for s in selections
        if s.left_out
    ]
    lines += [
        "",
        "Each cell: the chosen configuration, its mean ± std over seeds and how many configurations were "
        "compared; the other tables show its numbers. A tie goes to the smaller values. Only configurations "
        "with the most seeds of their cell compete" + (": left out " + "; ".join(left_out) if left_out else "") + ".",
        "",
    ]
    return "\n".join(lines)


def paper_tables() -> list[dict]:
    """The paper's published numbers shipped with the package (paper_results.yaml)."""
    return yaml.safe_load(files("compacter_pl.sweep").joinpath(PAPER_FILE).read_text())["tables"]


def paper_row(table: dict, record: dict) -> dict | None:
    """The row of a paper table for the method of `record`: its class name and the init_args the row names."""
    name = str(record.get("class_path") or "").rpartition(".")[2]
    init_args = record.get("init_args") or {}
    return next(
        (
            row
            for row in table["rows"]
            if row["method"] == name and all(init_args.get(k) == v for k, v in (row.get("init_args") or {}).items())
        ),
        None,
    )


def beside_paper(full: FullData, records: list[dict]) -> tuple[str, list[dict]]:
    """Per method the paper has: our full-data test numbers, the paper's and the difference (markdown), and the
    paper's numbers shown (CSV rows). Cells the paper file lacks stay empty."""
    first = {}
    for record in records:
        first.setdefault(record["method"], record)
    parts, rows = [], []
    for table in paper_tables() if full.stage == "test" else []:
        benchmark = table["benchmark"]
        tasks = [t for t in full.tasks if benchmark_of(t) == benchmark]
        header = ["method", "", *(f"{display(t)} ({'/'.join(full.metrics[t])})" for t in tasks), f"{benchmark} avg"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, row in ((m, paper_row(table, first[m])) for m in (full.methods if tasks else [])):
            if row is None:
                continue
            scores = row.get("scores") or {}
            ours = [full.cells.get((method, t, n)) for t in tasks for n in full.metrics[t]]
            paper = [scores.get(t, {}).get(n) for t in tasks for n in full.metrics[t]]
            delta = [None if o is None or v is None else o.mean - v for o, v in zip(ours, paper)]
            average = full.averages.get((method, benchmark))
            # the paper's average is over all of its tasks: a difference only when ours is over them too
            complete = average and average[1] == len(tasks) and set(table["tasks"]) <= set(tasks)
            mean_delta = average[0].mean - row["average"] if complete and row.get("average") else None
            label = row["name"] + (f" ({row['note']})" if row.get("note") else "")
            for name, values, last in (
                ("ours", [o and o.cell() for o in ours], _average_cell(average, len(table["tasks"]))),
                (f"paper: {label}", [_number(v) for v in paper], _number(row.get("average"))),
                ("difference", [_number(d, "+") for d in delta], _number(mean_delta, "+")),
            ):
                cells = [method if name == "ours" else "", name, *_cells(values, full, tasks), last or ""]
                lines.append("| " + " | ".join(cells) + " |")
            rows += [
                {
                    "table": f"paper {table['table']}",
                    "method": method,
                    "size": "full",
                    "task": t,
                    "metric": f"test/{n}",
                    "mean": f"{scores[t][n]:.6f}",
                    "runs": 0,
                }
                for t in tasks
                for n in full.metrics[t]
                if scores.get(t, {}).get(n) is not None
            ]
        if len(lines) > 2:
            parts += [
                f"## Beside the paper: {benchmark} test x 100, ours and the paper's {table['table']}",
                "",
                *lines,
                "",
                f"The paper's numbers: compacter_pl/sweep/{PAPER_FILE}, which names the source of each; an "
                "empty cell is one it does not have (—: a metric it lacks). Difference: ours − the paper's; "
                "for the average only when ours is over all of the paper's tasks.",
                "",
            ]
    return "\n".join(parts), rows


def _number(value: float | None, sign: str = "") -> str | None:
    return None if value is None else f"{value:{sign}.2f}"


def _cells(values: list[str | None], full: FullData, tasks: list[str]) -> list[str]:
    """A table cell per task from its metrics' values: empty if it has none, — for each missing one."""
    cells, values = [], iter(values)
    for task in tasks:
        own = [next(values) for _ in full.metrics[task]]
        cells.append("" if all(v is None for v in own) else " / ".join(v or "—" for v in own))
    return cells


def csv_rows(low: LowResource | None, full: FullData | None, chosen: dict | None = None) -> list[dict]:
    """Every number of the tables; `chosen` gives (method, size, task) -> the configuration shown."""
    rows, chosen = [], chosen or {}

    def add(table, method, size, task, metric, stat: Stat) -> None:
        rows.append(
            {
                "table": table,
                "method": method,
                "size": "full" if size is None else size,
                "task": task,
                "metric": metric,
                "mean": f"{stat.mean:.6f}",
                "std": "" if stat.std is None else f"{stat.std:.6f}",
                "runs": stat.n,
                "config": chosen.get((method, size, task), ""),
            }
        )

    if low:
        for (method, size, task), stat in sorted(
            low.cells.items(),
            key=lambda kv: (
                low.methods.index(kv[0][0]) if kv[0][0] in low.methods else 0,
                kv[0][1],
                low.tasks.index(kv[0][2]),
            ),
        ):
            add("figure4", method, size, task, low.metric, stat)
        for (method, size, benchmark), (stat, _) in low.averages.items():
            add("figure4", method, size, average_label(benchmark, low.benchmarks[benchmark]), low.metric, stat)
    if full:
        for method in full.methods:
            if method in full.trainable:
                counts, share = full.trainable[method]
                add("table1", method, None, "", "trainable_params", Stat.of(counts))
                add("table1", method, None, "", "trainable_percent", Stat(share, None, 1))
            for task in full.tasks:
                for name in full.metrics[task]:
                    if (method, task, name) in full.cells:
                        add("table1", method, None, task, f"{full.stage}/{name}", full.cells[(method, task, name)])
            for benchmark, members in full.benchmarks.items():
                if (method, benchmark) in full.averages:
                    add(
                        "table1",
                        method,
                        None,
                        average_label(benchmark, members),
                        f"{full.stage}/*",
                        full.averages[(method, benchmark)][0],
                    )
    return rows


def figure(table: LowResource, path: Path) -> None:
    """A panel per task and per benchmark average; a line per method with a band of one standard deviation.
    An average over only some of the benchmark's tasks (a size some task lacks) has a hollow marker."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.lines import Line2D

    panels = [
        (
            display(t),
            {
                (m, n): (table.cells[(m, n, t)], True)
                for m in table.methods
                for n in table.sizes
                if (m, n, t) in table.cells
            },
        )
        for t in table.tasks
    ]
    for benchmark, members in table.benchmarks.items():
        stats = {
            (m, n): (table.averages[(m, n, benchmark)][0], table.averages[(m, n, benchmark)][1] == len(members))
            for m in table.methods
            for n in table.sizes
            if (m, n, benchmark) in table.averages
        }
        partial = not all(complete for _, complete in stats.values())
        panels.append((average_label(benchmark, members) + (" (hollow: some tasks)" if partial else ""), stats))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colors = {method: f"C{i}" for i, method in enumerate(table.methods)}
    for ax, (title, stats) in zip(axes, panels):
        for method, color in colors.items():
            points = sorted((n, s, complete) for (m, n), (s, complete) in stats.items() if m == method)
            if not points:
                continue
            x = [n for n, _, _ in points]
            mean = [s.mean for _, s, _ in points]
            std = [s.std or 0.0 for _, s, _ in points]
            ax.plot(x, mean, color=color)
            ax.fill_between(
                x,
                [m - d for m, d in zip(mean, std)],
                [m + d for m, d in zip(mean, std)],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
            for n, s, complete in points:
                ax.plot([n], [s.mean], marker="o", color=color, markerfacecolor=color if complete else "white")
        ax.set_xscale("log")
        ax.set_xticks(table.sizes, [str(n) for n in table.sizes])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_xlabel("training examples")
        ax.set_ylabel(f"{table.metric} x 100")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=color, marker="o", label=method) for method, color in colors.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)))
    fig.savefig(path, dpi=120)


def write_report(
    paths: list[str | Path], out: str | Path | None = None, metric: str = "test/score", select_on: str = SELECT_ON
) -> dict:
    """Write report.md, report.csv and (with low-resource runs) figure4.png; returns what was written."""
    records, methods = load_records(paths)
    if not records:
        raise UserError(f"no finished runs in {', '.join(map(str, paths))}: nothing to report yet")
    records, selections = select(records, select_on)
    check_metric(records, metric)
    out = Path(out) if out else (Path(paths[0]) if Path(paths[0]).is_dir() else Path(paths[0]).parent)
    out.mkdir(parents=True, exist_ok=True)
    low = low_resource(records, methods, metric)
    full = full_data(records, methods, metric.partition("/")[0])
    sources = ", ".join(map(str, paths))
    runs = f"{len(records)} finished run{'' if len(records) == 1 else 's'}"
    parts = [f"# Report of {sources}", "", f"{runs}. Scores x 100.", ""]
    written, paper = {}, ("", [])
    if selections:
        parts.append(selection_markdown(selections, select_on))
    if low:
        figure(low, out / FIGURE_FILE)
        written["figure"] = out / FIGURE_FILE
        parts += [low_resource_markdown(low), f"![Figure 4]({FIGURE_FILE})", ""]
    if full:
        paper = beside_paper(full, records)
        parts += [full_data_markdown(full), paper[0]]
    markdown = "\n".join(parts)
    (out / TABLE_FILE).write_text(markdown)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    chosen = {(s.method, s.size, s.task): s.config for s in selections}
    writer.writerows(
        [
            *csv_rows(low, full, chosen),
            *paper[1],
            *(
                {
                    "table": "selection",
                    "method": s.method,
                    "size": "full" if s.size is None else s.size,
                    "task": s.task,
                    "metric": select_on,
                    "mean": f"{s.val.mean:.6f}",
                    "std": "" if s.val.std is None else f"{s.val.std:.6f}",
                    "runs": s.val.n,
                    "config": s.config,
                }
                for s in selections
            ),
        ]
    )
    (out / CSV_FILE).write_text(buffer.getvalue())
    written.update({"markdown": out / TABLE_FILE, "csv": out / CSV_FILE, "text": markdown})
    return written
