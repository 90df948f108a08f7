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
from pathlib import Path

import yaml

from compacter_pl.errors import UserError
from compacter_pl.paper import FILE as PAPER_FILE
from compacter_pl.paper import ScoreRow, ScoreTable, matching_rows, paper
from compacter_pl.sweep.results import RESULTS_FILE, read_results

SCALE = 100.0  # scores in percent, as the paper prints them
FIGURE_FILE, TABLE_FILE, CSV_FILE = "figure4.png", "report.md", "report.csv"
CSV_COLUMNS = ("table", "method", "size", "task", "metric", "mean", "std", "runs", "config")
SELECT_ON = "val/score"  # what chooses a configuration: the mean of the task's metrics on validation
SWEEP_DIR = "_sweep_dir"  # set on each record read: where its run's files are (not in results.jsonl)


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
        records += ({**record, SWEEP_DIR: str(file.parent)} for record in finished.values())
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


def selection_markdown(selections: list[Selection], select_on: str, paper_rates: dict[str, str] | None = None) -> str:
    tasks = task_order(s.task for s in selections)
    chosen = {(s.method, s.size, s.task): s for s in selections}
    paper_rates = paper_rates or {}
    header = ["method", "n", *map(display, tasks), *(["the paper's learning rate"] if paper_rates else [])]
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
                    *([paper_rates.get(method, "—")] if paper_rates else []),
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
        "with the most seeds of their cell compete"
        + (": left out " + "; ".join(left_out) if left_out else "")
        + "."
        + (
            " The paper's learning rate: the one it selected for the method (one per method, over all tasks) in "
            "the table of the paper its runs go beside."
            if paper_rates
            else ""
        ),
        "",
    ]
    return "\n".join(lines)


# --- beside the paper -------------------------------------------------------------------------------------------

MARKS = {"dagger": "†", "asterisk": "*"}


