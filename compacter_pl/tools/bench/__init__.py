"""`cli.py bench`: the paper's Table 3 (training step time and peak memory of every method, relative to full
fine-tuning) measured on the user's machine, with the layer-norm-only floor, evaluation throughput and the
padding left in training batches.

Flow: `commands/bench.py` (the options: `options.BenchOptions`) -> `runner.run_bench` -> one fresh
`python -m compacter_pl.tools.bench.worker` per method, given the same options (so the peak resident memory of a process
is that method's alone) -> `worker.measure`, which builds the model with `architectures.build_t5`, applies the
method, and trains and evaluates with the LightningModule's own pieces (`steps.training_loss`,
`steps.build_optimizer`, `steps.label_log_likelihoods`, `steps.greedy_generate`) -> the runner collects the
report and `text.format_report` prints the table, with the paper's Table 3 beside it (`beside_paper.py`: its
deltas recomputed against T5 fine-tuning, as ours are against full fine-tuning). `padding.py` reports the
real-token share of training batches from the real sampler.

`--mixed true` measures mixed batches instead (`mixed.py`): the same runner, options and worker process, which
builds an AdapterBank of random adapters and times rows of many tasks in one call against the same rows in
one-task calls, the pairs summarised as the step ratios are (`runner.spread`).
"""

from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.padding import padding_report, real_token_fraction
from compacter_pl.tools.bench.rows import BENCH_ROWS, FLOOR, TABLE3_SETTINGS, bench_row, build_method
from compacter_pl.tools.bench.runner import run_bench
from compacter_pl.tools.bench.text import format_report

__all__ = [
    "BENCH_ROWS",
    "BenchOptions",
    "FLOOR",
    "TABLE3_SETTINGS",
    "bench_row",
    "build_method",
    "format_report",
    "padding_report",
    "real_token_fraction",
    "run_bench",
]
