"""The bench's report as aligned text: Table 3 on this machine, the paper's Table 3 beside it, evaluation throughput
and the padding of training batches."""

from __future__ import annotations

from pathlib import Path

from compacter_pl.text_table import text_table
from compacter_pl.tools.bench.beside_paper import paper_section, table3_words
from compacter_pl.tools.bench.rows import bench_row

MiB = 2**20
NOISY_SPREAD = 0.10  # pairs whose interquartile range exceeds 10% of their median ratio: too noisy to conclude


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
    """Training (Table 3), evaluation and padding, as aligned text (a report of --mixed: its own)."""
    if "mixed" in report:
        from compacter_pl.tools.bench.mixed import format_mixed

        return format_mixed(report)
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
    settings = table3_words(section["settings"])
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