def run_settings(record: dict) -> dict:
    """The model and learning rate a run used: from its results line (written since the sweep records them), else
    from the config.yaml that LightningCLI saved in the run's directory; None for what neither says."""
    settings = {"model": record.get("model"), "learning_rate": record.get("learning_rate")}
    if all(v is not None for v in settings.values()) or not record.get(SWEEP_DIR) or not record.get("log_dir"):
        return settings
    try:
        config = yaml.safe_load((Path(record[SWEEP_DIR]) / record["log_dir"] / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return settings
    model = config.get("model") if isinstance(config, dict) else None
    model = model if isinstance(model, dict) else {}
    return {
        "model": settings["model"] or model.get("model_name_or_path"),
        "learning_rate": settings["learning_rate"] or model.get("learning_rate"),
    }


def paper_matches(record: dict) -> list[tuple[ScoreTable, ScoreRow]]:
    """The paper's rows a run is (`compacter_pl.paper.matching_rows`): by the registered method its class and
    arguments are, every argument it ran with, its model and its task's benchmark. Nothing for a class that is no
    registered method, a run whose model is unknown, or arguments the paper has no row for."""
    import compacter_pl.methods  # noqa: F401  (registers the methods the records name)
    from compacter_pl.methods.registry import complete_init_args, entry_of_config, method_class

    cls = method_class(record.get("class_path") or "")
    if cls is None:
        return []
    arguments = record.get("method_init_args") or record.get("init_args")
    entry = entry_of_config(cls, arguments)
    if entry is None:
        return []
    model = run_settings(record)["model"]
    return matching_rows(entry.key, complete_init_args(cls, arguments), model, benchmark_of(record["task"]))


@dataclass
class PaperSection:
    """Our runs beside one table of the paper: per (method, row) the tasks whose chosen runs are that row."""

    table: ScoreTable
    tasks: dict[tuple[str, int], list[str]]  # (our method, row index) -> tasks
    records: dict[tuple[str, int], list[dict]]


def paper_sections(records: list[dict]) -> list[PaperSection]:
    """The paper's tables our full-data runs match, in the paper's order."""
    sections: dict[int, PaperSection] = {}
    for record in records:
        if record.get("size") is not None:
            continue
        for table, row in paper_matches(record):
            section = sections.setdefault(table.number, PaperSection(table, {}, {}))
            key = (record["method"], table.rows.index(row))
            if record["task"] not in section.tasks.setdefault(key, []):
                section.tasks[key].append(record["task"])
            section.records.setdefault(key, []).append(record)
    return [sections[t.number] for t in paper().scores if t.number in sections]


def paper_learning_rates(records: list[dict]) -> dict[str, str]:
    """Per method, the learning rate the paper selected for the rows its runs match (`3e-4 (Table 4)`), for the
    tables whose rates the paper gives."""
    chosen: dict[str, dict[str, None]] = defaultdict(dict)
    for record in records:
        for table, row in paper_matches(record):
            rates = paper().rates_for(table)
            if rates is not None and row.method in rates.rates:
                chosen[record["method"]][f"{_rate(rates.rates[row.method])} (Table {rates.number})"] = None
    return {method: ", ".join(values) for method, values in chosen.items()}


def _rate(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


def _one_configuration_note(section: PaperSection) -> str:
    """What a section's runs without a search are: the paper's selected configuration re-run, not its search."""
    rates = paper().rates_for(section.table)
    single, at_paper, elsewhere = [], [], []
    for (method, index), records in section.records.items():
        if any(r.get("config") for r in records):
            continue
        single.append(method)
        used = {run_settings(r)["learning_rate"] for r in records}
        theirs = rates.rates.get(section.table.rows[index].method) if rates else None
        if theirs is not None and used == {theirs}:
            at_paper.append(method)
        elif theirs is not None:
            shown = ", ".join("an unknown learning rate" if u is None else _rate(u) for u in sorted(used, key=str))
            elsewhere.append(f"{method} at {shown} (the paper's: {_rate(theirs)})")
    if not single:
        return ""
    search = (
        "Appendix A's search (every learning rate of 3e-5 ... 3e-1, and every bottleneck of 96, 48, 24 for the "
        "adapters, chosen per task on validation)"
    )
    if len(single) == len(section.records) and len(at_paper) == len(single):
        return (
            f"These runs re-run the paper's selected configuration (one run per method and task at the learning "
            f"rate of the paper's Table {rates.number}), not the paper's search: {search}. The differences say how "
            f"close the paper's configuration comes here, not what the search would give."
        )
    parts = [f"{', '.join(single)} ran one configuration each (no search), not {search}"]
    if at_paper:
        parts.append(f"{', '.join(at_paper)} at the learning rate the paper selected (Table {rates.number})")
    if elsewhere:
        parts.append("; ".join(elsewhere))
    return "; ".join(parts) + "."


def beside_paper(full: FullData, records: list[dict]) -> tuple[str, list[dict]]:
    """Per table of the paper our full-data test runs match: our numbers, the paper's row and the difference
    (markdown), and the paper's numbers shown (CSV rows). A run the paper has no row for is in no table."""
    if full.stage != "test":
        return "", []
    parts, rows = [], []
    sections = paper_sections(records)
    for section in sections:
        table = section.table
        tasks = [t for t in full.tasks if benchmark_of(t) == table.benchmark]
        header = [
            "method",
            "",
            *(f"{display(t)} ({'/'.join(full.metrics[t])})" for t in tasks),
            f"{table.benchmark} avg",
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        order = {m: k for k, m in enumerate(full.methods)}
        marks = {}
        for method, index in sorted(section.tasks, key=lambda key: (order.get(key[0], len(order)), key[1])):
            row = table.rows[index]
            matched = section.tasks[(method, index)]
            ours = [full.cells.get((method, t, n)) if t in matched else None for t in tasks for n in full.metrics[t]]
            paper_values = [row.scores.get(t, {}).get(n) for t in tasks for n in full.metrics[t]]
            delta = [None if o is None or v is None else o.mean - v for o, v in zip(ours, paper_values)]
            average = full.averages.get((method, table.benchmark))
            # the paper's average is over all of its tasks: a difference only when ours is over exactly those
            complete = average is not None and average[1] == len(table.tasks) and set(table.tasks) <= set(matched)
            mean_delta = average[0].mean - row.average if complete else None
            shown = [
                None if v is None else _number(v) + (f" {MARKS[row.marks[t]]}" if t in row.marks else "")
                for (t, _), v in zip(((t, n) for t in tasks for n in full.metrics[t]), paper_values)
            ]
            for note in row.notes:
                marks[note] = None
            for name, values, last in (
                ("ours", [o and o.cell() for o in ours], _average_cell(average, len(table.tasks))),
                (f"paper: {row.label()}", shown, _number(row.average)),
                ("difference", [_number(d, "+") for d in delta], _number(mean_delta, "+")),
            ):
                cells = [method if name == "ours" else "", name, *_cells(values, full, tasks), last or ""]
                lines.append("| " + " | ".join(cells) + " |")
            rows += [
                {
                    "table": f"paper {table.name}",
                    "method": method,
                    "size": "full",
                    "task": t,
                    "metric": f"test/{n}",
                    "mean": f"{row.scores[t][n]:.6f}",
                    "runs": 0,
                    "config": row.label(),
                }
                for t in tasks
                for n in full.metrics[t]
                if n in row.scores.get(t, {})
            ]
        note = _one_configuration_note(section)
        parts += [
            f"## Beside the paper's {table.name} ({table.title}): test x 100",
            "",
            *lines,
            "",
            f"The paper's numbers: {table.name} of arXiv 2106.04647v2 (compacter_pl/sweep/{PAPER_FILE}); a run "
            "goes beside the row of its method, model and the arguments the row stands for (n, d', the prompt's "
            "init, whether the output layer trains). Difference: ours − the paper's; for the average only when "
            "ours is over all of the table's tasks." + "".join(f" {n}" for n in marks),
            *(["", note] if note else []),
            "",
        ]
    unmatched = _unmatched(full, records, sections)
    if unmatched:
        parts += [
            "The paper has no row for: "
            + "; ".join(unmatched)
            + ". Its tables are for "
            + " and ".join(sorted({t.model for t in paper().scores}))
            + "; a run goes beside a row only when its method, model and arguments are the row's.",
            "",
        ]
    return "\n".join(parts), rows


def _unmatched(full: FullData, records: list[dict], sections: list[PaperSection]) -> list[str]:
    """Our methods with full-data test numbers that no table of the paper has a row for, with their model."""
    matched = {method for section in sections for method, _ in section.tasks}
    models = defaultdict(dict)
    for record in records:
        if record.get("size") is None and record["method"] not in matched:
            models[record["method"]][str(run_settings(record)["model"] or "model unknown")] = None
    return [f"{m} ({', '.join(models[m])})" for m in full.methods if m in models]


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
        parts.append(selection_markdown(selections, select_on, paper_learning_rates(records)))
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
