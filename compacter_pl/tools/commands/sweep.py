"""The `sweep --config SWEEP.yaml` command: run a grid of fits and tests (tasks x methods x sizes x seeds)."""

import sys
from pathlib import Path

from compacter_pl.config import run_command_line
from compacter_pl.files import check_output_folder
from compacter_pl.tools.sweep.grid import parse_shard
from compacter_pl.tools.sweep.runner import run_sweep
from compacter_pl.tools.sweep.sweep_file import load_sweep

SWEEP_MARKS = {"results.jsonl", "runs", ".locks", "sweep.yaml"}  # what a folder a sweep wrote holds


def _sweep_folder(folder: Path) -> bool:
    """A folder a sweep wrote (its results, runs, locks or copy of the sweep file), which a sweep resumes into."""
    return any((folder / name).exists() for name in SWEEP_MARKS)


def sweep(config: str, out: str | None = None, shard: str | None = None, dry_run: bool = False) -> None:
    """Run a grid of fits and tests (tasks x methods x sizes x seeds) declared in a sweep file. Re-running the same
    command skips finished runs and restarts unfinished ones.

    Args:
        config: The sweep file, e.g. configs/sweeps/demo.yaml.
        out: The sweep directory (default: the file's out_dir, else sweeps/<file stem>).
        shard: I/N: run the I-th of N disjoint parts of the grid (0 <= I < N), one per machine, GPU or SLURM array
            task, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
        dry_run: List the runs and their status, run nothing.
    """
    part = parse_shard(shard) if shard is not None else None
    grid = load_sweep(config, out)
    check_output_folder(  # before any work: a sweep writes only into its own folder, never over its inputs
        grid.out_dir,
        "--out" if out else "out_dir",
        {"--config": grid.path, "base_config": grid.base_config},
        overwrite=True,
        is_own=_sweep_folder,
        kind="a sweep",
    )
    try:
        code = run_sweep(grid, part, dry_run)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; re-run the same command to resume (finished runs are kept in {grid.out_dir})",
            file=sys.stderr,
        )
        code = 130
    if code:
        sys.exit(code)


def main(argv: list[str]) -> None:
    run_command_line(sweep, argv, "sweep")
