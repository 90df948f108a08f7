"""The `bench` command: the paper's Table 3 on this machine; its options are `compacter_pl.tools.bench.BenchOptions`.

Examples (after the program: `python cli.py`, `compacter-pl`):

    bench                                          # t5-base, every method, batch 8 x 128, CPU or GPU
    bench --methods full ln_only compacter compacter++ --json bench.json
    bench --model demo/tiny-t5 --source_length 32 --steps 3 --warmup 1
    bench --methods ln_only compacter --init_args '{compacter: {n: 8}}'   # a method's arguments over Table 3's
    bench --config BENCH.yaml                      # options in YAML (--print_config writes one)
    bench --mixed --steps 6 --warmup 1             # mixed batches: 32 rows over K = 1, 2, 8, 32 Compacter tasks
"""

from __future__ import annotations

import functools
import statistics
import sys
from pathlib import Path

from compacter_pl.config import run_command_line
from compacter_pl.errors import UserError
from compacter_pl.files import check_output_file
from compacter_pl.tools.bench.mixed import progress_line
from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.runner import MiB, format_report, paired_ratios, run_bench, write_json


def _progress(done: int, total: int, result: dict, options: BenchOptions | None = None) -> None:
    if options is not None and options.mixed:
        line = progress_line(result, options)
    elif "error" in result:
        line = f"error: {result['error']}"
    else:
        line = (
            f"step {result['step_seconds']:.3f} s wall, {result['step_cpu_seconds']:.3f} s CPU, peak "
            f"{result['peak_memory_bytes'] / MiB:,.0f} MiB, {result['trainable']:,} trainable"
        )
        ratios = paired_ratios(result)
        if ratios:
            line += f", {100 * (statistics.median(ratios) - 1):+.1f}% vs the floor (paired)"
    print(f"[{done}/{total}] {result['key']}: {line}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    options = run_command_line(BenchOptions, argv, "bench")
    if options.json:  # before any work: never over what bench reads
        data = Path(options.data_dir) if options.data_dir and Path(options.data_dir).is_dir() else None
        reads = {f"--data_dir ({p.name})": p for p in (data.iterdir() if data else [])}
        check_output_file(options.json, "--json", {"--model": options.model, **reads})
    try:
        report = run_bench(options, progress=functools.partial(_progress, options=options))
    except (RuntimeError, ValueError) as error:
        raise UserError(str(error)) from None
    print(format_report(report))
    if options.json:
        write_json(report, options.json)
        print(f"wrote {options.json}")
