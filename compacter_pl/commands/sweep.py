"""`python cli.py sweep --config SWEEP.yaml`: run a grid of fits and tests (tasks x methods x sizes x seeds).

Re-running the same command skips finished runs and restarts unfinished ones. `--shard I/N` runs the I-th of N
disjoint parts of the grid (one per machine, GPU or SLURM array task); `--dry-run` lists the runs.
"""

import argparse
import sys

from compacter_pl.sweep.grid import load_sweep, parse_shard
from compacter_pl.sweep.runner import run_sweep


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="cli.py sweep", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--config", required=True, help="the sweep file, e.g. configs/sweeps/demo.yaml")
    parser.add_argument("--out", help="the sweep directory (default: the file's out_dir, else sweeps/<file stem>)")
    parser.add_argument("--shard", help="I/N: run the I-th of N disjoint parts of the grid (0 <= I < N), e.g. "
                                        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    args = parser.parse_args(argv)
    shard = parse_shard(args.shard) if args.shard is not None else None
    sweep = load_sweep(args.config, args.out)
    try:
        code = run_sweep(sweep, shard, args.dry_run)
    except KeyboardInterrupt:
        print(f"\ninterrupted; re-run the same command to resume (finished runs are kept in {sweep.out_dir})",
              file=sys.stderr)
        code = 130
    if code:
        sys.exit(code)
