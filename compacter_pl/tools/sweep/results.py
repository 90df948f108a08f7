"""`results.jsonl`: one JSON line per finished run, appended so that a crash never leaves a torn line.

A line is written with a single `os.write` on a file opened with O_APPEND, under an exclusive `flock` (shards
of one sweep may share the file), then fsync'ed: it is either wholly in the file or not at all. A line that is
in the file is what makes its run finished. Readers skip a corrupt line (a file edited by hand, a torn write of
another tool) and report it; they never rewrite the file, so nothing a user may want back is lost.
"""

import fcntl
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_FILE = "results.jsonl"
REQUIRED_FIELDS = {"run": str, "task": str, "method": str, "seed": int, "val": dict, "test": dict}


def append_result(path: str | Path, record: dict) -> None:
    """Append `record` as one line, atomically with respect to crashes and to other writers."""
    line = json.dumps(record, sort_keys=False, allow_nan=True, separators=(",", ":")).encode() + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn last line (written by something else) stays its own, corrupt line
        written = os.write(fd, line)
        if written != len(line):  # a full disk: say so rather than leave a fragment unnoticed
            raise OSError(f"wrote {written} of {len(line)} bytes to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class Results:
    """The valid records of a results file, in file order, and one message per line that was skipped."""

    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def finished(self) -> dict[str, dict]:
        """Run name -> its record (the last one, should a run appear twice)."""
        return {record["run"]: record for record in self.records}

    def warn(self, stream=None) -> None:
        for problem in self.problems:
            print(f"warning: {problem}", file=stream or sys.stderr)


def read_results(path: str | Path) -> Results:
    """Every valid line of `path` (a missing file has none); corrupt lines are reported in `problems`."""
    path = Path(path)
    results = Results()
    if not path.exists():
        return results
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            problem = _problem(raw)
            if problem is None:
                results.records.append(json.loads(raw))
            else:
                results.problems.append(
                    f"{path} line {number}: {problem}; the line is ignored and left in the file as it is"
                )
    return results


def _problem(raw: bytes) -> str | None:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"not valid JSON ({error.msg if hasattr(error, 'msg') else error})"
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, kind in REQUIRED_FIELDS.items():
        if not isinstance(record.get(name), kind) or isinstance(record.get(name), bool):
            return f"field {name!r} is missing or not a {kind.__name__}"
    size = record.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        return "field 'size' is neither a number of examples nor null"
    for stage in ("val", "test"):
        for metric, value in record[stage].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value):
                return f"{stage} metric {metric!r} is not a number"
    return None


RUN_SETTINGS = ("model", "learning_rate", "method_init_args")  # what a run used, as its module saw it


def with_run_settings(record: dict, sweep_dir: str | Path) -> dict:
    """`record` with what its run used: the model, the learning rate and every method argument (defaults included).
    The sweep writes them into each line; for a line from before it did, they are read once from the config.yaml
    that LightningCLI saved in the run's directory (`log_dir`). What neither says stays None."""
    missing = [name for name in RUN_SETTINGS if record.get(name) is None]
    if not missing or not record.get("log_dir"):
        return record
    saved = _saved_settings(Path(sweep_dir) / record["log_dir"] / "config.yaml")
    return {**record, **{name: saved[name] for name in missing if saved.get(name) is not None}}


def _saved_settings(path: Path) -> dict:
    import yaml

    try:
        model = (yaml.safe_load(path.read_text()) or {})["model"]
        method = model.get("method") or {}
        return {
            "model": model.get("model_name_or_path"),
            "learning_rate": model.get("learning_rate"),
            "method_init_args": method.get("init_args") if isinstance(method, dict) else None,
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):  # no config, or not a run's
        return {}
