"""`cli.py predict`: a task split or a JSONL file of raw inputs, one prediction per line, bad lines reported."""

import json
import re

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import run_cli

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


@pytest.mark.slow
def test_predict_a_split_writes_one_labelled_line_per_example(cli, trained, tmp_path):
    out = tmp_path / "test_predictions.jsonl"
    result = predict(cli, trained, "--predictions.output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 100 and sorted(r["id"] for r in rows) == list(range(100))
    assert {r["prediction"] for r in rows} <= {"entailment", "not_entailment"}


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
