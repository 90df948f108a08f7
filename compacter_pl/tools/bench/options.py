"""What `bench` measures and how: one dataclass, read by the command line (its fields are the options, their
docstrings the help), by the runner, and by each worker (which gets it as JSON with the method to measure)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt

from compacter_pl.architectures import t5_config
from compacter_pl.errors import UserError, did_you_mean
from compacter_pl.methods import Method
from compacter_pl.tools.bench.rows import BENCH_ROWS, TABLE3_SETTINGS, bench_row

if TYPE_CHECKING:  # a Literal built at run time: a plain string to a type checker
    MethodKey = str
else:
    MethodKey = Literal[tuple(row.key for row in BENCH_ROWS)]

MIXED_TASKS = (1, 2, 8, 32)  # --mixed_tasks by default
# Table 3's options that --mixed has no use for: given with it, they are refused rather than ignored.
TABLE3_ONLY = (
    "methods",
    "batch_size",
    "eval_steps",
    "num_labels",
    "gradient_checkpointing",
    "compile",
    "pair_with_floor",
    "malloc_mmap_threshold",
    "low_threshold_throughout",
    "data_dir",
    "padding_batch_size",
)


@dataclass(frozen=True)
class BenchOptions:
    """The paper's Table 3 on this machine: training step time and peak memory of every method relative to full
    fine-tuning and to the LN-only floor, evaluation examples/s, and the padding in training batches. Each method
    runs in a fresh process, one after another, on random weights and random tokens (no download); every ratio is
    measured in this one run."""

    model: str = "t5-base"
    """An architecture name (as `cli.py params` takes it: t5-base, flan-t5-large, ...), a config.json or a model
    directory; random weights."""
    methods: list[MethodKey] | None = None
    """Only these methods (default: all). ln_only is the floor (only the layer norms train); full is the reference
    of the percentages."""
    batch_size: PositiveInt = 8
    """Training and evaluation batch size."""
    source_length: PositiveInt = 128
    """Source tokens per example."""
    target_length: PositiveInt = 3
    """Target tokens per example, like a label and its end token; also the generation bound and the length of each
    ranked label."""
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    """32-true or bf16-mixed (autocast)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto picks CUDA when torch sees a GPU."""
    steps: PositiveInt = 5
    """Measured training steps per method."""
    warmup: NonNegativeInt = 2
    """Unmeasured steps first."""
    rounds: PositiveInt = 1
    """Measure every method this many times, each in a fresh process, the order reversed every other round
    (steadier on a shared machine)."""
    eval_steps: NonNegativeInt = 3
    """Measured evaluation batches per mode (0 skips evaluation)."""
    num_labels: PositiveInt = 2
    """Labels ranked in rank mode (RTE: 2)."""
    threads: PositiveInt | None = None
    """torch threads per worker (default: torch's, all cores)."""
    gradient_checkpointing: bool = False
    """Measure with gradient checkpointing."""
    compile: bool = False
    """Measure with torch.compile of the training forward."""
    split_step: bool = True
    """Profile one more training step per method (after the timed ones, not among them) and report how much of it
    the method's own layers take (their named regions: Intrinsic-SAID's Fastfood projection, the fused bottleneck
    adapters) beside the rest of the step."""
    clock: Literal["wall", "cpu"] = "wall"
    """Step time in wall-clock time, or in the worker's CPU time (less sensitive to other processes on a shared
    machine; the workers then run with OMP_WAIT_POLICY=PASSIVE so waiting threads do not count; both times are in
    the JSON)."""
    pair_with_floor: bool = True
    """Time every method's steps alternating with an LN-only model in the same process, and give its step time vs
    the floor as the median per-pair ratio, which a shared machine's drift between runs does not distort (doubles
    the timed steps; false compares separate runs, and needs no second model in memory)."""
    init_args: dict[str, dict[str, Any]] | None = None
    """Arguments of methods by key, over Table 3's settings, e.g. {compacter: {n: 8}, adapter: {bottleneck: 48}}
    (Table 3: adapter size 24, n 4, 100 prompt tokens, Intrinsic-SAID d' 1,400)."""
    malloc_mmap_threshold: NonNegativeInt = 256 * 1024
    """CPU: glibc's mmap threshold in bytes during the two steps that measure the peak resident memory, so freed
    activations return to the system and the peak is what a method needs (0 leaves glibc's adaptive default, whose
    heap fragmentation adds noise)."""
    keep_freed_memory: bool = True
    """CPU: time the steps with freed memory kept for the next step, as training runs do (--host_memory.keep_freed);
    false returns it to the system after every step, as runs with --host_memory.keep_freed false do, and the next
    step page-faults it back in. A method whose worker runs out of memory is measured again with
    low_threshold_throughout, and the report says so."""
    low_threshold_throughout: bool = False
    """CPU: time the steps with --malloc_mmap_threshold too (bounded memory; slower steps, with page faults)."""
    data_dir: str | None = None
    """RTE data (train.jsonl or .parquet in the Hub's schema, e.g. a GLUE sample's glue/rte folder) for the padding
    report; without it the padding report is skipped."""
    padding_batch_size: PositiveInt = 100
    """Batch size of the padding report (the paper's GLUE batch)."""
    timeout: PositiveFloat | None = None
    """Seconds before a method's worker is stopped (default: none)."""
    json: str | None = None
    """Also write the report as JSON to this path."""
    mixed: bool = False
    """Measure mixed batches instead of Table 3 (`compacter_pl.tools.bench.mixed`): an AdapterBank of
    --mixed_method adapters with random weights on the model, and the throughput of a batch of --mixed_batch_size
    rows spread over K of them in one call, against one adapter's batch of the same rows, against the same rows as K
    one-adapter batches, and against no adapter; with --source_length source tokens, --target_length new tokens
    (greedy), --steps repetitions after --warmup, every arm once per repetition; ratios per pair of arms, as the
    step ratios are paired; freed memory kept as --keep_freed_memory says."""
    mixed_tasks: list[PositiveInt] | None = None
    """With --mixed: the numbers of tasks K a batch is spread over (default: 1 2 8 32)."""
    mixed_batch_size: PositiveInt = 32
    """With --mixed: the rows of a batch."""
    mixed_method: MethodKey = "compacter"
    """With --mixed: the method of every adapter (one that mixes; its settings as Table 3's and --init_args)."""
    mixed_eval_mode: Literal["generate", "rank"] = "generate"
    """With --mixed: what a call does, greedy generation of --target_length tokens (AdapterBank.generate) or
    ranking the task's labels (AdapterBank.predict with eval_mode rank)."""

    def __post_init__(self) -> None:
        """The model is read once, here (no weights, no network): an unknown one fails before any worker starts,
        rather than in every worker; so does a method argument of `init_args` that its method does not take."""
        try:
            t5_config(self.model)
        except UserError as error:
            raise UserError(f"--model: {error}") from None
        keys = [row.key for row in BENCH_ROWS]
        for key, arguments in (self.init_args or {}).items():
            if key not in keys:
                raise UserError(
                    f"--init_args: unknown method key {key!r}{did_you_mean(key, keys)}; bench has {', '.join(keys)}"
                )
            takes = inspect.signature(bench_row(key).cls).parameters
            unknown = [name for name in arguments or {} if name not in takes]
            if unknown:
                raise UserError(
                    f"--init_args: {key} has no argument {unknown[0]!r}{did_you_mean(unknown[0], takes)} "
                    f"(its arguments: {', '.join(takes)})"
                )
        self._check_mixed()

    def _check_mixed(self) -> None:
        """--mixed's options only with it, Table 3's only without it, and batches every K fits."""
        defaults = {f.name: f.default for f in fields(self)}
        if not self.mixed:
            given = [name for name in defaults if name.startswith("mixed_") and getattr(self, name) != defaults[name]]
            if given:
                raise UserError(f"--{given[0]} applies only with --mixed true")
            return
        given = [name for name in TABLE3_ONLY if getattr(self, name) != defaults[name]]
        if given:
            raise UserError(f"--{given[0]} is an option of Table 3's measurement, not of --mixed true")
        row = bench_row(self.mixed_method)
        if row.cls.mix is Method.mix:
            raise UserError(
                f"--mixed_method {self.mixed_method}: {row.name} does not mix ({row.cls.unmixable_reason}: its rows "
                f"run as a batch of their own), so there is no mixed batch to measure"
            )
        too_many = [k for k in self.tasks if k > self.mixed_batch_size]
        if too_many:
            raise UserError(
                f"--mixed_tasks: {too_many[0]} tasks need at least {too_many[0]} rows, and --mixed_batch_size is "
                f"{self.mixed_batch_size}"
            )

    @property
    def tasks(self) -> list[int]:
        """With --mixed: the numbers of tasks, each once, ascending."""
        return sorted(set(self.mixed_tasks or MIXED_TASKS))

    @property
    def keys(self) -> list[str]:
        """The methods to measure, each once, in the order given."""
        return list(dict.fromkeys(self.methods or [row.key for row in BENCH_ROWS]))

    @property
    def settings(self) -> dict[str, dict]:
        """Each method's arguments, by key: Table 3's, then `init_args` over them."""
        given = self.init_args or {}
        return {
            key: {**TABLE3_SETTINGS.get(key, {}), **(given.get(key) or {})}
            for key in dict.fromkeys([*TABLE3_SETTINGS, *given])
        }
