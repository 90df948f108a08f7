"""One method's measurement, in a process of its own: `python -m compacter_pl.tools.bench.worker SPEC.json OUT.json`.

Builds the LightningModule `fit` trains (random weights, no download) with the method and Table 3's settings, then:
- training: fit's own step: the module's `training_step` under the Trainer's precision, the backward, then the
  AdamW step and learning-rate schedule of its `configure_optimizers`, as Lightning runs them (the Trainer comes from
  `make_trainer`, in Lightning's raw-speed mode: no logging, checkpoints or progress bar), with the module's gradient
  checkpointing and torch.compile options, on random token ids of the given shape (all real tokens); the median
  step after warm-up, in wall time and in this process's CPU time;
- peak memory: CUDA, the allocator's peak; CPU, the peak resident set of this process (a fresh one per method),
  over warm-up steps run first with glibc's mmap threshold fixed low (`malloc_mmap_threshold`), so that freed
  activations go back to the system and the peak is what the method needs, not heap fragmentation; the timed
  steps then keep freed memory for the next step, as training runs do (`compacter_pl.host_memory`), so they pay
  no page faults (`keep_freed_memory` false: freed memory returned to the system after each step, as runs with
  `--host_memory.keep_freed false` do);
- the floor, paired (`pair_with_floor`): after the memory steps, a second model with only its layer norms training
  (the LN-only floor) is built in the same process, and the timed steps alternate between the two (X F, F X, ...).
  Each pair ran under the same machine load, so the median of the per-pair ratios is the method's cost over the
  floor even when a shared machine drifts by more than that cost between runs;
- evaluation: examples per second of one greedy generation pass bounded by the target length, and of ranking a
  closed label set (`steps.label_log_likelihoods`), under inference mode and the Trainer's precision as Lightning
  evaluates.
The result is written as JSON to OUT.json for the parent (`runner.py`).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from transformers import T5ForConditionalGeneration

from compacter_pl.architectures import build_t5, count_parameters
from compacter_pl.errors import first_line
from compacter_pl.files import replaced_atomically
from compacter_pl.host_memory import apply_host_memory, set_malloc_thresholds
from compacter_pl.layers.regions import PREFIX as REGION_PREFIX
from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.rows import FLOOR, build_method
from compacter_pl.training import TextToTextModule, make_trainer
from compacter_pl.training.steps import greedy_generate, label_log_likelihoods

EOS_ID = 1  # T5's end of sequence; a label's last token
LEARNING_RATE = 1e-5


SEED = 0  # of the random weights and tokens


def resolve_device(device: Literal["auto", "cpu", "cuda"]) -> Literal["cpu", "cuda"]:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _current_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    import psutil

    return psutil.Process().memory_info().rss


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(fn, device: torch.device) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, page faults of this process) of one call."""
    _sync(device)
    wall, cpu, faults = time.perf_counter(), time.process_time(), _minor_faults()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, _minor_faults() - faults


def region_seconds(step, device: torch.device) -> tuple[float, dict[str, float], dict[str, int]]:
    """One `step` under torch's profiler: its wall seconds, and the seconds spent in each named region of the
    layers (`compacter_pl.layers.regions`; on CUDA their kernels' time) and how often each was entered."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if device.type == "cuda" else [])]
    with profile(activities=activities) as profiler:
        wall = _timed(step, device)[0]
    regions: dict[str, float] = {}
    calls: dict[str, int] = {}
    for event in profiler.events():
        if event.name.startswith(REGION_PREFIX):
            name = event.name[len(REGION_PREFIX) :]
            seconds = (event.device_time_total if device.type == "cuda" else event.cpu_time_total) / 1e6
            regions[name] = regions.get(name, 0.0) + seconds
            calls[name] = calls.get(name, 0) + 1
    return wall, regions, calls


@dataclass
class Training:
    """fit's LightningModule with a method applied, the Trainer it is attached to, and one training step of it."""

    module: TextToTextModule
    trainer: L.Trainer
    step: Callable[[], None]  # training_step (forward + loss) + backward + optimizer and schedule step

    @property
    def model(self) -> T5ForConditionalGeneration:
        return self.module.model


def fit_module(options: BenchOptions, key: str, device: torch.device) -> TextToTextModule:
    """The LightningModule `fit` trains, with method `key` (Table 3's settings) and the efficiency options, on random
    weights of the architecture `options.model` names, built on `device`."""

    class RandomWeights(TextToTextModule):
        def load_model(self, model_name_or_path: str) -> T5ForConditionalGeneration:
            return build_t5(model_name_or_path, device=device, seed=SEED)

    module = RandomWeights(
        options.model,
        method=build_method(key, options.settings),
        learning_rate=LEARNING_RATE,
        gradient_checkpointing=options.gradient_checkpointing,
        compile=options.compile,
    )
    module.method.check(module.model.config, options.source_length)  # as fit's setup checks it against the data
    return module.to(device)


def build_training(options: BenchOptions, key: str, device: torch.device) -> Training:
    """fit's module with method `key`, attached to a Trainer from `make_trainer`, and its step as fit runs it, on
    fixed random tokens."""
    module = fit_module(options, key, device)
    steps = 2 + options.warmup + options.steps + 1  # the memory steps, the timed ones, the profiled one
    trainer = make_trainer(
        barebones=True,
        accelerator=device.type,
        devices=1,
        precision=options.precision,
        max_epochs=-1,
        max_steps=steps,
    )
    module.trainer = trainer
    optimization = module.configure_optimizers()
    optimizer, schedule = optimization["optimizer"], optimization["lr_scheduler"]["scheduler"]
    precision = trainer.precision_plugin

    generator = torch.Generator().manual_seed(SEED)
    vocab = module.model.config.vocab_size
    input_ids = torch.randint(2, vocab, (options.batch_size, options.source_length), generator=generator).to(device)
    labels = torch.randint(2, vocab, (options.batch_size, options.target_length), generator=generator)
    labels[:, -1] = EOS_ID
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels.to(device)}

    def step() -> None:
        with precision.train_step_context():
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()

    return Training(module, trainer, step)


