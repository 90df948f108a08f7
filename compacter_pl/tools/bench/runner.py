"""Runs one worker process per method (and per round), collects their JSON, and makes the Table-3-style report
(its text: `text.py`).

Each method runs in a fresh `python -m compacter_pl.tools.bench.worker`, one after another, so the peak resident memory
of a process is that method's alone and no method warms a cache for the next. With several rounds the order is
reversed every other round, so a slow drift of the machine's load does not favour the methods run first. Step
times are the median over every measured step of every round; memory and evaluation numbers the median over
rounds. Ratios are computed from those medians, so they can be checked against the printed numbers.

CPU memory is the resident set, and glibc keeps freed blocks below its (adaptive) mmap threshold in its heap,
where fragmentation inflates the resident set by hundreds of MiB at random. Workers therefore take their memory
peak over two steps run with a low, fixed mmap threshold (256 KiB by default), so freed activations go back to
the system and the peak is what the method needs; then they time their steps keeping freed memory for the next
step, as training runs do (`compacter_pl.host_memory`), so the timed steps pay no page faults a run does not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from compacter_pl.data.sources import LOAD_DATASET_ERRORS
from compacter_pl.errors import UserError, first_line
from compacter_pl.files import write_atomically
from compacter_pl.tools.bench.beside_paper import add_paper_columns, paper_section
from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.rows import FLOOR, bench_row
from compacter_pl.tools.bench.text import NOISY_SPREAD, MiB, format_report
from compacter_pl.tools.bench.worker import resolve_device
from compacter_pl.tools.paper import REFERENCE  # Table 3: relative to T5 fine-tuning

__all__ = [
    "MiB",
    "add_ratios",
    "aggregate",
    "format_report",
    "paired_ratios",
    "run_bench",
    "run_worker",
    "spread",
    "write_json",
]

ROOT = Path(__file__).resolve().parents[3]
PADDING_TOKENIZER = ROOT / "demo" / "tiny-t5"  # the tokenizer that is there offline


def _worker_env(options: BenchOptions) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if options.clock == "cpu":  # idle OpenMP threads sleep instead of spinning, so CPU time counts work only
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(options: BenchOptions, key: str, workdir: Path) -> dict:
    """Method `key` measured in a fresh process; its result, or {"error": ...} with the last line it printed."""
    spec_path, out_path = workdir / f"{key}.spec.json", workdir / f"{key}.out.json"
    spec_path.write_text(json.dumps({"key": key, "options": asdict(options)}))
    out_path.unlink(missing_ok=True)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "compacter_pl.tools.bench.worker", str(spec_path), str(out_path)],
            env=_worker_env(options),
            capture_output=True,
            text=True,
            timeout=options.timeout,
        )
    except subprocess.TimeoutExpired:
        return {"key": key, "error": f"timed out after {options.timeout:.0f} s"}
    if out_path.exists():
        return json.loads(out_path.read_text())
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit code {process.returncode}"
    if process.returncode < 0:
        last = f"killed by signal {-process.returncode} (out of memory?)"
        return {"key": key, "error": last, "killed": True}
    return {"key": key, "error": last}


def _percent(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return 100.0 * (value / reference - 1.0)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def paired_ratios(result: dict, clock: str = "wall") -> list[float]:
    """A worker's step times over the floor's, pair by pair (empty when it ran unpaired)."""
    floors = _step_times(result, clock, "floor_")  # none when it ran unpaired
    return [x / f for x, f in zip(_step_times(result, clock), floors, strict=bool(floors))]


def aggregate(key: str, results: list[dict], clock: str) -> dict:
    """One method's rounds -> its row of the report (before the ratios)."""
    row = bench_row(key)
    entry: dict[str, Any] = {"key": key, "name": row.name}  # JSON: numbers, lists and mappings by name
    good = [r for r in results if "error" not in r]
    if not good:
        entry["error"] = results[0]["error"] if results else "not run"
        return entry
    steps = [t for r in good for t in r["step_seconds_all"]]
    entry.update(
        {
            "trainable": good[0]["trainable"],
            "total_parameters": good[0]["total_parameters"],
            "percent_trainable": 100.0 * good[0]["trainable"] / good[0]["total_parameters"],
            "step_seconds_wall": statistics.median(steps),
            "step_seconds_cpu": statistics.median(r["step_cpu_seconds"] for r in good),
            "steps_measured": len(steps),
            "peak_memory_bytes": int(statistics.median(r["peak_memory_bytes"] for r in good)),
            "memory_after_build_bytes": int(statistics.median(r["memory_after_build_bytes"] for r in good)),
            "frozen_parameters_with_grad": max(r["frozen_parameters_with_grad"] for r in good),
            "eval_generate_examples_per_second": _median([r["eval_generate_examples_per_second"] for r in good]),
            "eval_rank_examples_per_second": _median([r["eval_rank_examples_per_second"] for r in good]),
            "threads": good[0]["threads"],
            "step_page_faults": _median([r.get("step_page_faults") for r in good]),
            "floor_step_page_faults": _median([r.get("floor_step_page_faults") for r in good]),
        }
    )
    profiled = [r for r in good if "profiled_step_seconds" in r]
    if profiled:  # the profiled step of each round: the method's regions and the rest of the step
        entry["profiled_step_seconds"] = statistics.median(r["profiled_step_seconds"] for r in profiled)
        names = sorted({name for r in profiled for name in r["region_seconds"]})
        entry["region_seconds"] = {
            n: statistics.median(r["region_seconds"].get(n, 0.0) for r in profiled) for n in names
        }
    notes = sorted({r["note"] for r in good if r.get("note")})
    if notes:
        entry["note"] = "; ".join(notes)
    entry["step_seconds"] = entry[f"step_seconds_{clock}"]
    ratios = [ratio for r in good for ratio in paired_ratios(r, clock)]
    if ratios:  # the step time, the floor's and their ratio all from the same pairs of steps
        entry["step_seconds"] = statistics.median(t for r in good for t in _step_times(r, clock))
        entry["floor_step_seconds"] = statistics.median(t for r in good for t in _step_times(r, clock, "floor_"))
        entry["paired_step_ratios"] = ratios
        entry["step_vs_floor_paired_percent"] = 100.0 * (statistics.median(ratios) - 1.0)
        if len(ratios) >= 2:  # the spread of single pairs: how much one step's ratio says on this machine
            low, high, entry["noisy"] = spread(ratios)
            entry["step_vs_floor_paired_iqr_percent"] = [100.0 * (low - 1.0), 100.0 * (high - 1.0)]
        other = "cpu" if clock == "wall" else "wall"
        other_ratios = [ratio for r in good for ratio in paired_ratios(r, other)]
        if other_ratios:
            entry[f"step_vs_floor_paired_{other}_percent"] = 100.0 * (statistics.median(other_ratios) - 1.0)
    return entry


