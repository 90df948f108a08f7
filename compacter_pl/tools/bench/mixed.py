"""`bench --mixed true`: the throughput of mixed batches, rows of many tasks in one call, through the product's
`AdapterBank` (`compacter_pl.adapter_bank`, `compacter_pl.mixing`).

One worker process (`worker.py`, as for every bench measurement; `--rounds` runs more) builds the model with random
weights (`architectures.build_t5`) and an AdapterBank on it holding max(K) adapters of `--mixed_method` with its
Table 3 settings: each is the method applied to a copy sharing the base's tensors, its trained parameters moved by
random noise (layer norms by a third of it) so that every part of every adapter changes the outputs, exported in
memory (`export.model_export`) and added. One more adapter, LN-only with the base's own layer norms, is "no
adapter": the base's computation, through the bank's path like every other arm (tokenizing, decoding).

The inputs are B texts of exactly `--source_length` tokens, EOS included (`token_texts`), in a tokenizer of the
model's vocabulary whose words are token ids (`numeric_tokenizer`): no batch of any arm has padding, and outputs
read back token by token. Every repetition runs each arm once, the order reversed every other repetition:

- none: the B rows through the no-op adapter;
- one: the B rows through adapter 0, which the bank runs through that adapter's own model;
- mixed K (K >= 2): row i through adapter i mod K, in one call: one batch through the mixed model. The bank runs
  rows of one adapter through its own model, so mixed 1 is the one-task call timed again: its ratio to "one" is
  what two identical calls differ by on this machine;
- split K: the same rows as K calls, one per adapter (split 1 is "one").

A throughput ratio is taken within a repetition, between arms that ran under the same load (mixed K / one = one's
seconds / mixed K's), and summarised over repetitions by its median and interquartile range, as Table 3's steps are
paired with the floor. Outputs are checked, not timed: every row of a mixed batch must answer as its adapter
alone (the split arm) does. On a CPU, freed memory is kept for the next call as Table 3's timed steps keep it
(`--keep_freed_memory`, `compacter_pl.host_memory`): with glibc's own thresholds, every call page-faults in
the memory the one before returned, and the mixed batches' larger allocations pay more of that than their
compute; the page faults of every arm are in the report.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.architectures import build_t5, count_parameters
from compacter_pl.export import AdapterExport, model_export, own_trained_parameters, shared_base_copy
from compacter_pl.host_memory import apply_host_memory
from compacter_pl.text_table import text_table
from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.rows import FLOOR, bench_row, build_method
from compacter_pl.tools.bench.runner import machine_info, run_worker, spread
from compacter_pl.tools.bench.text import NOISY_SPREAD
from compacter_pl.tools.bench.worker import SEED, _timed, region_seconds, resolve_device

NOISE = 0.3  # the standard deviation of the noise on the adapters' trained parameters (layer norms: a third)
TASK = "rte"  # every adapter's task: rank mode ranks its labels "0" and "1"
NONE = "none"  # the no-op adapter's name
SPECIAL = ("<pad>", "</s>", "<unk>")  # T5's ids 0, 1, 2
EOS = "</s>"


def numeric_tokenizer(vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """A tokenizer of the model's `vocab_size` ids whose words are the ids less 3 ("0" is id 3), T5's pad, EOS and
    unknown at 0, 1, 2; a text ends with EOS. Only the pad is special, so a generated EOS shows in a decoded text."""
    vocab = {**{token: i for i, token in enumerate(SPECIAL)}, **{str(i - 3): i for i in range(3, vocab_size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # words joined by spaces
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", model_max_length=max_length)


def token_texts(count: int, length: int, vocab_size: int, seed: int = SEED) -> list[str]:
    """`count` texts of `length - 1` random words (ids 3 and up), `length` tokens with their EOS."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size - 3, (count, length - 1), generator=generator)
    return [" ".join(map(str, row.tolist())) for row in ids]


def random_adapter(
    base: T5ForConditionalGeneration, key: str, settings: dict, seed: int, noise: float
) -> AdapterExport:
    """Method `key` applied to a copy of `base` sharing its tensors, its trained parameters (the base's layer norms
    among them: copied first, so the base is never written) moved by N(0, noise^2), exported in memory."""
    model, method = shared_base_copy(base), build_method(key, settings)
    method.check(model.config)
    method.apply(model)
    own_trained_parameters(model, {id(p) for p in base.parameters()})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and noise:
                scale = noise / 3 if "norm" in name else noise
                parameter.add_(torch.randn(parameter.shape, generator=generator).to(parameter) * scale)
    export = model_export(model, method, TASK, "random weights")
    base.requires_grad_(False)  # the method flipped the flags of shared tensors
    return export