def timed_steps(options: BenchOptions, training: Training, floor: Training | None, device: torch.device):
    """(wall, cpu, page faults) of each measured step of `training`, and of `floor` alternating with it (or [])."""
    times, floor_times = [], []
    for index in range(options.warmup + options.steps):
        if floor is None:
            times.append(_timed(training.step, device))
            continue
        if index % 2:  # alternate which runs first, so neither always follows the other
            floor_times.append(_timed(floor.step, device))
            times.append(_timed(training.step, device))
        else:
            times.append(_timed(training.step, device))
            floor_times.append(_timed(floor.step, device))
    return times[options.warmup :], floor_times[options.warmup :]


def measure(options: BenchOptions, key: str) -> dict:
    """Train and evaluate method `key` on random tokens; every number the parent reports."""
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(resolve_device(options.device))
    if device.type == "cpu" and options.malloc_mmap_threshold:
        set_malloc_thresholds(options.malloc_mmap_threshold)
    training = build_training(options, key, device)
    model = training.model
    total = count_parameters(model)
    memory_after_build = _current_memory_bytes(device)

    # Memory first: two steps (the first also creates the optimizer state), with the low threshold on CPU.
    for _ in range(2):
        training.step()
    peak = _peak_memory_bytes(device)
    # Timed steps: as training runs do (the `host_memory` callback), unless the memory steps' low threshold stays
    # (`low_threshold_throughout`); not kept and no threshold given: glibc's own thresholds.
    if (
        device.type == "cpu"
        and not options.low_threshold_throughout
        and (options.keep_freed_memory or options.malloc_mmap_threshold)
    ):
        apply_host_memory(options.keep_freed_memory)
    floor = None
    if options.pair_with_floor and key != FLOOR.key:  # built after the peak is read: it does not count
        floor = build_training(options, FLOOR.key, device)
        for _ in range(2):  # its optimizer state, and its allocations settled, before any timed step
            floor.step()
    train, floor_train = timed_steps(options, training, floor, device)
    del floor
    profiled = region_seconds(training.step, device) if options.split_step else None
    frozen_with_grad = sum(1 for p in model.parameters() if not p.requires_grad and p.grad is not None)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(SEED + 1)
    input_ids = torch.randint(2, vocab, (options.batch_size, options.source_length), generator=generator).to(device)
    attention_mask = torch.ones_like(input_ids)

    # Evaluation, as Lightning runs it: eval mode, inference mode, the same precision.
    model.eval()
    candidates = torch.randint(2, vocab, (options.num_labels, options.target_length), generator=generator)
    candidates[:, -1] = EOS_ID

    def generate() -> None:
        greedy_generate(model, input_ids, attention_mask, options.target_length)

    def rank() -> None:
        label_log_likelihoods(model, input_ids, attention_mask, candidates)

    evaluation = {}
    with torch.inference_mode(), training.trainer.precision_plugin.forward_context():
        for name, fn in (("generate", generate), ("rank", rank)):
            times = [_timed(fn, device)[0] for _ in range(1 + options.eval_steps)][1:] if options.eval_steps else []
            evaluation[name] = options.batch_size / statistics.median(times) if times else None

    return {
        "key": key,
        "total_parameters": total,
        "trainable": count_parameters(model, trainable_only=True),
        "step_seconds": statistics.median(t for t, _, _ in train),
        "step_cpu_seconds": statistics.median(c for _, c, _ in train),
        "step_page_faults": statistics.median(f for _, _, f in train),
        "step_seconds_all": [t for t, _, _ in train],
        "step_cpu_seconds_all": [c for _, c, _ in train],
        "floor_step_seconds_all": [t for t, _, _ in floor_train],
        "floor_step_cpu_seconds_all": [c for _, c, _ in floor_train],
        "floor_step_page_faults": statistics.median(f for _, _, f in floor_train) if floor_train else None,
        "peak_memory_bytes": peak,
        **(
            {"profiled_step_seconds": profiled[0], "region_seconds": profiled[1], "region_calls": profiled[2]}
            if profiled
            else {}
        ),
        "memory_after_build_bytes": memory_after_build,
        "frozen_parameters_with_grad": frozen_with_grad,
        "eval_generate_examples_per_second": evaluation.get("generate"),
        "eval_rank_examples_per_second": evaluation.get("rank"),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    spec_path, out_path = argv if argv is not None else sys.argv[1:]
    with open(spec_path) as file:
        data = json.load(file)
    key = data["key"]
    try:
        options = BenchOptions(**data["options"])
        if options.mixed:
            from compacter_pl.tools.bench.mixed import measure_mixed

            result = measure_mixed(options)
        else:
            result = measure(options, key)
    # This process measures one method, and whatever stops it (an out-of-memory error, a bug in the method, a
    # library's error) is reported in the table as that method's error while the other methods go on.
    except Exception as error:  # noqa: BLE001
        result = {"key": key, "error": f"{type(error).__name__}: {first_line(error)}"}
    with replaced_atomically(out_path) as file:
        json.dump(result, file)


if __name__ == "__main__":
    # fit's training_step logs its loss; Lightning's raw-speed mode skips the log with this warning
    warnings.filterwarnings("ignore", message=r"You are trying to `self\.log\(\)` but `Trainer\(barebones=True\)`")
    main()
