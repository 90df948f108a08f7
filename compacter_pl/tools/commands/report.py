"""The `report SWEEP_DIR [...]` command: the paper's tables and figure from a sweep's results.jsonl."""

from compacter_pl.config import run_command_line
from compacter_pl.tools.sweep.report import write_report


def report(
    sweep_dirs: list[str], metric: str = "test/score", out: str | None = None, select_on: str = "val/score"
) -> None:
    """The paper's tables and figure from sweeps' results.jsonl. Where a method searched configurations, each task,
    method and size shows the configuration with the best mean validation score over seeds, and a table says which
    won. Low-resource runs give a table of mean +- std per task, method and training size, with the benchmark
    average, and figure4.png (a panel per task and for the average, a line per method with a band of one standard
    deviation). Full-data runs give a Table-1-style table (methods as rows, tasks as columns, trainable share,
    average) and, for the methods the paper has, ours beside the paper's numbers with the difference. Writes
    report.md, report.csv and figure4.png.

    Args:
        sweep_dirs: Sweep directories (or results.jsonl files); several are reported together.
        metric: What the low-resource table and figure show: test/<metric> or val/<metric> (test/score is the mean
            of the task's metrics); the full-data table shows every metric of this stage.
        out: Where to write the report (default: the first sweep directory).
        select_on: The validation metric that chooses a configuration: val/<metric> (val/score is the mean of the
            task's metrics); a test metric is refused.
    """
    written = write_report(sweep_dirs, out, metric, select_on)
    print(written["text"])
    print(f"wrote {', '.join(str(written[k]) for k in ('markdown', 'csv', 'figure') if k in written)}")


def main(argv: list[str]) -> None:
    run_command_line(report, argv, "report", positional=("sweep_dirs",))