def spread(ratios: list[float]) -> tuple[float, float, bool]:
    """The interquartile range of paired ratios (two or more), and whether it is wider than NOISY_SPREAD of their
    median: how much a single pair says on this machine."""
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return low, high, (high - low) / statistics.median(ratios) > NOISY_SPREAD


def _step_times(result: dict, clock: str, prefix: str = "") -> list[float]:
    return result.get(f"{prefix}step{'' if clock == 'wall' else '_cpu'}_seconds_all", [])


def add_ratios(entries: list[dict]) -> None:
    """Step time and peak memory relative to full fine-tuning and to the LN-only floor, in % (Table 3's way), and
    the paper's Table 3 row beside them (`beside_paper.add_paper_columns`)."""
    add_paper_columns(entries)
    by_key = {e["key"]: e for e in entries if "error" not in e}
    for entry in entries:
        if "error" in entry:
            continue
        for name, reference in (("full", by_key.get(REFERENCE)), ("floor", by_key.get(FLOOR.key))):
            entry[f"step_vs_{name}_percent"] = _percent(
                entry["step_seconds"], None if reference is None else reference["step_seconds"]
            )
            entry[f"memory_vs_{name}_percent"] = _percent(
                entry["peak_memory_bytes"], None if reference is None else reference["peak_memory_bytes"]
            )
        entry["step_vs_floor_separate_percent"] = entry["step_vs_floor_percent"]
        if "step_vs_floor_paired_percent" in entry:  # steps alternating in one process beat runs minutes apart
            entry["step_vs_floor_percent"] = entry["step_vs_floor_paired_percent"]
        full = by_key.get(REFERENCE)
        full_ratio = _paired_ratio(full) if full else None
        own_ratio = 1.0 if entry["key"] == FLOOR.key else _paired_ratio(entry)
        if full_ratio and own_ratio:  # both paired with the floor: method / full = (method / floor) / (full / floor)
            entry["step_vs_full_percent"] = 100.0 * (own_ratio / full_ratio - 1.0)


