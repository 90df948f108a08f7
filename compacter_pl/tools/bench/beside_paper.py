"""The paper's side of `bench`: Table 3 (`compacter_pl.tools.paper`) beside our measurements, the same quantity on both
sides.

Table 3 prints its time deltas against T5 fine-tuning, (t - t_T5) / t_T5, but its memory deltas, despite its
caption, divided by each method's own memory, (m - m_T5) / m. Ours are against full fine-tuning, so the paper's
columns here are both recomputed from Table 3's absolute columns (MB, minutes) against T5 fine-tuning's row; the
printed deltas stay in the JSON under names that say so. Table 3's trainable-share column repeats Table 1's
settings for some methods (PHM-Adapter n 12, SAID d' 20K) rather than the ones it ran: the paper's own tables say
which, and our share is the one of the settings run.
"""

from __future__ import annotations

from compacter_pl.methods.registry import complete_init_args
from compacter_pl.tools.bench.rows import TABLE3_SETTINGS, bench_row
from compacter_pl.tools.paper import REFERENCE, matching_rows, paper, same_model

SETTING_WORDS = {  # how the report names each of Table 3's settings, in this order
    "bottleneck": "adapter size {:,}",
    "n": "n {:,}",
    "num_tokens": "{:,} prompt tokens",
    "intrinsic_dim": "d' {:,}",
}


def add_paper_columns(entries: list[dict]) -> None:
    """Each entry's row of Table 3: the deltas recomputed against T5 fine-tuning, the printed ones, the printed
    trained share (None where the paper has no row)."""
    efficiency = paper().efficiency
    for entry in entries:
        row = efficiency.row(entry["key"])
        entry["paper_time_vs_t5_percent"] = efficiency.time_delta(entry["key"])
        entry["paper_memory_vs_t5_percent"] = efficiency.memory_delta(entry["key"])
        entry["paper_time_printed_percent"] = None if row is None else row.time_delta_printed
        entry["paper_memory_printed_percent"] = None if row is None else row.memory_delta_printed  # (m - m_T5) / m
        entry["paper_trained_printed"] = None if row is None else row.trained


def setting_words(settings: dict) -> str:
    """`{"n": 4, "intrinsic_dim": 1400}` -> `n 4, d' 1,400` (an argument Table 3 does not set: `rank 2`)."""
    return ", ".join(
        SETTING_WORDS[name].format(value) if name in SETTING_WORDS and isinstance(value, int) else f"{name} {value}"
        for name, value in settings.items()
    )


def table3_words(settings: dict[str, dict] | None = None) -> str:
    """Table 3's settings across its methods (by key), each once: `adapter size 24, n 4, 100 prompt tokens,
    d' 1,400` (section 5.5)."""
    merged = {name: value for args in (settings or TABLE3_SETTINGS).values() for name, value in args.items()}
    order = {name: position for position, name in enumerate(SETTING_WORDS)}
    return setting_words(dict(sorted(merged.items(), key=lambda item: order.get(item[0], len(order)))))


def differences(options: dict, keys: list[str]) -> list[str]:
    """How this run differs from Table 3: its model, and each argument that a method of the paper among `keys` ran
    with another value than Table 3's (`options["settings"]`: the arguments by key; an argument Table 3 does not
    set is compared with the method's default), e.g. `n 8 for PHM-Adapter, Compacter (Table 3: 4)`. Empty: like
    with like."""
    efficiency = paper().efficiency
    found = [] if same_model(options["model"], efficiency.model) else [f"model {options['model']}"]
    changed: dict[tuple[str, str, str], list[str]] = {}  # (argument, ours, Table 3's) -> the methods' names
    for key in keys:
        if efficiency.row(key) is None:
            continue
        row = bench_row(key)
        table3 = {**complete_init_args(row.cls, row.init_args), **TABLE3_SETTINGS.get(key, {})}
        for name, value in (options["settings"].get(key) or {}).items():
            if value != table3.get(name):
                changed.setdefault((name, setting_words({name: value}), _shown(table3.get(name))), []).append(row.name)
    return found + [
        f"{ours} for {', '.join(names)} (Table 3: {theirs})" for (_, ours, theirs), names in changed.items()
    ]


def _shown(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _rows_of(method: str, model: str) -> list:
    """Every score row of `method` on `model`, with its table, in table order."""
    return [(t, r) for t in paper().scores if same_model(t.model, model) for r in t.rows if r.method == method]


def trained_mismatches(keys: list[str]) -> list[dict]:
    """The rows of `keys` whose printed share in Table 3 is not the share of the settings Table 3 ran (by the
    paper's own score tables), with the row the printed share belongs to."""
    efficiency = paper().efficiency
    found = []
    for key in keys:
        row = efficiency.row(key)
        if row is None or not row.args:
            continue
        entry = bench_row(key)
        arguments = complete_init_args(entry.cls, {**entry.init_args, **row.args})  # what Table 3 ran
        ran = matching_rows(key, arguments, efficiency.model, "GLUE")
        printed = row.trained_percent
        if not ran or any(r.trained_percent == printed for _, r in ran):
            continue
        source = next(((t, r) for t, r in _rows_of(key, efficiency.model) if r.trained_percent == printed), None)
        if source is None:
            continue
        (ran_table, ran_row), (source_table, source_row) = ran[0], source
        found.append(
            {
                "method": key,
                "printed": row.trained,
                "printed_is": source_row.label(),
                "printed_table": source_table.number,
                "ran": ran_row.label(),
                "ran_trained": ran_row.trained,
                "ran_table": ran_table.number,
            }
        )
    return found


def paper_section(options: dict, keys: list[str]) -> dict:
    """What the report's paper columns are and how the printed ones were computed (the JSON's `paper`)."""
    efficiency = paper().efficiency
    reference = efficiency.reference
    example = next(r for r in efficiency.rows if r.memory_delta_printed is not None)
    return {
        "source": efficiency.source,
        "model": efficiency.model,
        "setup": efficiency.setup,
        "settings": TABLE3_SETTINGS,
        "differs": differences(options, keys),
        "reference": {"method": REFERENCE, "memory_mb": reference.memory_mb, "time_min": reference.time_min},
        "recomputed": "paper_time_vs_t5_percent, paper_memory_vs_t5_percent: (x - x_T5) / x_T5 from Table 3's MB "
        "and minutes, against T5 fine-tuning as ours are against full fine-tuning",
        "printed": "paper_time_printed_percent: (t - t_T5) / t_T5; paper_memory_printed_percent: (m - m_T5) / m, "
        "divided by each method's own memory (not as Table 3's caption says)",
        "printed_example": {
            "method": example.method,
            "memory_printed_percent": example.memory_delta_printed,
            "memory_vs_t5_percent": efficiency.memory_delta(example.method),
        },
        "trained": "percent_trainable: ours, for the settings run; paper_trained_printed: Table 3's column as "
        "printed (see trained_mismatches)",
        "trained_mismatches": trained_mismatches(keys),
    }
