"""Nothing lost, nothing silently wrong, through `cli.py fit` as a user runs it: a ReCoRD CSV (whose lists are text:
it would train on their characters) stops with one error line before anything is built, and a damaged cache entry
is rebuilt with one warning line and the run goes on."""

import os

import datasets
import pytest

from tests.helpers import DEMO_DATA, in_process, one_line_error


def fit(capsys, tmp_path, *extra: str) -> tuple[int, str, str]:
    return in_process(
        capsys,
        "fit",
        "--config",
        "configs/demo.yaml",
        "--trainer.fast_dev_run",
        "true",
        "--trainer.default_root_dir",
        str(tmp_path / "logs"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        *extra,
    )


def test_a_record_csv_with_lists_as_text_is_one_error_line(tmp_path, capsys):
    folder = tmp_path / "record"
    for split in ("train", "validation"):  # any CSV export: the lists and objects become their printed text
        datasets.Dataset.from_json(str(DEMO_DATA / "record" / f"{split}.jsonl")).to_csv(folder / f"{split}.csv")
    code, _, err = fit(capsys, tmp_path, "--data.task", "record", "--data.data_dir", str(folder))
    one_line_error(
        code,
        err,
        f"{folder / 'train.csv'}, row 1: field entities is a string, expected a list of strings (a CSV file "
        "flattens lists and objects to text: use JSON Lines or parquet)",
    )
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.arrow"))  # nothing built


@pytest.mark.slow  # two fits of the demo, ~25 s on 2 loaded cores
def test_a_truncated_cache_entry_heals_through_fit(tmp_path, capsys):
    code, _, err = fit(capsys, tmp_path)
    assert code == 0, err[-2000:]
    (arrow,) = (tmp_path / "cache").glob("rte/*/train/*.arrow")
    size = arrow.stat().st_size
    os.truncate(arrow, size // 2)
    code, _, err = fit(capsys, tmp_path)
    assert code == 0 and "Traceback" not in err, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: the tokenized-data cache entry {arrow.parent.parent} cannot be used: train/{arrow.name} has "
        f"{size // 2} bytes, not {size}; rebuilding it"
    ]
    assert arrow.stat().st_size == size  # rebuilt whole
