"""`data.truncation`: `end` cuts the end of the tokenized source (the paper's, today's token ids); `fields` shortens
the longest field value first so every field keeps some tokens. And `python cli.py truncation`, which counts per
split how many examples each mode cuts and how many lose a field entirely. All on the tiny demo tokenizer (a small
vocabulary: its sources are longer in tokens than T5's)."""

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from compacter_pl.cli import main
from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.datamodule import SPLITS, paper_splits, render
from compacter_pl.data.truncation import cut_sources, source_ids, value_of_tokens, water_fill
from compacter_pl.errors import UserError
from compacter_pl.hub import load_tokenizer
from compacter_pl.tasks import get_task
from tests.helpers import DEMO_DATA, DEMO_MODEL, run_cli

EOS = 1  # the demo tokenizer's </s>


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(DEMO_MODEL))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def module(tmp_path, task="rte", **kwargs) -> TextToTextDataModule:
    args = dict(task=task, tokenizer=str(DEMO_MODEL), data_dir=str(DEMO_DATA / task), cache_dir=str(tmp_path))
    return TextToTextDataModule(**{**args, **kwargs})


def split_ids(dm: TextToTextDataModule) -> dict[str, list[list[int]]]:
    dm.setup("fit")
    return {split: dm.splits[split]["input_ids"][:] for split in SPLITS}


def fingerprint(ids) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


# --- end: the paper's truncation, token for token what the data module made before the option existed -----

# sha256 of {train, validation, test} input ids from the data module before data.truncation was added
BEFORE = {("rte", 48): "7763940f221712e2", ("boolq", 64): "73a0003f85a85db5"}


@pytest.mark.parametrize("task,length", sorted(BEFORE))
def test_end_mode_gives_exactly_the_token_ids_of_before(tmp_path, task, length):
    ids = split_ids(module(tmp_path, task, max_source_length=length, truncation="end"))
    assert fingerprint(ids) == BEFORE[task, length]
    assert any(len(row) == length for rows in ids.values() for row in rows)  # some sources were cut
    default = module(tmp_path / "default", task, max_source_length=length)
    assert default.truncation == "end" and fingerprint(split_ids(default)) == BEFORE[task, length]


# --- fields: water-filling over the field values -------------------------------------------------------------


def water_fill_by_hand(lengths: list[int], available: int) -> list[int]:
    """The rule as the docs say it: drop one token from the currently longest value (the later one of equals)."""
    kept = list(lengths)
    while sum(kept) > available:
        longest = max(kept)
        kept[max(i for i, n in enumerate(kept) if n == longest)] -= 1
    return kept


def test_water_fill_trims_the_longest_value_first_as_the_rule_says():
    rng = random.Random(0)
    for _ in range(2000):
        lengths = [rng.choice([0, 1, 2, 5, 30, 200]) + rng.randrange(4) for _ in range(rng.randint(1, 4))]
        available = rng.randint(0, sum(lengths) + 3)
        nonempty = sum(n > 0 for n in lengths)
        if available < nonempty and sum(lengths) > available:
            assert water_fill(lengths, available) is None  # some field would lose its value: end mode's cut
        else:
            assert water_fill(lengths, available) == water_fill_by_hand(lengths, available), (lengths, available)
    assert water_fill([100, 5], 40) == [35, 5]  # a short hypothesis stays whole
    assert water_fill([30, 30], 41) == [21, 20]  # equals: the later field gives up the odd token


def test_a_token_straddling_a_prefix_is_never_cut():
    source, spans = "a: xy b: z", ((3, 5), (9, 10))
    offsets = [(0, 1), (1, 4), (4, 5), (4, 4), (2, 4), (5, 7), (7, 10), (0, 0)]
    special = [0, 0, 0, 0, 0, 0, 0, 1]
    # ": x" holds the colon: template; " x" only a space besides the value: the value's; EOS: special
    assert value_of_tokens(source, spans, offsets, special) == [None, None, 0, 0, 0, None, None, None]


def rte_sources(*pairs):
    task = get_task("rte")
    rendered = [task.rendered({"sentence1": a, "sentence2": b}) for a, b in pairs]
    return [source for source, _ in rendered], [spans for _, spans in rendered]


LONG = " ".join(["The old man painted a red house in Paris."] * 8)  # 217 demo tokens with EOS
SHORT = "The cat sat."


def assert_every_field_kept(task, source, spans, ids, length, tokenizer):
    """Order, prefixes and a non-empty start of every value survive; the source fits, EOS included."""
    assert len(ids) == length and ids[-1] == EOS
    text = tokenizer.decode(ids, skip_special_tokens=True)
    pattern = "^" + " ".join(f"{re.escape(name)}: (.+?)" for name in task.input_fields) + "$"
    match = re.match(pattern, text)
    assert match, text
    for kept, (start, end) in zip(match.groups(), spans, strict=True):
        assert source[start:end].startswith(kept.strip()) and kept.strip(), (kept, source[start:end])


