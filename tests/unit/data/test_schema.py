"""Records are checked against their task's declared schema by every loader (JSON Lines, JSON, CSV, parquet, the
Hub) before anything is rendered: each violation, in each format that can hold it, is one UserError naming the
file and its line (JSON Lines) or row, the field, what it holds and what the task expects; a CSV that flattened a
list or an object says so. Two files for one split are refused, and `predict`'s raw inputs are checked too."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compacter_pl.data import sources
from compacter_pl.data.predict_inputs import read_predict_file
from compacter_pl.data.sources import load_hub_split, load_local_split
from compacter_pl.errors import UserError
from compacter_pl.tasks import get_task
from tests.helpers import DEMO_DATA

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")
ALL = (*FILE_FORMATS, "hub")
CSV_HINT = " (a CSV file flattens lists and objects to text: use JSON Lines or parquet)"
CB_CLASSES = "a class id of cb (0 entailment, 1 contradiction, 2 neutral)"
MULTIRC_IDX = "an object of integers paragraph, question and answer"


def demo_records(task: str, n: int = 8) -> list[dict]:
    lines = (DEMO_DATA / get_task(task).hub_config / "train.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:n]]


def changed(row: int | None, **values) -> Callable[[list[dict]], list[dict]]:
    """The records with `values` set in record `row` (from 0), or in every record (None)."""
    return lambda records: [dict(r, **values) if row in (None, i) else r for i, r in enumerate(records)]


def unchanged(records: list[dict]) -> list[dict]:
    return records


@dataclass
class Case:
    task: str
    change: Callable[[list[dict]], list[dict]]
    row: int  # the first record that does not fit, from 0
    message: str  # what follows `<file>, line|row N: `
    formats: tuple[str, ...] = ALL


def map_label(names: tuple[str, ...]):
    return lambda records: [dict(r, label=names[r["label"]]) for r in records]


CASES = {
    "label_outside_the_classes": Case("cb", changed(2, label=3), 2, f"field label is 3, expected {CB_CLASSES}"),
    "label_not_a_whole_number": Case("cb", changed(2, label=1.5), 2, f"field label is 1.5, expected {CB_CLASSES}"),
    "label_missing": Case("cb", changed(2, label=None), 2, f"field label is empty, expected {CB_CLASSES}"),
    "label_as_class_name": Case(
        "cb",
        map_label(("entailment", "contradiction", "neutral")),
        0,
        f"field label is a string, expected {CB_CLASSES}",
    ),
    "label_as_boolean": Case(  # the original SuperGLUE BoolQ files write true / false
        "boolq",
        map_label((False, True)),
        0,
        "field label is a boolean, expected a class id of boolq (0 False, 1 True)",
    ),
    "score_outside_0_to_5": Case(
        "stsb", changed(2, label=5.6), 2, "field label is 5.6, expected a similarity score from 0 to 5"
    ),
    "text_missing": Case("cb", changed(2, premise=None), 2, "field premise is empty, expected a string"),
    "text_as_number_in_one_record": Case(
        "cb", changed(2, premise=7), 2, "field premise is an integer, expected a string", ("jsonl", "json")
    ),
    "list_as_string": Case(
        "record",
        changed(None, answers="Sara Lind"),
        0,
        "field answers is a string, expected a list of strings",
        ("jsonl", "json", "parquet", "hub"),
    ),
    "list_as_string_in_one_record": Case(
        "record",
        changed(2, answers="Sara Lind"),
        2,
        "field answers is a string, expected a list of strings",
        ("jsonl", "json"),
    ),
    "list_of_numbers": Case(
        "record",
        changed(None, entities=[1, 2]),
        0,
        "field entities is a list holding an integer, expected a list of strings",
        ("jsonl", "json", "parquet", "hub"),
    ),
    "list_with_an_empty_item": Case(
        "record",
        changed(2, entities=["Lyon", None]),
        2,
        "field entities is a list with an empty item, expected a list of strings",
        ("jsonl", "json", "parquet", "hub"),
    ),
    "object_as_integer": Case("multirc", changed(None, idx=5), 0, f"field idx is an integer, expected {MULTIRC_IDX}"),
    "object_without_a_key": Case(
        "multirc",
        lambda records: [dict(r, idx={"paragraph": 0, "answer": i}) for i, r in enumerate(records)],
        0,
        f"field idx is an object without question, expected {MULTIRC_IDX}",
        ("jsonl", "json", "parquet", "hub"),
    ),
    # any CSV export of ReCoRD or MultiRC: the lists and objects become their printed text
    "record_exported_to_csv": Case(
        "record", unchanged, 0, f"field entities is a string, expected a list of strings{CSV_HINT}", ("csv",)
    ),
    "multirc_exported_to_csv": Case(
        "multirc", unchanged, 0, f"field idx is a string, expected {MULTIRC_IDX}{CSV_HINT}", ("csv",)
    ),
}


def write(folder: Path, records: list[dict], fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "json":  # one JSON array
        path.write_text(json.dumps(records))
    elif fmt == "csv":  # as pandas (and datasets' to_csv) writes it: a list or an object as its printed text
        pd.DataFrame(records).to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(records), preserve_index=False), path)
    return path


def load(tmp_path: Path, monkeypatch, task_name: str, records: list[dict], fmt: str) -> datasets.Dataset:
    """`records` loaded as the train split of the task from a file in `fmt`, or from the Hub (`hub`)."""
    task = get_task(task_name)
    if fmt == "hub":  # the Hub's loader, its download replaced by the records
        monkeypatch.setattr(sources, "hub_connection_error", lambda endpoint: None)
        monkeypatch.setattr(sources.datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(records))
        return load_hub_split(task, "train", None)
    write(tmp_path / task_name, records, fmt)
    return load_local_split(task, tmp_path / task_name, "train")


def where(tmp_path: Path, task_name: str, fmt: str) -> str:
    task = get_task(task_name)
    return f"{task.hub_path}/{task.hub_config} (train)" if fmt == "hub" else str(tmp_path / task_name / f"train.{fmt}")


@pytest.mark.parametrize(
    "case,fmt", [pytest.param(name, fmt, id=f"{name}-{fmt}") for name, case in CASES.items() for fmt in case.formats]
)
def test_a_record_that_does_not_fit_the_schema_is_named(case, fmt, tmp_path, monkeypatch):
    spec = CASES[case]
    with pytest.raises(UserError) as error:
        load(tmp_path, monkeypatch, spec.task, spec.change(demo_records(spec.task)), fmt)
    unit = "line" if fmt == "jsonl" else "row"
    assert str(error.value) == f"{where(tmp_path, spec.task, fmt)}, {unit} {spec.row + 1}: {spec.message}"


def test_a_json_lines_file_is_named_by_its_line_blank_lines_counted(tmp_path):
    records = changed(2, label=3)(demo_records("cb"))
    lines = [json.dumps(r) for r in records]
    (tmp_path / "train.jsonl").write_text("\n".join([*lines[:1], "", "   ", *lines[1:]]) + "\n")
    with pytest.raises(UserError, match=re.escape("train.jsonl, line 5: field label is 3")):
        load_local_split(get_task("cb"), tmp_path, "train")


def test_a_json_file_of_lines_is_named_by_its_line(tmp_path):
    records = changed(2, premise=None)(demo_records("cb"))
    (tmp_path / "train.json").write_text("".join(json.dumps(r) + "\n" for r in records))  # datasets' to_json
    with pytest.raises(UserError, match=re.escape("train.json, line 3: field premise is empty")):
        load_local_split(get_task("cb"), tmp_path, "train")


@pytest.mark.parametrize("fmt", ALL)
def test_records_that_fit_load_in_every_format(fmt, tmp_path, monkeypatch):
    names = ("cb", "stsb") if fmt == "csv" else ("cb", "stsb", "multirc", "record")  # a CSV: no lists, no objects
    for name in names:
        assert len(load(tmp_path, monkeypatch, name, demo_records(name), fmt)) == 8


def test_the_real_samples_hub_parquet_fits(glue_sample):
    rte = glue_sample.parent / "glue" / "RTE"  # the Hub's own parquet files of glue/rte
    assert len(load_local_split(get_task("rte"), rte, "train")) == 2490


def test_two_files_for_one_split_are_refused_naming_both(tmp_path):
    records = demo_records("cb")
    write(tmp_path, records, "jsonl")
    write(tmp_path, records, "csv")
    with pytest.raises(UserError) as error:
        load_local_split(get_task("cb"), tmp_path, "train")
    message = str(error.value)
    assert f"{tmp_path / 'train.jsonl'}" in message and f"{tmp_path / 'train.csv'}" in message
    assert "\n" not in message


def test_predict_inputs_that_do_not_fit_are_reported_and_skipped(tmp_path, capsys):
    records = demo_records("record", 3)
    records[1] = dict(records[1], entities="Lyon, Arsenal")
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    kept, ids = read_predict_file(path, get_task("record"))
    assert len(kept) == 2
    assert (
        f"warning: {path}, line 2: field entities is a string, expected a list of strings; skipped"
        in capsys.readouterr().err
    )
