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
beside the paper's published numbers (`compacter_pl/tools/paper_results.yaml`, `beside_paper`).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from compacter_pl.errors import UserError
from compacter_pl.files import check_output_file, check_output_folder, write_atomically
from compacter_pl.tools.sweep.report.aggregate import full_data, low_resource
from compacter_pl.tools.sweep.report.beside_paper import beside_paper, paper_learning_rates
from compacter_pl.tools.sweep.report.figure import figure
from compacter_pl.tools.sweep.report.records import check_metric, load_records
from compacter_pl.tools.sweep.report.render import (
    csv_rows,
    csv_text,
    full_data_markdown,
    low_resource_markdown,
    selection_csv_rows,
    selection_markdown,
)
from compacter_pl.tools.sweep.report.select import SELECT_ON, select

FIGURE_FILE, TABLE_FILE, CSV_FILE = "figure4.png", "report.md", "report.csv"

__all__ = ["CSV_FILE", "FIGURE_FILE", "SELECT_ON", "TABLE_FILE", "Written", "write_report"]


class Written(TypedDict, total=False):
    """What `write_report` wrote: the files (the figure only with low-resource runs) and the Markdown's text."""

    figure: Path
    markdown: Path
    csv: Path
    text: str


def _report_or_sweep_folder(folder: Path) -> bool:
    """A folder `report` may write into: a sweep's (it holds results.jsonl) or one that holds only a report."""
    names = {entry.name for entry in folder.iterdir()}
    return "results.jsonl" in names or names <= {TABLE_FILE, CSV_FILE, FIGURE_FILE}


def write_report(
    paths: Sequence[str | Path], out: str | Path | None = None, metric: str = "test/score", select_on: str = SELECT_ON
) -> Written:
    """Write report.md, report.csv and (with low-resource runs) figure4.png; returns what was written. An `out` of
    the user's must be new, empty, a sweep's folder or a report's; no file written is one the report reads."""
    if out:
        check_output_folder(out, "--out", {}, overwrite=True, is_own=_report_or_sweep_folder, kind="a report")
    inputs = [Path(p) / "results.jsonl" if Path(p).is_dir() else Path(p) for p in paths]
    records, methods = load_records(paths)
    if not records:
        raise UserError(f"no finished runs in {', '.join(map(str, paths))}: nothing to report yet")
    records, selections = select(records, select_on)
    check_metric(records, metric)
    out = Path(out) if out else (Path(paths[0]) if Path(paths[0]).is_dir() else Path(paths[0]).parent)
    for name in (TABLE_FILE, CSV_FILE, FIGURE_FILE):
        check_output_file(out / name, "--out", {f"sweep_dirs ({path})": path for path in inputs})
    out.mkdir(parents=True, exist_ok=True)
    low = low_resource(records, methods, metric)
    full = full_data(records, methods, metric.partition("/")[0])
    sources = ", ".join(map(str, paths))
    runs = f"{len(records)} finished run{'' if len(records) == 1 else 's'}"
    parts = [f"# Report of {sources}", "", f"{runs}. Scores x 100.", ""]
    written: Written = {}
    paper: tuple[str, list[dict]] = ("", [])
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
    write_atomically(out / TABLE_FILE, markdown)
    chosen = {(s.method, s.size, s.task): s.config for s in selections}
    rows = [*csv_rows(low, full, chosen), *paper[1], *selection_csv_rows(selections, select_on)]
    write_atomically(out / CSV_FILE, csv_text(rows))
    written.update({"markdown": out / TABLE_FILE, "csv": out / CSV_FILE, "text": markdown})
    return written
