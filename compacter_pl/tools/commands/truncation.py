"""The `truncation` command: per split of a task, how many examples `data.truncation` cuts and how many lose a
field entirely (every token of its value cut), in `end` mode and in `fields` mode, and which fields they lose.

Flow: the data module's own arguments (jsonargparse) -> the paper's splits of the data -> rendered sources ->
each tokenized whole once and cut both ways (compacter_pl.data.truncation). Nothing is cached or trained.

Examples (after the program: `python cli.py`, `compacter-pl`):

    truncation --data.task rte --data.data_dir DIR --data.tokenizer demo/tiny-t5
    truncation --data.task boolq --data.data_dir DIR --data.tokenizer demo/tiny-t5 \\
        --data.max_source_length 128
"""

from collections import Counter

from compacter_pl.config import OneLineErrorParser, program
from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.truncation import TRUNCATION_MODES, cut_sources, encode_whole, require_offsets
from compacter_pl.text_table import text_table


def truncation_report(data: TextToTextDataModule) -> dict:
    """Per split: examples, those longer than max_source_length (both modes cut exactly these), and per mode
    the examples that lose a field, the fields lost (an example may lose several) and, for `fields`, the
    examples cut at the end because the prefixes and EOS leave less than a token per field."""
    task, tokenizer = data.task, data.tokenizer
    require_offsets(tokenizer, f"`{program()} truncation`", "")
    splits: dict[str, dict] = {}
    for split, rendered in data.rendered_splits():
        examples = rendered[:]
        row: dict[str, object] = {"examples": len(examples["source"])}
        whole = encode_whole(tokenizer, examples["source"]) if examples["source"] else None  # once for both modes
        for mode in TRUNCATION_MODES:
            cuts = cut_sources(tokenizer, examples["source"], examples["spans"], data.max_source_length, mode, whole)
            row["truncated"] = sum(cut.truncated for cut in cuts)  # the same in both modes
            row[mode] = {
                "lose_a_field": sum(bool(cut.lost) for cut in cuts),
                "lost": dict(Counter(task.input_fields[i] for cut in cuts for i in cut.lost)),
                "cut_at_the_end": sum(cut.fell_back for cut in cuts),
            }
        splits[split] = row
    return {
        "task": task.name,
        "tokenizer": data.tokenizer_name,
        "max_source_length": data.max_source_length,
        "fields": list(task.input_fields),
        "splits": splits,
    }


def _losses(entry: dict) -> str:
    lost = ", ".join(f"{name} {count}" for name, count in entry["lost"].items())
    return f"{entry['lose_a_field']} ({lost})" if lost else str(entry["lose_a_field"])


def format_report(report: dict) -> str:
    header = ["split", "examples", "truncated", "end: lose a field", "fields: lose a field"]
    rows = [
        [split, str(row["examples"]), str(row["truncated"]), _losses(row["end"]), _losses(row["fields"])]
        for split, row in report["splits"].items()
    ]
    lines = [
        f"{report['task']} ({' '.join(f + ':' for f in report['fields'])}), tokenizer {report['tokenizer']}, "
        f"max_source_length {report['max_source_length']} (EOS included)"
    ]
    lines += text_table([header, *rows], "<>><<")
    lines.append(
        "truncated: examples longer than max_source_length (both modes cut the same ones); lose a field: "
        "examples left with no token of some field's value (per field in brackets)"
    )
    fell_back = sum(row["fields"]["cut_at_the_end"] for row in report["splits"].values())
    if fell_back:
        lines.append(
            f"fields mode cut {fell_back} examples at the end: the prefixes and EOS leave less than one "
            f"token per field at max_source_length {report['max_source_length']}"
        )
    return "\n".join(lines)


def build_parser():
    summary = __doc__.split(": ", 1)[1].split("\n\n")[0]
    parser = OneLineErrorParser(
        prog=f"{program()} truncation", see="truncation --help", description=summary[0].upper() + summary[1:]
    )
    # Both modes are reported, so data.truncation is no option here; the others are the data module's own.
    parser.add_class_arguments(TextToTextDataModule, "data", skip={"truncation"})
    return parser


def main(argv: list[str]) -> None:
    parser = build_parser()
    config = parser.parse_args(argv)
    data = parser.instantiate(config).data
    print(format_report(truncation_report(data)))
