"""Bad data input: each mistake ends in one `error: ...` line that says what is wrong and where, a non-zero exit
and no traceback. Columns that do not match the task, a label outside its classes and an empty split run through
`python cli.py fit` as a user would, in parallel since each run is mostly start-up time (an unknown task is in
tests/unit/config/test_cli_errors.py); the rest go through the CLI or the data module in-process."""

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compacter_pl.cli import main
from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.datamodule import paper_splits
from compacter_pl.errors import UserError
from compacter_pl.tasks import get_task
from tests.helpers import DEMO_DATA, DEMO_MODEL, run_cli


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cb_records(n: int) -> list[dict]:
    return [{"premise": f"P {i}.", "hypothesis": f"H {i}.", "idx": i, "label": i % 3} for i in range(n)]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_data")
    label = root / "label_outside"  # row 5 of validation.jsonl has label 3: CB has classes 0, 1, 2
    write_jsonl(label / "train.jsonl", cb_records(12))
    write_jsonl(label / "validation.jsonl", [dict(r, label=3 if r["idx"] == 4 else r["label"]) for r in cb_records(8)])
    empty = root / "empty"
    write_jsonl(empty / "train.jsonl", cb_records(12))
    (empty / "validation.jsonl").write_text("")
    return {"label_outside": label, "empty": empty}


# name -> extra arguments after `fit --config configs/demo.yaml` (demo data is RTE's unless data_dir says otherwise)
CLI_CASES = {
    "missing_column": ["--data.task", "cb"],  # RTE's files have sentence1/sentence2, CB needs premise/hypothesis
    "label_outside": ["--data.task", "cb", "--data.data_dir", "{label_outside}"],
    "empty_split": ["--data.task", "cb", "--data.data_dir", "{empty}"],
}


@pytest.fixture(scope="module")
def cli_runs(bad_data, tmp_path_factory) -> dict:
    def run(case: str):
        root = tmp_path_factory.mktemp(case)
        extra = [arg.format(**bad_data) for arg in CLI_CASES[case]]
        return run_cli(
            "fit",
            "--config",
            "configs/demo.yaml",
            *extra,
            "--trainer.fast_dev_run",
            "true",
            "--trainer.default_root_dir",
            str(root / "logs"),
            "--data.cache_dir",
            str(root / "cache"),
            env={"OMP_NUM_THREADS": "1"},
            timeout=300,
        )

    with ThreadPoolExecutor(max_workers=len(CLI_CASES)) as pool:
        return dict(zip(CLI_CASES, pool.map(run, CLI_CASES), strict=True))


def one_error_line(result) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.slow  # cli_runs: three `cli.py fit` runs, ~32 s on 2 loaded cores
@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing_column", r"error: .*demo/data/rte/train\.jsonl lacks column 'premise' that task cb needs"),
        (
            "label_outside",
            r"error: .*label_outside/validation\.jsonl, line 5: field label is 3, expected a class id of cb "
            r"\(0 entailment, 1 contradiction, 2 neutral\)",
        ),
        ("empty_split", r"error: .*empty/validation\.jsonl is empty; the validation split of cb needs at least one"),
    ],
)
def test_bad_input_through_the_cli_is_one_error_line(cli_runs, case, expected):
    assert re.match(expected, one_error_line(cli_runs[case]))


# --- in-process: the same errors from the data module, and the rarer ones -----------------------


def test_train_size_larger_than_train_is_one_error_line_from_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "fit",
                "--config",
                "configs/demo.yaml",
                "--data.train_size",
                "601",
                "--trainer.fast_dev_run",
                "true",
                "--trainer.default_root_dir",
                str(tmp_path / "logs"),
                "--data.cache_dir",
                str(tmp_path / "cache"),
            ]
        )
    assert exit_.value.code != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: train_size=601 is larger than the training split (600 examples); choose train_size <= 600"
    ]


def prepare(tmp_path: Path, **kwargs) -> TextToTextDataModule:
    module = TextToTextDataModule(tokenizer=str(DEMO_MODEL), cache_dir=str(tmp_path / "cache"), **kwargs)
    module.prepare_data()
    return module


