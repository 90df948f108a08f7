"""`python cli.py report SWEEP_DIR [...]`: the paper's tables and figure from a sweep's results.jsonl.

Low-resource runs give a table of mean +- std per task, method and training size, with the benchmark average,
and figure4.png (a panel per task and for the average, a line per method with a band of one standard deviation).
Full-data runs give a Table-1-style table (methods as rows, tasks as columns, trainable share, average).
Writes report.md, report.csv and figure4.png into the (first) sweep directory, or into --out.
"""

import argparse

from compacter_pl.sweep.report import write_report


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="cli.py report", description=__doc__.split(": ", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR",
                        help="sweep directories (or results.jsonl files); several are reported together")
    parser.add_argument("--metric", default="test/score",
                        help="what the low-resource table and figure show: test/<metric> or val/<metric> "
                             "(default test/score, the mean of the task's metrics); the full-data table shows "
                             "every metric of this stage")
    parser.add_argument("--out", help="where to write the report (default: the first sweep directory)")
    args = parser.parse_args(argv)
    written = write_report(args.sweeps, args.out, args.metric)
    print(written["text"])
    files = [str(written[k]) for k in ("markdown", "csv", "figure") if k in written]
    print(f"wrote {', '.join(files)}")