def _paired_ratio(entry: dict) -> float | None:
    percent = entry.get("step_vs_floor_paired_percent")
    return None if percent is None else 1.0 + percent / 100.0


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_bench(options: BenchOptions, progress=None) -> dict:
    """Measure every requested method (`options.rounds` times each) and return the report; with `options.mixed`,
    the mixed batches (`mixed.run_mixed`)."""
    options = replace(options, device=resolve_device(options.device))
    if options.mixed:
        from compacter_pl.tools.bench.mixed import run_mixed

        return run_mixed(options, progress)
    keys = options.keys
    results: dict[str, list[dict]] = {k: [] for k in keys}
    with tempfile.TemporaryDirectory(prefix="compacter-bench-") as workdir:
        done = 0
        for round_index in range(options.rounds):
            for key in keys if round_index % 2 == 0 else reversed(keys):
                result = run_worker(options, key, Path(workdir))
                if result.get("killed") and options.device == "cpu" and options.malloc_mmap_threshold:
                    # An allocation pattern that fragments glibc's heap can grow it without bound unless freed
                    # blocks are unmapped at once (Intrinsic-SAID's Fastfood projections on t5-base outgrew
                    # 24 GiB, kept or returned at glibc's usual thresholds): measure it that way, and say so.
                    retry = replace(options, keep_freed_memory=False, low_threshold_throughout=True)
                    result = run_worker(retry, key, Path(workdir))
                    result["note"] = (
                        f"ran out of memory with freed memory kept; measured with glibc's mmap "
                        f"threshold at {options.malloc_mmap_threshold:,} bytes throughout, so its steps "
                        f"include page faults"
                    )
                results[key].append(result)
                done += 1
                if progress:
                    progress(done, options.rounds * len(keys), result)
    entries = [aggregate(key, results[key], options.clock) for key in keys]
    add_ratios(entries)
    report: dict[str, Any] = {
        "options": {**asdict(options), "settings": options.settings},
        "machine": machine_info(options.device),
        "methods": entries,
    }
    report["paper"] = paper_section(report["options"], keys)
    report["padding"] = padding_section(options)
    return report


def padding_section(options: BenchOptions) -> dict:
    """The real-token share of RTE training batches, or why it was skipped."""
    if not options.data_dir:
        return {"skipped": "no RTE data given (--data_dir DIR with train and validation files in the Hub's schema)"}
    if not Path(options.data_dir).is_dir():
        return {"skipped": f"no RTE data at {options.data_dir}"}
    from compacter_pl.tools.bench.padding import padding_report

    try:
        return padding_report(options.data_dir, str(PADDING_TOKENIZER), batch_size=options.padding_batch_size)
    except (UserError, *LOAD_DATASET_ERRORS) as error:  # a bad folder must not lose the measurements above
        return {"skipped": f"{type(error).__name__}: {first_line(error, '')}"}


def write_json(report: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(report, indent=2))
