"""Raw inputs for `predict`: a JSONL file of records in the task's schema. Bad lines are reported and skipped,
so one typo never costs the predictions of the rest of the file."""

import json
import sys
from pathlib import Path

from compacter_pl.data.validation import input_problem
from compacter_pl.errors import UserError
from compacter_pl.tasks import Task


def record_id(record: dict, fallback: int) -> str:
    """The id `predict` writes for a record, as JSON text: its `idx` as the Hub's schema gives it (an integer;
    MultiRC's and ReCoRD's an object of integers, e.g. {"passage": 0, "query": 3}), else `fallback`."""
    idx = record.get("idx")
    if _is_integer(idx) or (isinstance(idx, dict) and idx and all(map(_is_integer, idx.values()))):
        return json.dumps(idx)
    return json.dumps(fallback)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_predict_file(path: str | Path, task: Task) -> tuple[list[dict], list[str]]:
    """The usable records and their ids (`record_id`: the record's `idx`, else its line number from 1)."""
    records, ids, bad = [], [], 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                bad += _report(path, number, f"not valid JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                bad += _report(path, number, "not a JSON object")
                continue
            problem = input_problem(task, record)
            if problem is not None:
                bad += _report(path, number, problem)
                continue
            try:
                task.source(record)
            except ValueError as error:
                bad += _report(path, number, str(error))
                continue
            records.append(record)
            ids.append(record_id(record, number))
    if not records:
        raise UserError(
            f"no valid input in {path}"
            + (f": all {bad} line(s) were skipped (see the warnings above)" if bad else "")
            + f"; --data.predict_file needs JSON lines with the fields {', '.join(task.input_fields)}"
        )
    if bad:
        print(f"warning: {path}: skipped {bad} bad line(s); predicted the other {len(records)}", file=sys.stderr)
    return records, ids


def _report(path, number: int, what: str) -> int:
    print(f"warning: {path}, line {number}: {what}; skipped", file=sys.stderr)
    return 1
