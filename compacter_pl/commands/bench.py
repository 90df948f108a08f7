"""`python cli.py bench`: the paper's Table 3 on this machine: training step time and peak memory of every method
relative to full fine-tuning and to the LN-only floor, evaluation examples/s, and the padding in training batches.

    python cli.py bench                                          # t5-base, every method, batch 8 x 128, CPU or GPU
    python cli.py bench --methods full ln_only compacter compacter++ --json bench.json
    python cli.py bench --model demo/tiny-t5 --source_length 32 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import statistics
import sys

from compacter_pl.architectures import known_architectures
from compacter_pl.bench.rows import BENCH_ROWS, TABLE3_SETTINGS
from compacter_pl.bench.runner import MiB, BenchOptions, format_report, paired_ratios, run_bench, write_json
from compacter_pl.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    keys = [row.key for row in BENCH_ROWS]
    parser = argparse.ArgumentParser(
        prog="python cli.py bench",
        description="The paper's Table 3 on this machine: training step time and peak memory of every method "
                    "relative to full fine-tuning and to the LN-only floor, evaluation examples/s, and the padding "
                    "in training batches. Each method runs in a fresh process, one after another, on random weights "
                    "and random tokens (no download); every ratio is measured in this one run.")
    parser.add_argument("--model", default="t5-base",
                        help="An architecture name (" + ", ".join(known_architectures()) + "), a config.json or a "
                             "model directory; random weights. Default: t5-base.")
    parser.add_argument("--methods", nargs="+", choices=keys, default=keys, metavar="METHOD",
                        help="Only these methods (default: all): " + ", ".join(keys) + ". ln_only is the floor "
                             "(only the layer norms train); full is the reference of the percentages.")
    parser.add_argument("--batch_size", type=int, default=8, help="Training and evaluation batch size. Default: 8.")
    parser.add_argument("--source_length", type=int, default=128, help="Source tokens per example. Default: 128.")
    parser.add_argument("--target_length", type=int, default=3,
                        help="Target tokens per example, like a label and its end token; also the generation bound "
                             "and the length of each ranked label. Default: 3.")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="32-true",
                        help="32-true or bf16-mixed (autocast). Default: 32-true.")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto picks CUDA when torch sees a GPU. Default: auto.")
    parser.add_argument("--steps", type=int, default=5, help="Measured training steps per method. Default: 5.")
    parser.add_argument("--warmup", type=int, default=2, help="Unmeasured steps first. Default: 2.")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Measure every method this many times, each in a fresh process, the order reversed "
                             "every other round (steadier on a shared machine). Default: 1.")
    parser.add_argument("--eval_steps", type=int, default=3,
                        help="Measured evaluation batches per mode (0 skips evaluation). Default: 3.")
    parser.add_argument("--num_labels", type=int, default=2, help="Labels ranked in rank mode. Default: 2 (RTE).")
    parser.add_argument("--threads", type=int, help="torch threads per worker. Default: torch's (all cores).")
    parser.add_argument("--gradient_checkpointing", action="store_true", help="Measure with gradient checkpointing.")
    parser.add_argument("--compile", action="store_true", help="Measure with torch.compile of the training forward.")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="Step time in wall-clock time, or in the worker's CPU time (less sensitive to other "
                             "processes on a shared machine; the workers then run with OMP_WAIT_POLICY=PASSIVE so "
                             "waiting threads do not count; both times are in the JSON). Default: wall.")
    parser.add_argument("--pair_with_floor", action=argparse.BooleanOptionalAction, default=True,
                        help="Time every method's steps alternating with an LN-only model in the same process, and "
                             "give its step time vs the floor as the median per-pair ratio, which a shared machine's "
                             "drift between runs does not distort (doubles the timed steps; --no-pair_with_floor "
                             "compares separate runs, and needs no second model in memory). Default: on.")
    parser.add_argument("--bottleneck", type=int, default=TABLE3_SETTINGS["bottleneck"],
                        help="Adapter size of the adapter methods (Table 3: 24).")
    parser.add_argument("--n", type=int, default=TABLE3_SETTINGS["n"],
                        help="n of PHM-Adapter, Compacter, Compacter++ (Table 3: 4).")
    parser.add_argument("--prompt_tokens", type=int, default=TABLE3_SETTINGS["num_tokens"],
                        help="Prompt length of prompt tuning (Table 3: 100).")
    parser.add_argument("--said_dim", type=int, default=TABLE3_SETTINGS["intrinsic_dim"],
                        help="d' of Intrinsic-SAID (Table 3: 1,400).")
    parser.add_argument("--malloc_mmap_threshold", type=int, default=256 * 1024,
                        help="CPU: glibc's mmap threshold in bytes during the two steps that measure the peak "
                             "resident memory, so freed activations return to the system and the peak is what a "
                             "method needs (0 leaves glibc's adaptive default, whose heap fragmentation adds noise). "
                             "Default: 262144.")
    parser.add_argument("--keep_freed_memory", action=argparse.BooleanOptionalAction, default=True,
                        help="CPU: time the steps with freed memory kept for the next step, as training runs do "
                             "(`--host_memory.keep_freed`); --no-keep_freed_memory returns it to the system after "
                             "every step, as runs with --host_memory.keep_freed false do, and the next step "
                             "page-faults it back in. A method whose worker runs out of memory is measured again "
                             "with --malloc_mmap_threshold throughout, and the report says so. Default: on.")
    parser.add_argument("--data_dir",
                        help="RTE data (train.jsonl or .parquet in the Hub's schema) for the padding report. "
                             "Default: ../shared/glue-sample/hub/glue/rte beside the repository, when present.")
    parser.add_argument("--padding_batch_size", type=int, default=100,
                        help="Batch size of the padding report (the paper's GLUE batch). Default: 100.")
    parser.add_argument("--timeout", type=float, help="Seconds before a method's worker is stopped. Default: none.")
    parser.add_argument("--json", metavar="PATH", help="Also write the report as JSON to PATH.")
    return parser


def _progress(done: int, total: int, result: dict) -> None:
    if "error" in result:
        line = f"error: {result['error']}"
    else:
        line = (f"step {result['step_seconds']:.3f} s wall, {result['step_cpu_seconds']:.3f} s CPU, peak "
                f"{result['peak_memory_bytes'] / MiB:,.0f} MiB, {result['trainable']:,} trainable")
        ratios = paired_ratios(result)
        if ratios:
            line += f", {100 * (statistics.median(ratios) - 1):+.1f}% vs the floor (paired)"
    print(f"[{done}/{total}] {result['key']}: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "source_length", "target_length", "steps", "rounds", "num_labels"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1", file=sys.stderr)
            sys.exit(2)
    settings = {"bottleneck": args.bottleneck, "n": args.n, "num_tokens": args.prompt_tokens,
                "intrinsic_dim": args.said_dim}
    options = BenchOptions(model=args.model, methods=args.methods, batch_size=args.batch_size,
                           source_length=args.source_length, target_length=args.target_length,
                           precision=args.precision, device=args.device, steps=args.steps,
                           warmup=max(0, args.warmup), rounds=args.rounds, eval_steps=max(0, args.eval_steps),
                           num_labels=args.num_labels, threads=args.threads,
                           gradient_checkpointing=args.gradient_checkpointing, compile=args.compile,
                           clock=args.clock, pair_with_floor=args.pair_with_floor, settings=settings,
                           malloc_mmap_threshold=args.malloc_mmap_threshold, keep_freed_memory=args.keep_freed_memory,
                           data_dir=args.data_dir, padding_batch_size=args.padding_batch_size, timeout=args.timeout)
    try:
        report = run_bench(options, progress=_progress)
    except (RuntimeError, ValueError) as error:
        raise UserError(str(error)) from None
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