def build_bank(options: BenchOptions, device: torch.device) -> tuple[AdapterBank, list[str]]:
    """The bank (max(K) adapters and the no-op one) and the adapters' names, adapter 0 first."""
    base = build_t5(options.model, device=device, seed=SEED).eval().requires_grad_(False)
    tokenizer = numeric_tokenizer(base.config.vocab_size, options.source_length)
    bank = AdapterBank(base, tokenizer, max_new_tokens=options.target_length, max_source_length=options.source_length)
    bank.add(NONE, random_adapter(base, FLOOR.key, {}, SEED, noise=0.0))
    names = [f"task{k}" for k in range(max(options.tasks))]
    for k, name in enumerate(names):
        bank.add(name, random_adapter(base, options.mixed_method, options.settings, SEED + 1 + k, NOISE))
    return bank, names


def arms(bank: AdapterBank, names: list[str], texts: list[str], tasks: list[int], mode: str) -> dict:
    """Each arm's call, returning every row's output in row order (see the module docstring)."""
    every = list(range(len(texts)))

    def call(adapters: str | list[str], rows: list[int]) -> list:
        inputs = [texts[i] for i in rows]
        if mode == "rank":
            return bank.predict(adapters, inputs, eval_mode="rank")
        return bank.generate(adapters, inputs)

    def split(k: int) -> list:
        outputs: list = [None] * len(texts)
        for j in range(k):
            rows = every[j::k]
            for i, output in zip(rows, call(names[j], rows), strict=True):
                outputs[i] = output
        return outputs

    def mixed(k: int) -> list:
        return call([names[i % k] for i in every], every)

    table: dict[str, Callable[[], list]] = {"none": lambda: call(NONE, every), "one": lambda: call(names[0], every)}
    for k in tasks:
        table[f"mixed {k}"] = functools.partial(mixed, k) if k > 1 else table["one"]
        if k > 1:
            table[f"split {k}"] = functools.partial(split, k)
    return table


def measure_mixed(options: BenchOptions) -> dict:
    """Every arm's seconds per repetition, the outputs' checks, and one profiled call of a one-task and of a mixed
    batch; the worker's result."""
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(resolve_device(options.device))
    if device.type == "cpu":  # as Table 3's timed steps: freed memory kept (or returned) alike in every arm
        apply_host_memory(options.keep_freed_memory)
    bank, names = build_bank(options, device)
    texts = token_texts(options.mixed_batch_size, options.source_length, bank.base.config.vocab_size)
    table = arms(bank, names, texts, options.tasks, options.mixed_eval_mode)
    order = list(table)
    wall: dict[str, list[float]] = {arm: [] for arm in order}
    cpu: dict[str, list[float]] = {arm: [] for arm in order}
    faults: dict[str, list[int]] = {arm: [] for arm in order}
    outputs: dict[str, list] = {}
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if options.precision == "bf16-mixed"
        else contextlib.nullcontext()
    )
    with autocast:
        for repetition in range(options.warmup + options.steps):
            for arm in order if repetition % 2 == 0 else reversed(order):
                got: list[list] = []
                seconds, cpu_seconds, page_faults = _timed(lambda arm=arm, got=got: got.append(table[arm]()), device)
                outputs.setdefault(arm, got[0])
                if repetition >= options.warmup:
                    wall[arm].append(seconds)
                    cpu[arm].append(cpu_seconds)
                    faults[arm].append(page_faults)
        profiled = {}
        if options.split_step:
            mixed = f"mixed {profiled_tasks(options.tasks)}"
            for arm in dict.fromkeys(["one", mixed]):
                seconds, regions, _ = region_seconds(table[arm], device)
                profiled[arm] = {"seconds": seconds, "regions": regions}
    export = bank.exports[names[0]]
    return {
        "key": "mixed",
        "total_parameters": count_parameters(bank.base),
        "trainable": export.config["trainable_parameters"],
        "adapters": len(names),
        "threads": torch.get_num_threads(),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "page_faults": faults,
        "checks": output_checks(outputs, options.tasks, options.mixed_eval_mode),
        "profiled": profiled,
    }


def profiled_tasks(tasks: list[int]) -> int:
    """The K of the profiled mixed call: 8 if measured, else the largest."""
    return 8 if 8 in tasks else max(tasks)


