"""The report's Markdown tables (selection, low-resource, full data) and its CSV rows."""

import csv
import io

from compacter_pl.tools.sweep.report.aggregate import FullData, LowResource, Stat
from compacter_pl.tools.sweep.report.records import average_label, display, task_order
from compacter_pl.tools.sweep.report.select import Selection

CSV_COLUMNS = ("table", "method", "size", "task", "metric", "mean", "std", "runs", "config")


def average_cell(entry: tuple[Stat, int] | None, of: int) -> str:
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
                    average_cell(table.averages.get((method, size, b)), len(members))
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
        row += [average_cell(table.averages.get((method, b)), len(members)) for b, members in table.benchmarks.items()]
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


def selection_csv_rows(selections: list[Selection], select_on: str) -> list[dict]:
    """The validation Stat of each chosen configuration."""
    return [
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
    ]


def csv_text(rows: list[dict]) -> str:
    """The CSV file: a header of `CSV_COLUMNS`, a line per row (a column a row lacks is empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