def test_a_split_left_empty_by_halving_is_named(tmp_path):
    write_jsonl(tmp_path / "one" / "train.jsonl", cb_records(4))
    write_jsonl(tmp_path / "one" / "validation.jsonl", cb_records(1))
    with pytest.raises(UserError, match=r"the validation split of cb is empty: .*one/validation\.jsonl"):
        paper_splits(get_task("cb"), str(tmp_path / "one"), None, 42, None, 42)


def test_a_large_task_with_too_few_training_records_names_validation_size(tmp_path):
    with pytest.raises(UserError, match=r"too few to hold out 1000 .*set data\.validation_size below 384"):
        prepare(tmp_path, task="sst2", data_dir=str(DEMO_DATA / "sst2"))
    with pytest.raises(UserError, match="validation_size must be a positive number"):
        TextToTextDataModule(task="sst2", validation_size=0)


def test_a_score_outside_stsb_names_the_row(tmp_path):
    records = [{"sentence1": "a", "sentence2": "b", "label": 2.5, "idx": i} for i in range(6)]
    write_jsonl(tmp_path / "stsb" / "validation.jsonl", records)
    write_jsonl(tmp_path / "stsb" / "train.jsonl", [*records[:2], dict(records[2], label=5.6), *records[3:]])
    expected = r"stsb/train\.jsonl, line 3: field label is 5\.6, expected a similarity score from 0 to 5"
    with pytest.raises(UserError, match=expected):
        prepare(tmp_path, task="stsb", data_dir=str(tmp_path / "stsb"))


def test_a_record_query_without_answers_names_the_row(tmp_path):
    lines = (DEMO_DATA / "record" / "validation.jsonl").read_text().splitlines()
    broken = [json.loads(line) for line in lines]
    broken[6]["answers"] = []
    shutil.copytree(DEMO_DATA / "record", tmp_path / "record")
    write_jsonl(tmp_path / "record" / "validation.jsonl", broken)
    with pytest.raises(UserError, match=r"record/validation\.jsonl, line 7: the record has no gold answer"):
        prepare(tmp_path, task="record", data_dir=str(tmp_path / "record"), validation_size=16)


def test_multirc_without_question_ids_is_named(tmp_path):
    shutil.copytree(DEMO_DATA / "multirc", tmp_path / "multirc")
    records = [json.loads(line) for line in (tmp_path / "multirc" / "validation.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "multirc" / "validation.jsonl", [dict(r, idx=r["idx"]["answer"]) for r in records])
    expected = r"multirc/validation\.jsonl, line 1: field idx is an integer, expected an object of integers"
    with pytest.raises(UserError, match=expected):
        prepare(tmp_path, task="multirc", data_dir=str(tmp_path / "multirc"))


def test_a_csv_file_with_other_columns_is_named(tmp_path):
    (tmp_path / "csv").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "csv" / f"{split}.csv").write_text("text,label\nhello,1\n")
    with pytest.raises(UserError, match=r"csv/train\.csv lacks column 'sentence' that task sst2 needs"):
        prepare(tmp_path, task="sst2", data_dir=str(tmp_path / "csv"))


def test_an_unreadable_file_is_named(tmp_path):
    shutil.copytree(DEMO_DATA / "cola", tmp_path / "bad")
    (tmp_path / "bad" / "train.jsonl").write_text('{"sentence": "unterminated\n')
    with pytest.raises(UserError, match=r"cannot read .*bad/train\.jsonl"):
        prepare(tmp_path, task="cola", data_dir=str(tmp_path / "bad"))


def test_mnli_reads_validation_matched_and_names_it_when_missing(tmp_path):
    shutil.copytree(DEMO_DATA / "mnli", tmp_path / "mnli")
    (tmp_path / "mnli" / "validation_matched.jsonl").rename(tmp_path / "mnli" / "validation.jsonl")
    with pytest.raises(UserError, match=r"no file for split 'validation_matched'"):
        prepare(tmp_path, task="mnli", data_dir=str(tmp_path / "mnli"), validation_size=16)