def output_checks(outputs: dict[str, list], tasks: list[int], mode: str) -> dict:
    """Rows of each mixed batch whose output differs from its adapter's alone (must be none), and what says the
    adapters are not trivial: rows of the one-task batch answering otherwise than with no adapter, and rows of each
    mixed batch answering otherwise than the one-task batch does."""
    rows = len(outputs["one"])

    def differ(a: str, b: str) -> int:
        return sum(x != y for x, y in zip(outputs[a], outputs[b], strict=True))

    checks: dict[str, Any] = {
        "rows": rows,
        "one_differs_from_none": differ("one", "none"),
        "mixed_differs_from_alone": {k: differ(f"mixed {k}", f"split {k}" if k > 1 else "one") for k in tasks},
        "mixed_differs_from_one": {k: differ(f"mixed {k}", "one") for k in tasks},
    }
    if mode == "generate":  # a batch stops early only when every row has generated EOS
        checks["rows_with_eos"] = {arm: sum(EOS in str(text).split() for text in got) for arm, got in outputs.items()}
    return checks


# --- the runner's side ----------------------------------------------------------------------------------------------


def _ratios(numerator: list[float], denominator: list[float]) -> dict:
    """Throughput ratios per repetition (the denominator arm's seconds over the numerator's), their median and
    interquartile range, and whether that range is wider than NOISY_SPREAD of the median."""
    ratios = [d / n for n, d in zip(numerator, denominator, strict=True)]
    summary: dict[str, Any] = {"median": statistics.median(ratios), "ratios": ratios}
    if len(ratios) >= 2:
        low, high, summary["noisy"] = spread(ratios)
        summary["iqr"] = [low, high]
    return summary


def summarize(results: list[dict], options: BenchOptions) -> dict:
    """The rounds' results -> throughputs per arm and the paired ratios per K (every round's pairs together)."""
    clock = f"{options.clock}_seconds"
    seconds = {arm: [t for r in results for t in r[clock][arm]] for arm in results[0][clock]}
    rows = options.mixed_batch_size
    first = results[0]
    by_k = []
    for k in options.tasks:
        mixed, split = seconds[f"mixed {k}"], seconds[f"split {k}" if k > 1 else "one"]
        by_k.append(
            {
                "tasks": k,
                "mixed_rows_per_second": rows / statistics.median(mixed),
                "split_rows_per_second": rows / statistics.median(split),
                "mixed_vs_one": _ratios(mixed, seconds["one"]),
                "mixed_vs_split": _ratios(mixed, split),
                "mixed_differs_from_alone": max(r["checks"]["mixed_differs_from_alone"][str(k)] for r in results),
                "mixed_differs_from_one": first["checks"]["mixed_differs_from_one"][str(k)],
            }
        )
    return {
        "total_parameters": first["total_parameters"],
        "trainable": first["trainable"],
        "adapters": first["adapters"],
        "threads": first["threads"],
        "repetitions": len(seconds["one"]),
        "none_rows_per_second": rows / statistics.median(seconds["none"]),
        "one_rows_per_second": rows / statistics.median(seconds["one"]),
        "one_vs_none": _ratios(seconds["one"], seconds["none"]),
        "page_faults": {arm: statistics.median(n for r in results for n in r["page_faults"][arm]) for arm in seconds},
        "tasks": by_k,
        "checks": first["checks"],
        "profiled": first["profiled"],
    }


def run_mixed(options: BenchOptions, progress=None) -> dict:
    """`options.rounds` workers measuring the mixed batches (each in a fresh process), and the report."""
    results = []
    with tempfile.TemporaryDirectory(prefix="compacter-bench-") as workdir:
        for done in range(1, options.rounds + 1):
            result = run_worker(options, "mixed", Path(workdir))
            results.append(result)
            if progress:
                progress(done, options.rounds, result)
    good = [r for r in results if "error" not in r]
    return {
        "options": {**asdict(options), "settings": options.settings, "tasks": options.tasks},
        "machine": machine_info(options.device),
        "mixed": summarize(good, options) if good else {"error": results[0]["error"]},
    }


def progress_line(result: dict, options: BenchOptions) -> str:
    """One round's result in one line, as the command prints it while the rounds run."""
    if "error" in result:
        return f"error: {result['error']}"
    one = statistics.median(result[f"{options.clock}_seconds"]["one"])
    parts = [
        f"K={k} {one / statistics.median(result[f'{options.clock}_seconds'][f'mixed {k}']):.2f}x" for k in options.tasks
    ]
    return f"one-task batch {one:.2f} s; mixed vs one-task (medians) " + ", ".join(parts)


