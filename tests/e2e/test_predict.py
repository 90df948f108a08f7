"""`cli.py predict`: a task split or a JSONL file of raw inputs, one prediction per line, bad lines reported; every
line names its record by the record's own id, whichever of the paper's splits it was drawn into. An export predicts
as its checkpoint does (`--adapter`)."""

import json
import re

import pytest

from tests.helpers import DEMO_DATA, ROOT, cache_hub_repository, in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.helpers import run_cli

    root = tmp_path_factory.mktemp("predict")
    result = run_cli(
        "fit",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.max_epochs",
        "3",
        "--trainer.default_root_dir",
        str(root),
        "--data.cache_dir",
        str(root / "cache"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return root, re.search(r"best checkpoint: (\S+)", result.stdout).group(1)


def predict(cli, trained, *extra):
    root, ckpt = trained
    return cli(
        "predict",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.default_root_dir",
        str(root),
        "--data.cache_dir",
        str(root / "cache"),
        "--ckpt_path",
        ckpt,
        *extra,
    )


def idx_of(path) -> list:
    return [json.loads(line)["idx"] for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_predict_a_split_writes_one_labelled_line_per_example(cli, trained, tmp_path):
    ids = {}
    for split in ("test", "validation"):  # the two halves of the original validation file, shuffled
        out = tmp_path / f"{split}_predictions.jsonl"
        result = predict(cli, trained, "--data.predict_split", split, "--predictions.output", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 100 and {r["prediction"] for r in rows} <= {"entailment", "not_entailment"}
        ids[split] = [r["id"] for r in rows]
    # each line names its record by the record's idx, not by its position in the half
    assert sorted(ids["test"] + ids["validation"]) == sorted(idx_of(DEMO_DATA / "rte" / "validation.jsonl"))


def predict_ids(capsys, tmp_path, task: str, data_dir, split: str) -> list:
    """The ids `cli.py predict --config configs/demo.yaml --data.task TASK ...` writes for a split (the tiny model
    as it starts: what it predicts does not matter here), run in this process."""
    out = tmp_path / f"{task}-{split}.jsonl"
    code, _, err = in_process(
        capsys,
        "predict",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--data.task",
        task,
        "--data.data_dir",
        str(data_dir),
        "--data.predict_split",
        split,
        "--data.validation_size",
        "16",
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.default_root_dir",
        str(tmp_path / "logs"),
        "--predictions.output",
        str(out),
    )
    assert code == 0, err[-2000:]
    return [json.loads(line)["id"] for line in out.read_text().splitlines()]


def ordered(ids: list) -> list:
    return sorted(ids, key=json.dumps)


def test_predicting_a_small_tasks_halves_names_the_original_records(capsys, tmp_path):
    data = tmp_path / "data"  # the demo MultiRC records with ids that are not their rows: an id is the record's own
    data.mkdir()
    for split in ("train", "validation"):
        records = [json.loads(line) for line in (DEMO_DATA / "multirc" / f"{split}.jsonl").read_text().splitlines()]
        for record in records:  # {paragraph, question, answer}, as in the Hub's schema
            record["idx"] = {key: 1000 + 3 * value for key, value in record["idx"].items()}
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    test = predict_ids(capsys, tmp_path, "multirc", data, "test")
    validation = predict_ids(capsys, tmp_path, "multirc", data, "validation")
    assert test and validation
    assert ordered(test + validation) == ordered(idx_of(data / "validation.jsonl"))


def test_predicting_a_large_tasks_held_out_validation_names_its_training_records(capsys, tmp_path):
    task, data = "record", DEMO_DATA / "record"  # ids {passage, query}, as in the Hub's schema
    train_idx = idx_of(data / "train.jsonl")
    validation = predict_ids(capsys, tmp_path, task, data, "validation")  # 16 training records held out
    assert len(validation) == 16 and all(i in train_idx for i in validation)
    assert ordered(predict_ids(capsys, tmp_path, task, data, "test")) == ordered(idx_of(data / "validation.jsonl"))
    train = predict_ids(capsys, tmp_path, task, data, "train")
    assert not {json.dumps(i) for i in train} & {json.dumps(i) for i in validation}
    assert {json.dumps(i) for i in train} | {json.dumps(i) for i in validation} == {json.dumps(i) for i in train_idx}


def test_records_without_idx_are_named_by_their_row_in_the_original_file(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation"):
        lines = (DEMO_DATA / "cb" / f"{split}.jsonl").read_text().splitlines()
        records = [{k: v for k, v in json.loads(line).items() if k != "idx"} for line in lines]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ids = predict_ids(capsys, tmp_path, "cb", data, "test") + predict_ids(capsys, tmp_path, "cb", data, "validation")
    assert sorted(ids) == list(range(1, len(lines) + 1))  # the line number in validation.jsonl, as for predict_file


def test_a_predict_files_records_keep_their_hub_ids(tmp_path):
    from compacter_pl.data.predict_inputs import read_predict_file
    from compacter_pl.tasks import get_task

    inputs = tmp_path / "multirc.jsonl"
    lines = (DEMO_DATA / "multirc" / "validation.jsonl").read_text().splitlines()[:2]
    unnamed = {k: v for k, v in json.loads(lines[1]).items() if k != "idx"}
    inputs.write_text(lines[0] + "\n" + json.dumps(unnamed) + "\n")
    _, ids = read_predict_file(inputs, get_task("multirc"))
    assert [json.loads(i) for i in ids] == [{"paragraph": 0, "question": 0, "answer": 0}, 2]  # else the line number


@pytest.mark.slow
def test_predict_a_jsonl_file_skips_and_reports_bad_lines(cli, trained, tmp_path):
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "\n".join(
            [
                json.dumps(
                    {"sentence1": "The cat bought a garden.", "sentence2": "The cat did not buy a garden.", "idx": 7}
                ),
                "{not json",
                json.dumps({"sentence1": "The team visited the museum."}),
                json.dumps({"sentence1": "The team visited the museum.", "sentence2": "The team visited the museum."}),
            ]
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    result = predict(cli, trained, "--data.predict_file", str(inputs), "--predictions.output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{inputs}, line 2: not valid JSON" in result.stderr
    assert f"{inputs}, line 3: lacks field 'sentence2'" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [7, 4]  # the record's idx, else its line number
    assert [r["prediction"] for r in rows] == ["not_entailment", "entailment"]


@pytest.mark.slow
def test_predict_an_export_as_its_checkpoint_predicts(cli, trained, tmp_path):
    """`--adapter` runs an export with its checkpoint's method, task and data settings: a folder, or a Hub repository
    from the Hub cache without a network; the predictions are the checkpoint's."""
    root, ckpt = trained
    export = tmp_path / "export"
    assert cli("export", "--ckpt_path", ckpt, "--out", str(export)).returncode == 0
    expected = tmp_path / "by_checkpoint.jsonl"
    assert predict(cli, trained, "--predictions.output", str(expected)).returncode == 0
    cache_hub_repository(tmp_path / "hub", "demo-user/rte-full", export)
    for source, config in ((str(export), ["--config", str(ROOT / "configs/demo.yaml")]), ("demo-user/rte-full", [])):
        out = tmp_path / f"{source.replace('/', '_')}.jsonl"
        result = cli(
            "predict",
            *config,  # without one: the export's settings, the data read from its folder
            "--adapter",
            source,
            "--data.data_dir",
            str(DEMO_DATA / "rte"),
            "--trainer.default_root_dir",
            str(root),
            "--data.cache_dir",
            str(root / "cache"),
            "--predictions.output",
            str(out),
            env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "untrained" not in result.stderr
        assert out.read_text() == expected.read_text(), source