def test_fields_mode_keeps_every_field_its_prefix_and_order_and_fits(tokenizer):
    task = get_task("rte")
    sources, spans = rte_sources((LONG, SHORT), (SHORT, LONG), (LONG, LONG), (LONG + " " + LONG, "No."))
    for length in (11, 12, 16, 48, 128):
        for source, value_spans, ids in zip(
            sources, spans, source_ids(tokenizer, sources, spans, length, "fields"), strict=True
        ):
            assert_every_field_kept(task, source, value_spans, ids, length, tokenizer)
    end = source_ids(tokenizer, sources, spans, 48, "end")
    assert "sentence2" not in tokenizer.decode(end[0])  # what end mode does to the first one


def test_fields_mode_water_fills_the_values(tokenizer):
    sources, spans = rte_sources((LONG, SHORT), (SHORT, LONG), (LONG, LONG))
    long_first, long_second, both = cut_sources(tokenizer, sources, spans, 64, "fields")
    short = long_first.value_tokens[1]  # SHORT as a value: 9 demo tokens (its leading space is the template's)
    fixed = 64 - sum(long_first.kept)  # the prefixes, the joining spaces and EOS
    assert (short, fixed) == (9, 9) and long_second.value_tokens[0] == short
    assert long_first.kept == (64 - fixed - short, short) and long_second.kept == (short, 64 - fixed - short)
    assert both.kept == ((64 - fixed + 1) // 2, (64 - fixed) // 2)
    for cut in (long_first, long_second, both):
        assert cut.truncated and not cut.fell_back and len(cut.input_ids) == 64


def test_a_source_that_fits_is_tokenized_exactly_as_in_end_mode(tokenizer):
    sources, spans = rte_sources((SHORT, SHORT), ("A dog ran.", "It rained."), (LONG, SHORT))
    whole = tokenizer(sources)["input_ids"]
    length = max(len(ids) for ids in whole)  # every source fits
    assert (
        source_ids(tokenizer, sources, spans, length, "fields")
        == whole
        == source_ids(tokenizer, sources, spans, length, "end")
    )
    cuts = cut_sources(tokenizer, sources, spans, length, "fields")
    assert [cut.truncated for cut in cuts] == [False] * 3 and all(c.kept == c.value_tokens for c in cuts)


def test_when_the_prefixes_leave_no_token_per_field_fields_mode_cuts_the_end(tokenizer):
    sources, spans = rte_sources((LONG, SHORT), (SHORT, LONG))
    for length in (4, 9, 10):  # RTE's prefixes and EOS are 9 demo tokens: 11 is the least that keeps both
        fields = cut_sources(tokenizer, sources, spans, length, "fields")
        assert [cut.input_ids for cut in fields] == source_ids(tokenizer, sources, spans, length, "end")
        assert all(cut.fell_back and cut.kept[1] == 0 for cut in fields)


def test_fields_mode_on_the_demo_splits_keeps_every_field(tmp_path, tokenizer):
    task = get_task("rte")
    dm = module(tmp_path, max_source_length=48, truncation="fields")
    fields, end = split_ids(dm), split_ids(module(tmp_path, max_source_length=48))
    raw = paper_splits(task, str(DEMO_DATA / "rte"), None, 42, None, 42)
    cut = 0
    for split in SPLITS:
        examples = render(task, raw[split], split == "train", split)[:]
        whole = tokenizer(examples["source"])["input_ids"]
        for source, spans, full, kept, ended in zip(
            examples["source"], examples["spans"], whole, fields[split], end[split], strict=True
        ):
            if len(full) <= 48:
                assert kept == full == ended
            else:
                cut += 1
                assert_every_field_kept(task, source, spans, kept, 48, tokenizer)
    assert cut == 358  # of 800 demo examples longer than 48 tokens (another 60 are exactly 48 long)


def test_the_cache_tells_the_modes_apart(tmp_path):
    end, fields = module(tmp_path, max_source_length=48), module(tmp_path, max_source_length=48, truncation="fields")
    assert end.cache_path != fields.cache_path
    assert module(tmp_path, max_source_length=48, truncation="end").cache_path == end.cache_path
    fields.prepare_data()
    assert (fields.cache_path / "meta.json").exists() and not end.cache_path.exists()


def test_an_unknown_mode_is_a_user_error():
    with pytest.raises(UserError, match=r"truncation must be one of end, fields; got 'middle'"):
        TextToTextDataModule(truncation="middle")


def test_a_slow_tokenizer_in_fields_mode_names_the_option(tmp_path):
    from transformers import CanineTokenizer  # a Python tokenizer: no character offsets

    CanineTokenizer().save_pretrained(tmp_path / "slow")
    dm = module(tmp_path, tokenizer=str(tmp_path / "slow"), truncation="fields")
    with pytest.raises(UserError, match=r"fast tokenizer.*--data\.truncation end") as error:
        dm.prepare_data()
    assert "\n" not in str(error.value)
    slow_end = module(tmp_path, tokenizer=str(tmp_path / "slow"), max_source_length=32)
    slow_end.prepare_data()  # end mode needs no offsets


def predicted_ids(dm) -> list[list[int]]:
    rows = []
    for batch in dm.predict_dataloader():
        rows += [
            ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]
    return rows


def test_predict_file_inputs_are_cut_by_the_same_mode(tmp_path, tokenizer):
    pairs = [(LONG, SHORT), (SHORT, SHORT), (SHORT, LONG)]
    inputs = write_jsonl(tmp_path / "inputs.jsonl", [{"sentence1": a, "sentence2": b} for a, b in pairs])
    sources, spans = rte_sources(*pairs)
    for mode in ("end", "fields"):
        dm = module(tmp_path, max_source_length=32, truncation=mode, predict_file=str(inputs))
        assert predicted_ids(dm) == source_ids(tokenizer, sources, spans, 32, mode), mode
    fields = module(tmp_path, max_source_length=32, truncation="fields", predict_file=str(inputs))
    assert "sentence2: The" in tokenizer.decode(predicted_ids(fields)[0])
    end = module(tmp_path, max_source_length=32, predict_file=str(inputs))
    assert predicted_ids(end) == tokenizer(sources, max_length=32, truncation=True)["input_ids"]


# --- python cli.py truncation -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory) -> Path:
    """RTE records whose fate at 64 demo tokens is plain: a short pair fits (about 20 tokens), a LONG value does
    not. Train: 3 short, 2 with a long premise (end mode loses the hypothesis), 1 with a long hypothesis (end
    mode keeps part of it). Validation: 4 with a long premise, halved into validation and test (2 each)."""
    root = tmp_path_factory.mktemp("hand_made")
    pairs = [
        (SHORT, "A dog ran."),
        ("It rained.", "It was wet."),
        ("A man sang.", "He sang."),
        (LONG, "A man painted."),
        (LONG, "Paris."),
        ("He painted.", LONG),
    ]
    write_jsonl(
        root / "train.jsonl",
        [{"sentence1": a, "sentence2": b, "label": i % 2, "idx": i} for i, (a, b) in enumerate(pairs)],
    )
    write_jsonl(
        root / "validation.jsonl",
        [{"sentence1": LONG, "sentence2": f"Case {i}.", "label": i % 2, "idx": i} for i in range(4)],
    )
    return root


def truncation_cli(capsys, *args) -> str:
    main(["truncation", "--data.task", "rte", "--data.tokenizer", str(DEMO_MODEL), *args])
    return capsys.readouterr().out


def table_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in SPLITS:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_command_counts_what_each_mode_cuts_and_loses(capsys, hand_made):
    out = truncation_cli(capsys, "--data.data_dir", str(hand_made), "--data.max_source_length", "64")
    assert "rte" in out and "max_source_length 64" in out and "tiny-t5" in out
    # split: examples, truncated (both modes), end mode: lose a field, fields mode: lose a field
    assert table_rows(out) == {
        "train": ["6", "3", "2 (sentence2 2)", "0"],
        "validation": ["2", "2", "2 (sentence2 2)", "0"],
        "test": ["2", "2", "2 (sentence2 2)", "0"],
    }


def test_the_command_reports_where_fields_mode_falls_back_to_the_end(capsys, hand_made):
    out = truncation_cli(capsys, "--data.data_dir", str(hand_made), "--data.max_source_length", "9")
    assert table_rows(out) == {
        "train": ["6", "6", "6 (sentence2 6)", "6 (sentence2 6)"],
        "validation": ["2", "2", "2 (sentence2 2)", "2 (sentence2 2)"],
        "test": ["2", "2", "2 (sentence2 2)", "2 (sentence2 2)"],
    }
    assert re.search(r"fields mode cut 10 examples at the end", out), out


def test_the_command_reads_the_task_default_length(capsys, hand_made):
    out = truncation_cli(capsys, "--data.data_dir", str(hand_made))
    assert "max_source_length 128" in out
    assert table_rows(out)["train"] == ["6", "3", "2 (sentence2 2)", "0"]  # LONG is 217 demo tokens


def test_a_typo_in_the_command_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["truncation", "--data.tsk", "rte"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data.tsk" in errors[0] and "did you mean 'data.task'" in errors[0], err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_command_runs_from_the_shell(hand_made):
    result = run_cli(
        "truncation",
        "--data.task",
        "rte",
        "--data.data_dir",
        str(hand_made),
        "--data.tokenizer",
        str(DEMO_MODEL),
        "--data.max_source_length",
        "64",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert table_rows(result.stdout)["train"] == ["6", "3", "2 (sentence2 2)", "0"]
    help_text = run_cli("truncation", "--help").stdout
    assert "--data.max_source_length" in help_text and "lose a field" in help_text