# --- the report as text ---------------------------------------------------------------------------------------------


def _ratio(summary: dict) -> str:
    text = f"{summary['median']:.2f}x"
    if "iqr" in summary:
        low, high = summary["iqr"]
        text += f" [{low:.2f}..{high:.2f}]" + ("?" if summary["noisy"] else "")
    return text


def format_mixed(report: dict) -> str:
    """The mixed batches' report as aligned text."""
    o, m = report["options"], report["mixed"]
    if "error" in m:
        return f"Mixed batches: not measured ({m['error']})"
    method = bench_row(o["mixed_method"]).name
    what = (
        f"greedy generation of {o['target_length']} new tokens"
        if o["mixed_eval_mode"] == "generate"
        else "ranking the task's 2 labels"
    )
    lines = [
        f"Mixed batches on this machine: {o['model']} ({m['total_parameters']:,} parameters, random weights) in an "
        f"AdapterBank of {m['adapters']} {method} adapters ({m['trainable']:,} trained parameters each, random), "
        f"batch {o['mixed_batch_size']} x source {o['source_length']} (no padding), {what}, {o['device']} "
        f"{o['precision']}, {m['threads']} threads",
        f"{m['repetitions']} repetitions after {o['warmup']} warm-up x {o['rounds']} round(s), every arm once per "
        f"repetition (order reversed every other one); a ratio is the median over repetitions of the throughputs of "
        f"the pair ({o['clock']} time), [its interquartile range]",
        f"no adapter (an LN-only adapter with the base's own norms) {m['none_rows_per_second']:.2f} rows/s; one-task "
        f"batch (B rows of one adapter) {m['one_rows_per_second']:.2f} rows/s; one-task / no adapter "
        f"{_ratio(m['one_vs_none'])}",
        "",
    ]
    header = ["K", "mixed rows/s", "K batches rows/s", "mixed / one-task", "mixed / K batches", "rows as alone"]
    rows = [
        [
            str(entry["tasks"]),
            f"{entry['mixed_rows_per_second']:.2f}",
            f"{entry['split_rows_per_second']:.2f}",
            _ratio(entry["mixed_vs_one"]),
            _ratio(entry["mixed_vs_split"]),
            f"{m['checks']['rows'] - entry['mixed_differs_from_alone']}/{m['checks']['rows']}",
        ]
        for entry in m["tasks"]
    ]
    lines += text_table([header, *rows])
    changed = ", ".join(f"K={e['tasks']} {e['mixed_differs_from_one']}" for e in m["tasks"] if e["tasks"] > 1)
    lines += [
        "K = 1: the bank runs one adapter's rows through its own model, so that row is the one-task call timed "
        "twice: the spread of two identical calls here",
        f"rows as alone: rows whose output equals their adapter's alone (the K batches); the adapters are not "
        f"trivial: the one-task batch answers otherwise than no adapter in {m['checks']['one_differs_from_none']} "
        f"rows" + (f", and a mixed batch otherwise than the one-task batch in {changed} rows" if changed else ""),
    ]
    eos = {arm: n for arm, n in (m["checks"].get("rows_with_eos") or {}).items() if n}
    if eos:
        lines.append(
            "rows that generated EOS (a batch whose rows all did stops early): "
            + ", ".join(f"{arm} {n}" for arm, n in eos.items())
        )
    noisy = [str(e["tasks"]) for e in m["tasks"] if e["mixed_vs_one"].get("noisy") or e["mixed_vs_split"].get("noisy")]
    if noisy or m["one_vs_none"].get("noisy"):
        lines.append(
            f"warning: ratios marked ? spread over more than {NOISY_SPREAD:.0%} of their median: the machine's load "
            f"changed within the run; re-run with more --steps or --rounds, or with --clock cpu"
        )
    if o["device"] == "cpu":
        lines.append(
            "page faults per call (median; freed memory "
            + ("kept, as Table 3's timed steps keep it" if o["keep_freed_memory"] else "returned to the system")
            + "): "
            + ", ".join(f"{arm} {n:,.0f}" for arm, n in m["page_faults"].items())
        )
    for arm, profile in m["profiled"].items():
        regions = ", ".join(f"{name} {seconds:.3g} s" for name, seconds in sorted(profile["regions"].items()))
        lines.append(f"one profiled call, {arm}: {profile['seconds']:.3g} s; " + (regions or "no named regions"))
    return "\n".join(lines)
