"""Runs one worker process per method (and per round), collects their JSON, and makes the Table-3-style report.

Each method runs in a fresh `python -m compacter_pl.bench.worker`, one after another, so the peak resident memory
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

import torch

from compacter_pl.bench.beside_paper import add_paper_columns, paper_section, setting_words
from compacter_pl.bench.options import BenchOptions
from compacter_pl.bench.rows import FLOOR, REFERENCE, bench_row
from compacter_pl.bench.worker import resolve_device
from compacter_pl.errors import first_line
from compacter_pl.text_table import text_table

ROOT = Path(__file__).resolve().parents[2]
PADDING_TOKENIZER = ROOT / "demo" / "tiny-t5"  # the tokenizer that is there offline
MiB = 2**20
NOISY_SPREAD = 0.10  # pairs whose interquartile range exceeds 10% of their median ratio: too noisy to conclude


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
            [sys.executable, "-m", "compacter_pl.bench.worker", str(spec_path), str(out_path)],
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
    return [x / f for x, f in zip(_step_times(result, clock), _step_times(result, clock, "floor_"))]


def aggregate(key: str, results: list[dict], clock: str) -> dict:
    """One method's rounds -> its row of the report (before the ratios)."""
    row = bench_row(key)
    entry = {"key": key, "name": row.name}
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
            low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
            entry["step_vs_floor_paired_iqr_percent"] = [100.0 * (low - 1.0), 100.0 * (high - 1.0)]
            entry["noisy"] = (high - low) / statistics.median(ratios) > NOISY_SPREAD
        other = "cpu" if clock == "wall" else "wall"
        other_ratios = [ratio for r in good for ratio in paired_ratios(r, other)]
        if other_ratios:
            entry[f"step_vs_floor_paired_{other}_percent"] = 100.0 * (statistics.median(other_ratios) - 1.0)
    return entry


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
            entry[f"step_vs_{name}_percent"] = _percent(entry["step_seconds"], reference and reference["step_seconds"])
            entry[f"memory_vs_{name}_percent"] = _percent(
                entry["peak_memory_bytes"], reference and reference["peak_memory_bytes"]
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
    """Measure every requested method (`options.rounds` times each) and return the report."""
    options = replace(options, device=resolve_device(options.device))
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
    report = {
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
    from compacter_pl.bench.padding import padding_report

    try:
        return padding_report(options.data_dir, str(PADDING_TOKENIZER), batch_size=options.padding_batch_size)
    except Exception as error:  # a bad folder must not lose the measurements above
        return {"skipped": f"{type(error).__name__}: {first_line(error, '')}"}


# --- the text report --------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _split(entry: dict) -> str:
    total = entry["profiled_step_seconds"]
    own = sum(entry["region_seconds"].values())
    parts = ", ".join(f"{name} {seconds:.3g} s" for name, seconds in entry["region_seconds"].items())
    return f"{entry['name']} {parts} of {total:.3g} s ({100 * own / total:.1f}%; the rest {total - own:.3g} s)"


def format_report(report: dict) -> str:
    """Training (Table 3), evaluation and padding, as aligned text."""
    o, entries = report["options"], report["methods"]
    other = "cpu" if o["clock"] == "wall" else "wall"
    total = next((e["total_parameters"] for e in entries if "total_parameters" in e), None)
    threads = next((e["threads"] for e in entries if "threads" in e), None)
    lines = [
        f"Table 3 on this machine: {o['model']}"
        + (f" ({total:,} parameters)" if total else "")
        + f", batch {o['batch_size']} x source {o['source_length']} -> target {o['target_length']}, "
        f"{o['device']} {o['precision']}"
        + (f", {threads} threads" if threads else "")
        + (", gradient checkpointing" if o["gradient_checkpointing"] else "")
        + (", torch.compile" if o["compile"] else ""),
        f"step = forward + loss + backward + AdamW step; median {o['clock']} time of {o['steps']} steps after "
        f"{o['warmup']} warm-up x {o['rounds']} round(s); peak memory = "
        + ("allocator peak" if o["device"] == "cuda" else "peak resident set of a fresh process per method"),
        "step vs floor: "
        + (
            "the median ratio over steps alternating with an LN-only model in the same process "
            f"(paired: immune to the machine's drift between runs; floor s: that model's steps in the same pairs; "
            f"vs full FT: the two rows' paired ratios divided; ({other}): the same pairs in {other} time)"
            if o.get("pair_with_floor")
            else "the ratio of the two rows' step times"
        ),
        "",
    ]
    paired = any("floor_step_seconds" in e for e in entries)
    header = [
        "method",
        "trainable",
        "step s",
        *(["floor s"] if paired else []),
        "vs full FT",
        "vs floor",
        *([f"({other})"] if paired else []),
        "peak MiB",
        "vs full FT",
        "vs floor",
    ]
    rows, errors = [], []
    for e in entries:
        if "error" in e:
            errors.append(f"{e['name']}: not measured ({e['error']})")
            continue
        rows.append(
            [
                e["name"],
                f"{e['trainable']:,}",
                f"{e['step_seconds']:.3f}",
                *([_num(e.get("floor_step_seconds"), ".3f")] if paired else []),
                _pct(e["step_vs_full_percent"]),
                _pct(e["step_vs_floor_percent"]) + ("?" if e.get("noisy") else ""),
                *([_pct(e.get(f"step_vs_floor_paired_{other}_percent"))] if paired else []),
                f"{e['peak_memory_bytes'] / MiB:,.0f}",
                _pct(e["memory_vs_full_percent"]),
                _pct(e["memory_vs_floor_percent"]),
            ]
        )
    lines += text_table([header, *rows]) + errors
    lines += [f"{e['name']}: {e['note']}" for e in entries if e.get("note")]
    spreads = [
        f"{e['name']} {_pct(e['step_vs_floor_paired_iqr_percent'][0])}.."
        f"{_pct(e['step_vs_floor_paired_iqr_percent'][1])}"
        f" ({len(e['paired_step_ratios'])})"
        for e in entries
        if "step_vs_floor_paired_iqr_percent" in e
    ]
    if spreads:
        lines.append("step vs floor, interquartile range of single pairs (pairs): " + "; ".join(spreads))
    split = [_split(e) for e in entries if e.get("region_seconds")]
    if split:
        lines.append("one profiled step, the method's own layers beside the rest: " + "; ".join(split))
    noisy = [e["name"] for e in entries if e.get("noisy")]
    if noisy:
        lines.append(
            f"warning: the pairs of {', '.join(noisy)} (marked ?) spread over more than {NOISY_SPREAD:.0%} of their "
            f"median: the machine's load changed too much within the run to trust differences of that size; "
            f"re-run on an idle machine, with more --steps or --rounds, or with --clock cpu"
        )
    faults = [f"{e['name']} {e['step_page_faults']:,.0f}" for e in entries if e.get("step_page_faults") is not None]
    if faults and o["device"] == "cpu":
        lines.append(
            "page faults per timed step (the allocator "
            + (
                "keeps freed memory, as training runs do by default"
                if o.get("keep_freed_memory", True)
                else "returns freed memory to the system: --keep_freed_memory false"
            )
            + "): "
            + "; ".join(faults)
        )
    leaking = [e["name"] for e in entries if e.get("frozen_parameters_with_grad")]
    if leaking:
        lines.append(f"warning: frozen parameters received gradients with {', '.join(leaking)}")
    lines += format_beside_paper(paper_section(o, [e["key"] for e in entries]), entries)
    lines += [
        "",
        f"Evaluation (examples/s, batch {o['batch_size']}): generate = one greedy pass of at most "
        f"{o['target_length']} tokens; rank = log-likelihood of {o['num_labels']} labels of "
        f"{o['target_length']} tokens",
    ]
    eval_rows = [
        [
            e["name"],
            _num(e["eval_generate_examples_per_second"], ".2f"),
            _num(e["eval_rank_examples_per_second"], ".2f"),
            _num(e["eval_rank_examples_per_second"] / e["eval_generate_examples_per_second"], ".2f")
            if e["eval_rank_examples_per_second"] and e["eval_generate_examples_per_second"]
            else "n/a",
        ]
        for e in entries
        if "error" not in e
    ]
    lines += text_table([["method", "generate", "rank", "rank/generate"], *eval_rows])
    lines += ["", format_padding(report.get("padding") or {})]
    return "\n".join(lines)


def format_beside_paper(section: dict, entries: list[dict]) -> list[str]:
    """The measured rows the paper has, ours beside the paper's Table 3 recomputed against T5 fine-tuning, and
    what the paper's columns are (`section`: `beside_paper.paper_section`)."""
    rows = [
        [
            e["name"],
            f"{e['percent_trainable']:.3g}%",  # of the model and settings run
            e["paper_trained_printed"],
            _pct(e["step_vs_full_percent"]),
            _paper_pct(e["paper_time_vs_t5_percent"]),
            _pct(e["memory_vs_full_percent"]),
            _paper_pct(e["paper_memory_vs_t5_percent"]),
        ]
        for e in entries
        if "error" not in e and e.get("paper_trained_printed")
    ]
    if not rows:
        return []
    settings = setting_words(section["settings"])
    if section["differs"]:  # still shown, but the header says what the paper's columns are
        title = (
            f"Beside the paper's Table 3: the paper's columns are {section['model']} with Table 3's settings "
            f"({settings}); this run differs ({'; '.join(section['differs'])}), so they are not like with like"
        )
    else:
        title = f"Beside the paper's Table 3 ({section['model']}, {settings}, as run here): vs full fine-tuning"
    header = ["method", "trained", "paper trained", "time vs full FT", "paper time (vs T5)", "mem vs full FT"]
    lines = ["", title, *text_table([[*header, "paper mem (vs T5)"], *rows])]
    reference, example = section["reference"], section["printed_example"]
    lines.append(
        f"paper time / mem (vs T5): recomputed from Table 3's MB and minutes against T5 fine-tuning's "
        f"{reference['memory_mb']} MB and {reference['time_min']} min, as ours are against full fine-tuning; the "
        f"paper printed its time deltas that way but divided its memory deltas by each method's own memory "
        f"({bench_row(example['method']).name} printed {_paper_pct(example['memory_printed_percent'])}, "
        f"{_paper_pct(example['memory_vs_t5_percent'])} against T5 fine-tuning); the JSON keeps both"
    )
    mismatches = section["trained_mismatches"]
    if not mismatches:
        return [*lines, "trained: ours for the model and settings run; paper trained: as Table 3 prints it"]
    tables = " and ".join(dict.fromkeys(f"Table {m['printed_table']}'s" for m in mismatches))
    lines.append(
        f"paper trained: as Table 3 prints it, which repeats {tables} settings for "
        + " and ".join(f"{m['printed_is']}: {m['printed']}" for m in mismatches)
        + ", although Table 3 ran "
        + " and ".join(f"{m['ran']}: {m['ran_trained']} in Table {m['ran_table']}" for m in mismatches)
        + "; only ours is for the settings run"
    )
    return lines


def _paper_pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}%"  # two decimals, as Table 3 prints them


def format_padding(padding: dict) -> str:
    if not padding:
        return "Padding: not measured"
    if "skipped" in padding:
        return f"Padding: skipped, {padding['skipped']}"
    raw = padding.get("untruncated", {})
    text = (
        f"Padding ({padding['task'].upper()} train, {padding['examples']:,} examples from {padding['data_dir']}, "
        f"tokenizer {Path(padding['tokenizer']).name}, batch {padding['batch_size']}, {padding['epochs']} "
        f"epochs): at source length {padding['max_source_length']} (mean {padding['mean_length']:.0f} tokens, "
        f"{padding['truncated']:,} examples truncated) real tokens are {100 * padding['grouped']:.1f}% of the "
        f"batches' tokens with group_by_length, {100 * padding['ungrouped']:.1f}% without"
    )
    if raw:
        text += (
            f"; untruncated (mean {raw['mean_length']:.0f}, longest {raw['max_length']:,}) "
            f"{100 * raw['grouped']:.1f}% and {100 * raw['ungrouped']:.1f}%"
        )
    return text + (
        ". T5's own tokenizer (32,000 sentencepiece pieces, not available offline) splits text into far "
        "fewer tokens than a small demo tokenizer, so its lengths differ and truncate less."
    )


def write_json(report: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
