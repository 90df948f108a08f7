"""Bad input, every command: one table of cases, each ending in exit code 2 and one `error:` line (no traceback)
holding the expected words, run in this process (`conftest.in_process`).

A row is `Case(id, argv, code, words)`: `argv` is the command line after `cli.py`, where `{tmp}` is the test's
temporary folder holding the files of `FILES` (a Latin-1 data folder, YAML files with a tab or nothing in them,
predict files) and `{root}` the repository; `code` is the expected exit code; `words` are fragments the error
line must contain. Fit-like rows carry `FAST` (one batch, runs and cache under `{tmp}`), so a value wrongly
accepted ends in a one-batch run that fails the row at once instead of a real fit. Rows of other files
(checkpoints, faults) take the same shape.
"""

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import DEMO_DATA, ROOT, error_line, in_process


class Case(NamedTuple):
    id: str
    argv: list[str]
    code: int
    words: list[str]


def _latin1_records() -> bytes:
    """The demo's RTE train file with an é on line 3, saved as Latin-1."""
    lines = (DEMO_DATA / "rte" / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["sentence1"] = "Café au lait " + record["sentence1"]
    lines[2] = json.dumps(record, ensure_ascii=False)
    return "\n".join(lines).encode("latin-1") + b"\n"


FILES = {  # name under {tmp} -> its content (bytes, or a function of nothing giving them)
    "latin1/train.jsonl": _latin1_records,
    "latin1/validation.jsonl": lambda: (DEMO_DATA / "rte" / "validation.jsonl").read_bytes(),
    "latin1.jsonl": json.dumps({"sentence1": "Café", "sentence2": "Tea."}, ensure_ascii=False).encode("latin-1"),
    "all_bad.jsonl": b'not json\n{"sentence1": "no sentence2"}\n[1, 2]\n',
    "tab.yaml": b"model:\n\tlearning_rate: 0.1\n",
    "empty.yaml": b"",
    "comments.yaml": b"# only a comment\n",
    "unknown_key.yaml": b"model:\n  learning_rat: 0.1\n",
}

DEMO = ["--config", "{root}/configs/demo.yaml"]
FAST = ["--trainer.fast_dev_run", "1", "--trainer.default_root_dir", "{tmp}/run", "--data.cache_dir", "{tmp}/cache"]
FIT = ["fit", *DEMO, *FAST]
COMPACTER = ["--model.method.class_path", "compacter_pl.methods.Compacter"]
SEE_FIT = "(see `python cli.py fit --help`)"

CASES = [
    # --- values: refused by their types on the signatures, before anything is built --------------------------
    Case("lr-negative", [*FIT, "--model.learning_rate", "-0.1"], 2, ["model.learning_rate: must be > 0", "-0.1"]),
    Case("lr-zero", [*FIT, "--model.learning_rate", "0"], 2, ["model.learning_rate: must be > 0", "got 0"]),
    Case("lr-not-a-number", [*FIT, "--model.learning_rate", "fast"], 2, ["model.learning_rate", "'fast'"]),
    Case("warmup-negative", [*FIT, "--model.warmup_steps", "-5"], 2, ["model.warmup_steps: must be >= 0", "-5"]),
    Case("batch-size-zero", [*FIT, "--data.batch_size", "0"], 2, ["data.batch_size: must be > 0", SEE_FIT]),
    Case("eval-batch-size-zero", [*FIT, "--data.eval_batch_size", "0"], 2, ["data.eval_batch_size: must be > 0"]),
    Case("source-length-zero", [*FIT, "--data.max_source_length", "0"], 2, ["data.max_source_length: must be > 0"]),
    Case("target-length-zero", [*FIT, "--data.max_target_length", "0"], 2, ["data.max_target_length: must be > 0"]),
    Case("train-size-zero", [*FIT, "--data.train_size", "0"], 2, ["train_size must be a positive number"]),
    Case("fp16", [*FIT, "--trainer.precision", "16-mixed"], 2, ["overflows with T5", "--allow_fp16"]),
    Case("validate-batch-size", ["validate", *DEMO, *FAST, "--data.eval_batch_size", "0"], 2, ["eval_batch_size"]),
    Case("test-warmup", ["test", *DEMO, *FAST, "--model.warmup_steps", "-1"], 2, ["model.warmup_steps", "-1"]),
    # --- bad literals and typos: the closed set or the closest key ---------------------------------------------
    Case("task-typo", [*FIT, "--data.task", "rtee"], 2, ["data.task: expected one of", "did you mean 'rte'?"]),
    Case("eval-mode-typo", [*FIT, "--model.eval_mode", "ranks"], 2, ["did you mean 'rank'?"]),
    Case("truncation-typo", [*FIT, "--data.truncation", "field"], 2, ["did you mean 'fields'?"]),
    Case("unknown-key", [*FIT, "--model.learning_rat", "0.1"], 2, ["learning_rat", "did you mean"]),
    Case("unknown-trainer-key", [*FIT, "--trainer.max_epoch", "1"], 2, ["max_epoch", "did you mean"]),
    Case("nested-typo", [*FIT, *COMPACTER, "--model.method.init_args.nn", "4"], 2, ["'nn'", "did you mean 'n'?"]),
    Case(
        "yaml-unknown-key",
        [*FIT, "--config", "{tmp}/unknown_key.yaml"],
        2,
        ["model.learning_rat", "did you mean 'model.learning_rate'"],
    ),
    Case("test-task-typo", ["test", *DEMO, *FAST, "--data.task", "boolqq"], 2, ["did you mean 'boolq'?"]),
    # --- methods and classes ----------------------------------------------------------------------------------
    Case(
        "abstract-method",
        [*FIT, "--model.method.class_path", "compacter_pl.methods.Method"],
        2,
        ["compacter_pl.methods.Method", "is abstract", "choose one of", "Compacter", "FullFineTuning"],
    ),
    Case(
        "unknown-method",
        [*FIT, "--model.method.class_path", "compacter_pl.methods.Compactor"],
        2,
        ["unknown method class_path", "did you mean 'Compacter'?"],
    ),
    Case(
        "method-far-from-any",
        [*FIT, "--model.method.class_path", "compacter_pl.methods.Nope"],
        2,
        ["compacter_pl.methods.Nope", "FullFineTuning", "Compacter"],
    ),
    Case(
        "method-argument-missing",
        [*FIT, "--model.method.class_path", "compacter_pl.methods.Peft"],
        2,
        ["model.method", "peft_config"],
    ),
    Case(
        "n-divides-neither",  # tiny-t5: d_model 64; the hint lists only the n dividing 64 and the bottleneck 8
        [*FIT, *COMPACTER, "--model.method.init_args.bottleneck", "8", "--model.method.init_args.n", "3"],
        2,
        ["n=3", "--model.method.init_args.n to one of 1, 2, 4, 8 ("],
    ),
    Case("n-zero", [*FIT, *COMPACTER, "--model.method.init_args.n", "0"], 2, ["must be > 0", "got 0"]),
    # --- files and encodings ----------------------------------------------------------------------------------
    Case("data-dir-missing", [*FIT, "--data.data_dir", "{tmp}/nowhere"], 2, ["nowhere is not a directory"]),
    Case(
        "data-not-utf8",
        [*FIT, "--data.data_dir", "{tmp}/latin1"],
        2,
        ["latin1/train.jsonl is not UTF-8", "line 3", "must be UTF-8"],
    ),
    Case(
        "predict-not-utf8",
        ["predict", *DEMO, *FAST, "--data.predict_file", "{tmp}/latin1.jsonl"],
        2,
        ["latin1.jsonl is not UTF-8", "line 1", "must be UTF-8"],
    ),
    Case(
        "predict-all-bad",
        ["predict", *DEMO, *FAST, "--data.predict_file", "{tmp}/all_bad.jsonl"],
        2,
        ["no valid input in", "all_bad.jsonl", "all 3 line(s) were skipped"],
    ),
    Case(
        "predict-file-missing",
        ["predict", *DEMO, *FAST, "--data.predict_file", "{tmp}/none.jsonl"],
        2,
        ["none.jsonl does not exist"],
    ),
    Case("predict-split", ["predict", *DEMO, *FAST, "--data.predict_split", "dev"], 2, ["predict_split", "'dev'"]),
    Case("config-missing", ["fit", "--config", "{tmp}/none.yaml"], 2, ["config", "none.yaml", "does not exist"]),
    # --- YAML: the file named, a tab or emptiness said ---------------------------------------------------------
    Case("fit-yaml-tab", ["fit", "--config", "{tmp}/tab.yaml"], 2, ["tab.yaml (line 2", "a tab", "spaces"]),
    Case("fit-yaml-empty", ["fit", "--config", "{tmp}/empty.yaml"], 2, ["config file", "empty.yaml is empty"]),
    Case("test-yaml-comments", ["test", "--config", "{tmp}/comments.yaml"], 2, ["comments.yaml is empty"]),
    Case("validate-yaml-tab", ["validate", "--config", "{tmp}/tab.yaml"], 2, ["tab.yaml", "a tab"]),
    Case("sweep-yaml-tab", ["sweep", "--config", "{tmp}/tab.yaml"], 2, ["sweep file", "tab.yaml (line 2", "a tab"]),
    Case("sweep-yaml-empty", ["sweep", "--config", "{tmp}/empty.yaml"], 2, ["sweep file", "empty.yaml is empty"]),
    Case("bench-yaml-tab", ["bench", "--config", "{tmp}/tab.yaml"], 2, ["config file", "tab.yaml", "a tab"]),
    Case("bench-yaml-empty", ["bench", "--config", "{tmp}/empty.yaml"], 2, ["empty.yaml is empty"]),
    Case("params-yaml-empty", ["params", "--config", "{tmp}/empty.yaml"], 2, ["empty.yaml is empty"]),
    Case("report-yaml-tab", ["report", "--config", "{tmp}/tab.yaml"], 2, ["tab.yaml", "a tab"]),
    Case("export-yaml-empty", ["export", "--config", "{tmp}/empty.yaml"], 2, ["empty.yaml is empty"]),
    # --- the other commands ------------------------------------------------------------------------------------
    Case("bench-unknown-model", ["bench", "--model", "no-such-model"], 2, ["--model: unknown model", "t5-base"]),
    Case("bench-batch-size", ["bench", "--batch_size", "0"], 2, ["batch_size: must be > 0", "PositiveInt"]),
    Case("bench-typo", ["bench", "--step", "2"], 2, ["--step", "did you mean 'steps'?"]),
    Case("bench-method", ["bench", "--methods", "compacterr"], 2, ["did you mean 'compacter'?"]),
    Case("params-method", ["params", "--methods", "compacterr"], 2, ["did you mean 'compacter'?"]),
    Case("params-dtype", ["params", "--dtype", "fp16"], 2, ["dtype", "float16"]),
    Case("params-model", ["params", "--model", "t5-bsae"], 2, ["unknown model 't5-bsae'", "t5-base"]),
    Case("export-typo", ["export", "--ckpt", "x.ckpt", "--out", "{tmp}/x"], 2, ["did you mean 'ckpt_path'?"]),
    Case("export-no-out", ["export", "--ckpt_path", "x.ckpt"], 2, ["out"]),
    Case("sweep-missing", ["sweep", "--config", "{tmp}/none.yaml"], 2, ["none.yaml"]),
    Case("sweep-dash", ["sweep", "--config", "{root}/configs/sweeps/demo.yaml", "--dry-run"], 2, ["'dry_run'?"]),
    Case("sweep-no-config", ["sweep", "--dry_run"], 2, ["required", "config"]),
    Case("report-typo", ["report", "{tmp}", "--metrc", "val/score"], 2, ["--metrc", "did you mean 'metric'?"]),
    Case("truncation-task", ["truncation", "--data.task", "rtee"], 2, ["did you mean 'rte'?"]),
    Case(
        "truncation-not-utf8",
        ["truncation", "--data.data_dir", "{tmp}/latin1", "--data.tokenizer", "{root}/demo/tiny-t5"],
        2,
        ["train.jsonl is not UTF-8", "line 3"],
    ),
    Case("unknown-command", ["fitt"], 2, ["unknown command 'fitt'", "did you mean 'fit'?"]),
    Case("no-command", [], 2, ["choose a command"]),
]


def write_files(tmp: Path) -> None:
    for name, content in FILES.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content() if callable(content) else content)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line(capsys, tmp_path, case):
    write_files(tmp_path)
    argv = [arg.format(tmp=tmp_path, root=ROOT) for arg in case.argv]
    code, _, err = in_process(capsys, *argv)
    assert code == case.code, err[-2000:]
    error_line(err, *(word.format(tmp=tmp_path, root=ROOT) for word in case.words))


def test_the_ids_are_unique():
    assert len({case.id for case in CASES}) == len(CASES)
